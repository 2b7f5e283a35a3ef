"""What tables exist and what their columns mean, for `schema` and the docs."""

from __future__ import annotations

from .errors import UserError
from .providers import TABLES
from .snapshot import META_TABLES
from .views import view_catalog


def table_catalog() -> dict[str, tuple[str, list]]:
    """Every table (providers first, then bookkeeping, then the shared views):
    name -> (description, columns)."""
    catalog = {name: (table.description, table.all_columns) for name, table in TABLES.items()}
    catalog.update(META_TABLES)
    catalog.update(view_catalog())
    return catalog


def schema_rows(table: str | None = None) -> list[tuple[str, str, str, str]]:
    catalog = table_catalog()
    if table is not None and table not in catalog:
        raise UserError(f"no table {table!r}; tables: {', '.join(catalog)}")
    names = [table] if table else list(catalog)
    return [(name, c.name, c.type, c.description) for name in names for c in catalog[name][1]]
