#!/usr/bin/env python3
"""Regenerate the README's picture of the HTML report from the offline demo.

    python docs/make_screenshots.py            # writes docs/images/report.png

Runs `bedrock-sql demo` and `bedrock-sql check --export report.html` in a temporary folder
(no AWS account is read), opens the report from file:// in Debian's headless Chromium
(`apt-get install chromium`; `BEDROCK_SQL_CHROMIUM` names another binary) through playwright
(`pip install -e '.[test]'`), and saves the top of the page at 1280 x 1000 px.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BEDROCK_SQL_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 1000}


def bedrock_sql(*args: str, cwd: Path, ok_codes: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run([sys.executable, "-m", "bedrock_sql", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode not in ok_codes:
        sys.exit(f"bedrock-sql {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS / "images" / "report.png", help="where to write the PNG")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bedrock-sql-screenshots-") as folder:
        work = Path(folder)
        bedrock_sql("demo", cwd=work)
        bedrock_sql("--db", "bedrock-demo.db", "check", "--export", "report.html", cwd=work, ok_codes=(0, 1))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto((work / "report.html").as_uri())
                page.wait_for_selector("#findings-table tbody tr")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
            finally:
                browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
