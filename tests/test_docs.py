"""README's table reference and control catalogue must match the code."""

from __future__ import annotations

from pathlib import Path

from bedrock_sql.catalog import table_catalog
from bedrock_sql.controls import bundled_controls

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_column_is_documented_under_its_table():
    for table, (_description, columns) in table_catalog().items():
        section = README[README.index(f"### {table}\n"):]
        end = section.find("\n#", 1)
        section = section if end < 0 else section[:end]
        for column in columns:
            assert f"- `{column.name}` {column.type} — {column.description}" in section, (table, column.name)


def test_every_bundled_control_is_in_the_catalogue():
    for control in bundled_controls():
        assert f"`{control.id}` | {control.severity} |" in README, control.id
