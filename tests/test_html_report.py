"""`check --export report.html` / `--output html`: the self-contained HTML audit report.

Reports are written by the real CLI (in process) from the offline demo's snapshot and from a
hand-built snapshot full of hostile values, then loaded from file:// in headless Chromium
(tests/browser.py): the DOM's counts against the check's own summary and its JSON export,
a known finding, filters, search, sort, no request leaving the page, no script injection,
phone width, print media and a screenshot. The rest reads the file as text.
"""

from __future__ import annotations

import html
import io
import json
import re
import sqlite3
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bedrock_sql import html_report
from bedrock_sql.cli import main
from bedrock_sql.demo import run_demo
from bedrock_sql.html_markup import script_json
from browser import browser, page  # noqa: F401
from snapshot_builder import MODELS, SEED, SnapshotBuilder

STATUSES = ("ok", "alarm", "info", "skip", "error")
HOSTILE_NAME = "<script>alert(1)</script>"
FORMULA_NAME = '=HYPERLINK("http://attacker.example/x","click")'
HOSTILE_MESSAGE = "<img src=x onerror=alert(3)>"
JAVASCRIPT_NAME = "javascript:alert(7)"
USER_CONTROL = "user_tag_control"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Checked:
    code: int
    out: str
    err: str

    def summary(self) -> dict[str, int]:
        """The check's summary line as counts: total, each status, muted_<status>."""
        line = next(line for line in (self.out + self.err).splitlines() if line.startswith("Summary: "))
        counts = {}
        for name, number, muted in re.findall(r"(\w+) (\d+)(?: \((\d+) muted\))?", line.split(";")[0]):
            counts[name] = int(number)
            counts[f"muted_{name}"] = int(muted or 0)
        return counts


def check(db: Path, *args: object) -> Checked:
    """`bedrock-sql --db DB check ARGS` in process (fixtures of module scope have no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exited:
        main(["--db", str(db), "check", *map(str, args)])
    return Checked(exited.value.code or 0, out.getvalue(), err.getvalue())


@dataclass
class Report:
    path: Path
    checked: Checked
    findings: list[dict]  # the same check's JSON export

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("demo-report")
    db = folder / "bedrock-demo.db"
    run_demo(db, io.StringIO())
    checked = check(db, "--export", folder / "report.html", "--export", folder / "findings.json")
    assert checked.code == 1, checked.err  # the demo has alarms and no error
    return Report(folder / "report.html", checked, json.loads((folder / "findings.json").read_text()))


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Attacker-controlled names and messages everywhere a report shows text."""
    folder = tmp_path_factory.mktemp("hostile-report")
    snap = SnapshotBuilder(folder / "hostile.db")
    snap.add_run(regions=["us-east-1", "eu-west-1"])
    key = snap.add_key("alias/ok")
    snap.add_model("fine-model", model_kms_key_arn=key["arn"])
    hostile = snap.add_model(HOSTILE_NAME, tags={"team": "</script><script>alert(2)</script>"})
    snap.add_throughput(hostile["arn"])  # in use: listed under "Fix first" too
    snap.add_model(FORMULA_NAME)
    snap.add_model(JAVASCRIPT_NAME)  # a javascript: URL as data must stay text, never a link
    accepted = snap.add_model("accepted-risk-model")
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1", message=HOSTILE_MESSAGE)
    controls = folder / "controls"
    controls.mkdir()
    (controls / f"{USER_CONTROL}.sql").write_text(
        f"-- id: {USER_CONTROL}\n-- title: <b>bold</b> title <img src=x onerror=alert(4)>\n-- severity: low\n"
        "-- description: Every model's name, as a finding.\n-- remediation: Rename <i>it</i>.\n"
        "-- references: javascript:alert(5) https://example.com/ref\n\n"
        "SELECT arn AS resource, 'alarm' AS status, 'Model ' || model_name || ' is named.' AS reason, account_id, region "
        "FROM aws_bedrock_custom_model\n",
        encoding="utf-8",
    )
    exceptions = folder / "exceptions.json"
    exceptions.write_text(json.dumps({"exceptions": [
        {"control": SEED, "resource": accepted["arn"], "reason": "Retired <next> quarter", "expires": "2099-01-01"}]}))
    checked = check(snap.path, "--queries", controls, "--exceptions", exceptions,
                    "--export", folder / "report.html", "--export", folder / "findings.json")
    assert checked.code == 2, checked.err  # the failed listing is an error
    return Report(folder / "report.html", checked, json.loads((folder / "findings.json").read_text()))


