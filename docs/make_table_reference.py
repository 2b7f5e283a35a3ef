#!/usr/bin/env python3
"""Regenerate docs/tables.md, the table reference, from the providers' column declarations.

Run it after changing a provider, a bookkeeping table or a view:
`python docs/make_table_reference.py` (tests/test_docs.py fails while the file is stale).
"""

from __future__ import annotations

from pathlib import Path

from bedrock_sql.catalog import markdown_reference

TABLES_MD = Path(__file__).resolve().parent / "tables.md"


def main() -> None:
    TABLES_MD.write_text(markdown_reference(), encoding="utf-8")
    print(f"wrote {TABLES_MD}")


if __name__ == "__main__":
    main()
