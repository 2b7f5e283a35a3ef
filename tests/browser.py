"""Headless Chromium for tests: Debian's browser, driven by playwright.

Fixtures (import both into a test module; pytest finds them by name there):

    from browser import browser, page  # noqa: F401

- ``browser``: a playwright ``Browser`` (headless), launched for the test and closed after it.
- ``page``: a fresh ``Page`` in a context of its own, 1280 x 800, closed after the test.

Why not one browser for the whole session: playwright's sync API keeps its own asyncio event
loop running in this thread for as long as it is open, and while it is, ``asyncio.run`` fails
anywhere in the thread ("cannot be called from a running event loop") -- in every later test,
and in code under test that calls it. Closing it after each test keeps the rest of the suite
free of it, for about a second per browser test.

The browser is the OS package's ``/usr/bin/chromium`` (``apt-get install chromium``;
``.ci/run`` installs it where missing), never one that ``playwright install`` downloads:
machines here reach the package registries only. Another binary can be named with
``BEDROCK_SQL_CHROMIUM``. Where Chromium or the playwright package is missing, the tests
that use these fixtures are skipped with one message saying how to install them -- except
under CI (``CI=true``), where ``.ci/run`` has installed both, so a missing one fails. A
Chromium that is there but fails to start is an error, not a skip.

Within a browser test, asyncio code must run in another thread (e.g. a server on 127.0.0.1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("BEDROCK_SQL_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = (
    "headless Chromium tests need Debian's chromium and the playwright package: "
    "apt-get install -y --no-install-recommends chromium && pip install -e '.[test]' "
    "(.ci/run installs both)"
)
VIEWPORT = {"width": 1280, "height": 800}


def _missing(what: str) -> None:
    """Skip, or fail under CI: there the browser tests must run."""
    message = f"{what}: {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()