@dataclass
class Opened:
    """A report loaded in the browser, with everything it asked for or raised."""

    page: object
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # script errors, CSP refusals

    def rows(self) -> list[dict[str, str]]:
        return self.page.eval_on_selector_all(
            "#findings-table tbody tr",
            "trs => trs.map(tr => Object.fromEntries([...tr.cells].map(td => [td.dataset.label, td.textContent])))",
        )

    def statuses(self) -> list[str]:
        return self.page.eval_on_selector_all("#findings-table tbody tr", "trs => trs.map(tr => tr.dataset.status)")


def open_report(page, path: Path) -> Opened:
    opened = Opened(page)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_selector("#findings-table tbody tr")
    return opened


def expect(locator):
    """playwright's expect (imported here: without playwright, only the browser tests skip)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def search(page, text: str) -> None:
    """Type into the search box and submit it (Enter filters at once; typing waits a moment)."""
    page.fill("#filter-search", text)
    page.press("#filter-search", "Enter")
    expect(page.locator("#findings-count")).to_contain_text("match")


def counts_of(findings: list[dict], **where: str) -> dict[str, int]:
    chosen = [f for f in findings if all(f[k] == v for k, v in where.items())]
    return {"total": len(chosen), **{s: sum(f["status"] == s for f in chosen) for s in STATUSES}}


# --- in the browser ------------------------------------------------------------------------------


def test_the_summary_counts_are_the_checks(page, demo_report: Report) -> None:
    opened = open_report(page, demo_report.path)
    shown = page.eval_on_selector_all(
        "ul.totals li", "lis => Object.fromEntries(lis.map(li => [li.dataset.status, li.querySelector('.count').textContent]))")
    summary = demo_report.checked.summary()
    assert {name: int(shown[name].replace(",", "")) for name in ("total", *STATUSES)} == {
        name: summary[name] for name in ("total", *STATUSES)}
    assert summary["alarm"] > 0 and summary["ok"] > 0
    by_control = page.eval_on_selector_all(
        "#by-control tbody tr",
        "trs => trs.map(tr => [tr.querySelector('th a').textContent, "
        "Object.fromEntries([...tr.querySelectorAll('td[data-status]')].map(td => [td.dataset.status, td.textContent]))])",
    )
    assert len(by_control) == 7
    for control_id, cells in by_control:
        expected = counts_of(demo_report.findings, control_id=control_id)
        assert {name: int(cells[name]) for name in expected} == expected, control_id
    by_region = page.eval_on_selector_all(
        "#by-region tbody tr", "trs => trs.map(tr => [tr.querySelector('th').textContent, "
        "tr.querySelector('td[data-status=alarm]').textContent])")
    assert {region: int(n) for region, n in by_region} == {
        region: counts_of(demo_report.findings, region=region)["alarm"] for region, _ in by_region}
    assert page.text_content("#findings-count") == f"{summary['total']} findings."
    assert len(opened.rows()) == summary["total"]
    assert opened.errors == [] and opened.dialogs == []


def test_the_scope_of_the_snapshot_is_stated(page, demo_report: Report) -> None:
    open_report(page, demo_report.path)
    scope = page.eval_on_selector_all("dl.scope dt", "dts => Object.fromEntries(dts.map(dt => "
                                      "[dt.textContent, dt.nextElementSibling.textContent]))")
    finding = demo_report.findings[0]
    assert scope["Accounts"] == finding["account_id"]
    assert scope["Regions"] == "eu-west-1, us-east-1"
    assert scope["Run"] == finding["run_id"]
    assert scope["Collected"].startswith(finding["collected_at"])
    assert scope["Report by"] == f"bedrock-sql {html_report.__version__}"


def test_the_alarm_on_a_model_in_use_comes_first_with_how_to_fix_it(page, demo_report: Report) -> None:
    served = sqlite3.connect(demo_report.path.with_name("bedrock-demo.db")).execute(
        "SELECT model_arn FROM aws_bedrock_provisioned_model_throughput").fetchall()
    assert len(served) == 1
    opened = open_report(page, demo_report.path)
    first = opened.rows()[0]
    assert first["Status"] == "alarm" and first["Control"] == SEED
    assert first["Resource"] == served[0][0] and first["In use"] == "yes"
    assert page.text_content("#in-use tbody td[data-label=Resource]") == served[0][0]
    page.click("#findings-table tbody tr:first-child details.fix summary")
    fix = page.text_content("#findings-table tbody tr:first-child details.fix")
    assert "re-run the model customization job" in fix
    assert page.get_attribute("#findings-table tbody tr:first-child details.fix a",
                              "href").startswith("https://docs.aws.amazon.com/")


def test_filtering_by_status_control_and_a_summary_link(page, demo_report: Report) -> None:
    opened = open_report(page, demo_report.path)
    summary = demo_report.checked.summary()
    page.select_option("#filter-status", "alarm")
    assert set(opened.statuses()) == {"alarm"} and len(opened.statuses()) == summary["alarm"]
    assert page.text_content("#findings-count") == f"{summary['alarm']} of {summary['total']} findings match."
    page.select_option("#filter-control", label=SEED)
    rows = opened.rows()
    assert {r["Control"] for r in rows} == {SEED}
    assert len(rows) == counts_of(demo_report.findings, control_id=SEED)["alarm"]
    page.click("#filters button[type=reset]")
    expect(page.locator("#findings-table tbody tr")).to_have_count(summary["total"])
    # The count of ok findings in us-east-1, clicked in the by-region table, filters the table to them.
    link = page.locator("#by-region tbody tr", has_text="us-east-1").locator("td[data-status=ok] a")
    expected = int(link.text_content())
    link.click()
    rows = opened.rows()
    assert len(rows) == expected and {(r["Status"], r["Region"]) for r in rows} == {("ok", "us-east-1")}


def test_text_search_narrows_the_table(page, demo_report: Report) -> None:
    opened = open_report(page, demo_report.path)
    search(page, "hr-policy-qa-v1")
    rows = opened.rows()
    expected = [f for f in demo_report.findings if "hr-policy-qa-v1" in json.dumps(f).replace(f["control_title"], "")]
    assert 0 < len(rows) == len(expected) < len(demo_report.findings)
    search(page, "no-such-model-anywhere")
    assert opened.rows() == []


def test_clicking_a_heading_sorts_by_it(page, demo_report: Report) -> None:
    opened = open_report(page, demo_report.path)
    page.click("#findings-table th[data-sort=resource] button")
    resources = [r["Resource"] for r in opened.rows()]
    assert resources == sorted(resources, key=str.lower) and resources != [f["resource"] for f in demo_report.findings]
    assert page.get_attribute("#findings-table th[data-sort=resource]", "aria-sort") == "ascending"
    assert page.get_attribute("#findings-table th[data-sort=status]", "aria-sort") is None
    page.click("#findings-table th[data-sort=resource] button")
    assert [r["Resource"] for r in opened.rows()] == sorted(resources, key=str.lower, reverse=True)
    assert page.get_attribute("#findings-table th[data-sort=resource]", "aria-sort") == "descending"
    page.click("#findings-table th[data-sort=status] button")
    ranks = [("error", "alarm", "info", "skip", "ok").index(s) for s in opened.statuses()]
    assert ranks == sorted(ranks)


def test_at_phone_width_the_cards_are_sorted_by_a_choice(page, demo_report: Report) -> None:
    """The cards have no clickable headings: a Sort by choice does what they do, and Clear
    puts the page's own order back."""
    page.set_viewport_size({"width": 360, "height": 740})
    opened = open_report(page, demo_report.path)
    assert page.is_visible("#findings-sort")
    # The headings are there for screen readers only (clipped to one pixel), not for a finger.
    assert page.locator("#findings-table thead").bounding_box()["width"] <= 1
    statuses = opened.statuses()
    page.select_option("#findings-sort", "resource:-1")
    resources = [r["Resource"] for r in opened.rows()]
    assert resources == sorted(resources, key=str.lower, reverse=True) and opened.statuses() != statuses
    assert page.get_attribute("#findings-table th[data-sort=resource]", "aria-sort") == "descending"
    page.select_option("#findings-sort", "resource:1")
    assert [r["Resource"] for r in opened.rows()] == sorted(resources, key=str.lower)
    page.click("#filters button[type=reset]")
    expect(page.locator("#findings-sort")).to_have_value("status:1")
    assert opened.statuses() == statuses
    assert opened.errors == []


