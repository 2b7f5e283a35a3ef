"""The wheel carries every package: pyproject.toml lists them by hand (the bundled queries and
examples live outside src/), so a new subpackage left out of the list would be missing from
an installed bedrock-sql while every test of the editable install passes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (listing,) = re.findall(r"^packages = \[(.*?)\]$", text, flags=re.M)
    return set(re.findall(r'"([^"]+)"', listing))


def test_every_package_under_src_is_in_the_wheel() -> None:
    source = ROOT / "src"
    packages = {".".join(init.parent.relative_to(source).parts) for init in source.rglob("__init__.py")
                if "egg-info" not in str(init)}
    assert "bedrock_sql.cli" in packages
    assert packages <= listed_packages(), sorted(packages - listed_packages())
