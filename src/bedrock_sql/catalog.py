"""What tables exist and what their columns mean, for `schema` and the docs."""

from __future__ import annotations

from .errors import UserError
from .providers import TABLES
from .snapshot import META_TABLES
from .views import view_catalog


def table_catalog() -> dict[str, tuple[str, list]]:
    """Every table (providers first, then bookkeeping, then the shared views):
    name -> (description, columns)."""
    catalog = {name: (_described(table), table.all_columns) for name, table in TABLES.items()}
    catalog.update(META_TABLES)
    catalog.update(view_catalog())
    return catalog


def _described(table) -> str:
    if not table.context_of:
        return table.description
    return (f"{table.description} `collect` lists it by default only in the accounts/regions where "
            f"{' or '.join(f'`{name}`' for name in table.context_of)} listed a resource (or failed to): "
            f"`collect --model-context all` lists it everywhere.")


def schema_rows(table: str | None = None) -> list[tuple[str, str, str, str]]:
    catalog = table_catalog()
    if table is not None and table not in catalog:
        raise UserError(f"no table {table!r}; tables: {', '.join(catalog)}")
    names = [table] if table else list(catalog)
    return [(name, c.name, c.type, c.description) for name in names for c in catalog[name][1]]


TABLE_REFERENCE_PREAMBLE = """\
# Tables

<!-- Generated from the providers by `python docs/make_table_reference.py`; do not edit by hand
     (tests/test_docs.py fails when this file and the code disagree). -->

Every table has `account_id`, `region`, `partition`, `title` and `akas` (JSON array of ARNs),
and `arn` and `tags` (JSON object) where AWS has them. The same schema serves the snapshot and
`--live`. `bedrock-sql schema [TABLE]` prints the same reference from the installed version.
Booleans are 0/1, timestamps ISO-8601 UTC text, JSON columns JSON text.
"""


def markdown_reference() -> str:
    """docs/tables.md: every table and view with its description and columns, in catalogue order."""
    views = set(view_catalog())
    sections = [TABLE_REFERENCE_PREAMBLE]
    for name, (description, columns) in table_catalog().items():
        kind = "View. " if name in views else ""
        lines = [f"## {name}", "", f"{kind}{description}", ""]
        lines += [f"- `{c.name}` {c.type} — {c.description}" for c in columns]
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)