def test_at_desktop_width_the_headings_sort_and_the_choice_follows(page, demo_report: Report) -> None:
    open_report(page, demo_report.path)
    assert not page.is_visible("#findings-sort")  # the headings sort there
    page.click("#findings-table th[data-sort=region] button")
    page.click("#findings-table th[data-sort=region] button")
    assert page.input_value("#findings-sort") == "region:-1"


def test_no_request_leaves_the_page(page, demo_report: Report) -> None:
    opened = open_report(page, demo_report.path)
    page.select_option("#filter-status", "alarm")
    page.fill("#filter-search", "key")
    page.click("#findings-table th[data-sort=key] button")
    page.click("#findings-table tbody tr:first-child details.fix summary")
    page.wait_for_timeout(200)  # let anything the page might load start
    assert opened.requests == [demo_report.path.as_uri()]
    assert opened.errors == []


def test_hostile_values_show_as_text_and_run_nothing(page, hostile_report: Report) -> None:
    opened = open_report(page, hostile_report.path)
    search(page, "alert(1)")
    rows = opened.rows()
    assert rows and all(HOSTILE_NAME in r["Resource"] for r in rows)
    assert any(r["Reason"].startswith(f"Model {HOSTILE_NAME} is named.") for r in rows)
    assert HOSTILE_NAME in page.text_content("#in-use tbody")  # the throughput serves it
    search(page, "HYPERLINK")
    assert any(r["Reason"].startswith(f"{FORMULA_NAME} is encrypted with the Bedrock-owned key") for r in opened.rows())
    assert HOSTILE_MESSAGE in page.text_content("#errors")
    assert "<b>bold</b> title" in page.text_content("#controls")
    # Nothing ran and nothing was added: the page's own two scripts, no image, no markup from a value.
    assert opened.dialogs == [] and opened.errors == []
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.querySelectorAll('img, b, i, #controls a[href^=javascript], a[href^=javascript]').length") == 0
    # A reference that is no web address stays text; a web address is a link.
    search(page, USER_CONTROL)
    page.click("#findings-table tbody tr:first-child details.fix summary")
    fix = page.locator("#findings-table tbody tr:first-child details.fix")
    assert "javascript:alert(5)" in fix.text_content() and "Rename <i>it</i>." in fix.text_content()
    assert fix.locator("a").evaluate_all("links => links.map(a => a.href)") == ["https://example.com/ref"]
    assert opened.requests == [hostile_report.path.as_uri()]


def test_a_muted_finding_says_so_with_its_reason(page, hostile_report: Report) -> None:
    opened = open_report(page, hostile_report.path)
    summary = hostile_report.checked.summary()
    assert summary["muted_alarm"] == 1
    assert page.text_content("ul.totals li[data-status=alarm] .of-which") == "1 muted"
    search(page, "accepted-risk-model")
    muted = [r for r in opened.rows() if r["Control"] == SEED]
    assert len(muted) == 1
    assert muted[0]["Status"] == "alarm (muted)" and "Accepted risk: Retired <next> quarter" in muted[0]["Reason"]


@pytest.mark.parametrize("which", ["demo_report", "hostile_report"])
def test_phone_width_has_no_horizontal_overflow(page, which: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(which)
    page.set_viewport_size({"width": 360, "height": 740})
    open_report(page, report.path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # The findings are cards there: the column headings move into each cell's label.
    assert page.evaluate("getComputedStyle(document.querySelector('#findings-table tbody tr')).display") == "block"


def test_print_hides_the_filters_and_keeps_the_table(page, demo_report: Report) -> None:
    open_report(page, demo_report.path)
    assert page.is_visible("#filters")
    page.emulate_media(media="print")
    assert not page.is_visible("#filters") and not page.is_visible("nav.sections")
    assert page.is_visible("#findings-table") and page.is_visible("#by-control table")
    assert page.evaluate("document.querySelectorAll('#findings-table tbody tr').length") == len(demo_report.findings)
    assert page.pdf()[:5] == b"%PDF-"


def test_a_screenshot_is_a_png(page, demo_report: Report) -> None:
    open_report(page, demo_report.path)
    png = page.screenshot()
    assert png[:8] == PNG_SIGNATURE
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 800) and len(png) > 20_000  # a rendered page, not a blank one


# --- the file itself ------------------------------------------------------------------------------


class _ExternalReferences(HTMLParser):
    """Every attribute that points outside the page (http:, https:, //host)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and re.match(r"\s*(https?:)?//", value, re.IGNORECASE):
                self.found.append((tag, name, value))


@pytest.mark.parametrize("which", ["demo_report", "hostile_report"])
def test_the_file_fetches_nothing_from_outside(which: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(which)
    parser = _ExternalReferences()
    parser.feed(report.text)
    references = {r for f in report.findings for r in f.get("references", [])} or None
    links = [(tag, name, value) for tag, name, value in parser.found]
    # Only the controls' references, as links a reader may follow; nothing the page loads.
    assert links and all(tag == "a" and name == "href" for tag, name, _ in links), links
    if references:
        assert {value for _, _, value in links} <= references
    assert not re.search(r"@import|url\(|<link|<iframe|<object|<embed", report.text, re.IGNORECASE)
    policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', report.text)[1])
    assert policy.startswith("default-src 'none'") and "unsafe" not in policy


def test_values_cannot_close_the_data_script(hostile_report: Report) -> None:
    text = hostile_report.text
    assert text.count("<script") == 2 and text.count("</script>") == 2
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.DOTALL)[1]
    rows = json.loads(data)["rows"]
    assert any(HOSTILE_NAME in row[3] for row in rows)  # \u003c in the file, < once parsed
    for value in ("</script><!--", "a&b", {"k": "<x>"}):
        encoded = script_json(value)
        assert not set("<>&") & set(encoded) and json.loads(encoded) == value


def test_output_html_writes_the_same_page_on_stdout(tmp_path: Path, demo_report: Report) -> None:
    db = demo_report.path.with_name("bedrock-demo.db")
    checked = check(db, "--output", "html")
    assert checked.out == demo_report.text
    assert checked.code == demo_report.checked.code
    assert checked.err.startswith("Summary: total")  # the page is all of stdout


def test_the_table_keeps_the_most_severe_findings_past_its_limit(tmp_path: Path, monkeypatch) -> None:
    snap = SnapshotBuilder(tmp_path / "many.db")
    snap.add_run()
    key = snap.add_key("alias/ok")
    for i in range(12):
        snap.add_model(f"ok-{i:02d}", model_kms_key_arn=key["arn"])
    for i in range(3):
        snap.add_model(f"owned-{i}")
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1")
    monkeypatch.setattr(html_report, "TABLE_LIMIT", 5)
    checked = check(snap.path, SEED, "--export", tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text()
    rows = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.DOTALL)[1])["rows"]
    assert [row[0] for row in rows] == ["error", "alarm", "alarm", "alarm", "ok"]
    summary = checked.summary()
    assert summary["total"] == 16 and "The table holds the 5 most severe of 16 findings" in text
    assert 'data-status="ok"><span class="count">12<' in text  # the counts stay complete


def test_the_page_says_when_its_table_holds_fewer_findings(page, tmp_path: Path, monkeypatch) -> None:
    snap = SnapshotBuilder(tmp_path / "many.db")
    snap.add_run()
    for i in range(4):
        snap.add_model(f"owned-{i}")
    monkeypatch.setattr(html_report, "TABLE_LIMIT", 3)
    check(snap.path, SEED, "--export", tmp_path / "report.html")
    opened = open_report(page, tmp_path / "report.html")
    assert len(opened.rows()) == 3
    assert page.text_content("#findings-count") == "3 findings (the table holds 3 of 4)."


# --- what the page can do with a value ------------------------------------------------------------------
#
# The browser tests above catch a value set as markup only where Chromium runs; these read the
# files themselves, so a new sink in report.js, a link built from data or a CSP that lets the
# page fetch fails everywhere.

REPORT_JS = Path(html_report.__file__).with_name("templates") / "report.js"

# Anything that turns a string into markup or code, or sends something out. Searched in the
# whole file, comments too: a sink is judged when it is added, not inherited.
JS_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
            "DOMParser", "srcdoc", "eval(", "Function(", "javascript:", "setHTML", "parseHTMLUnsafe",
            "fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon", "window.open", "import(",
            "location")
# The properties report.js may assign: text, classes, its own state; href only as below.
JS_PROPERTIES = {"textContent", "className", "href", "rel", "title", "hidden", "value"}


def test_report_js_puts_values_on_the_page_as_text_only() -> None:
    js = REPORT_JS.read_text(encoding="utf-8")
    assert [sink for sink in JS_SINKS if sink.lower() in js.lower()] == []
    assert not re.search(r"set(Timeout|Interval)\(\s*[\"'`]", js)  # a string there is eval
    assigned = set(re.findall(r"\.([A-Za-z_$][\w$]*)\s*=(?!=)", js))
    assert assigned <= JS_PROPERTIES, assigned - JS_PROPERTIES
    # Attributes set from script: data-* and aria-* only (no on*, href, src, style).
    names = re.findall(r"setAttribute\(\s*[\"']([^\"']+)", js)
    assert names and all(name.startswith(("data-", "aria-")) for name in names), names
    assert "setAttribute(" not in re.sub(r"setAttribute\(\s*[\"'](data-|aria-)", "", js)  # no computed name
    # The two links it makes: to a control's section, and a control's reference that is an
    # http(s) URL (references come from control files, never from resource data).
    hrefs = re.findall(r"\.href\s*=\s*([^;]+);", js)
    assert hrefs == ["reference", '"#control-" + row[CONTROL]'], hrefs
    assert re.search(r"if \(isWebLink\(reference\)\) \{\s*var link = element\(\"a\", null, reference\);\s*link\.href = reference;", js)
    assert "function isWebLink(url) { return /^https?:\\/\\/[^\\s]+$/i.test(url); }" in js


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += [(tag, name, value or "") for name, value in attrs]


def test_no_value_becomes_a_link_a_source_or_a_handler(hostile_report: Report) -> None:
    parser = _Attributes()
    parser.feed(hostile_report.text)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', hostile_report.text, re.DOTALL)[1])
    references = {r for control in data["controls"] for r in control["references"]}  # the control files'
    for tag, name, value in parser.attributes:
        assert not name.startswith("on") and name not in ("src", "srcset", "srcdoc", "action", "formaction",
                                                          "style", "background", "poster"), (tag, name, value)
        if name in ("href", "xlink:href"):
            # A jump within the page, or a control's http(s) reference: never a value of the data.
            assert value.startswith("#") or (value in references and value.startswith("https://")), value
        assert "javascript:" not in value.lower(), (tag, name, value)
    assert JAVASCRIPT_NAME in hostile_report.text  # the model is there, as text


def test_the_content_security_policy_lets_the_page_fetch_nothing(hostile_report: Report) -> None:
    policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', hostile_report.text)[1])
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives.pop("default-src") == ["'none'"]  # every fetch directive not named: none
    for name in ("script-src", "style-src"):  # the page's own script and style, by hash
        sources = directives.pop(name)
        assert len(sources) == 1 and re.fullmatch(r"'sha256-[A-Za-z0-9+/]+=*'", sources[0]), (name, sources)
    assert directives.pop("img-src") == ["data:"]  # inline images only (none come from data)
    assert directives.pop("base-uri") == ["'none'"] and directives.pop("form-action") == ["'none'"]
    assert directives == {}, directives  # anything else (connect-src *, a host...) would let it fetch
