"""The documentation must match the code: the generated table reference, the control catalogue,
every relative link, and the README's shown output, which is re-made from a fresh demo."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bedrock_sql.catalog import markdown_reference, table_catalog
from bedrock_sql.controls import bundled_controls
from e2e_helpers import cli_env
from test_newcomer import on_terminal

ROOT = Path(__file__).resolve().parents[1]
README_PATH = ROOT / "README.md"
README = README_PATH.read_text(encoding="utf-8")
TABLES_MD = ROOT / "docs" / "tables.md"
DOCUMENTS = [README_PATH, *sorted((ROOT / "docs").glob("*.md"))]

TRIMMED = "…"  # in the README's shown output: the cut part of a cell, or rows left out


def markdown_section(text: str, heading: str) -> str:
    """The body of `heading` (e.g. '## Tables') up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + 1
    following = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.MULTILINE)
    return text[start:] if following is None else text[start:start + len(heading) + following.start()]


def without_code(text: str) -> str:
    """Markdown prose only: fenced blocks and inline code spans removed (they hold no links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped, - for spaces)."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL), re.MULTILINE):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = anchor, 0
        while candidate in anchors:  # GitHub numbers repeated headings
            n += 1
            candidate = f"{anchor}-{n}"
        anchors.add(candidate)
    return anchors


# --- generated reference and catalogue -----------------------------------------------------

def test_table_reference_is_generated_from_the_providers():
    assert TABLES_MD.read_text(encoding="utf-8") == markdown_reference(), (
        "docs/tables.md is stale: run python docs/make_table_reference.py"
    )


def test_readme_lists_every_table_with_a_link_to_its_reference():
    section = markdown_section(README, "## Tables")
    for table in table_catalog():
        assert f"[`{table}`](docs/tables.md#{table})" in section, table


def test_every_bundled_control_is_in_the_catalogue():
    catalogue = markdown_section(README, "## Controls")
    for control in bundled_controls():
        assert f"`{control.id}` | {control.severity} |" in catalogue, control.id


# --- links ---------------------------------------------------------------------------------

def relative_links(document: Path) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", without_code(document.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(document):
    links = relative_links(document)
    assert links or document != README_PATH, "no links found in README: is the link pattern broken?"
    for link in links:
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: {link} -> {target} does not exist"
        if anchor and target.suffix == ".md":
            anchors = heading_anchors(target.read_text(encoding="utf-8"))
            assert anchor in anchors, f"{document.name}: {link}: no heading #{anchor} in {target.name}"


def test_heading_anchors_follow_github():
    text = "# Tables\n## AWS options (collect, `query --live`)\n## aws_kms_key\n## Tables\n```\n## not a heading\n```\n"
    assert heading_anchors(text) == {"tables", "aws-options-collect-query---live", "aws_kms_key", "tables-1"}


# --- the README's commands and shown output ------------------------------------------------

def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_commands_are_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    try_it = fenced_blocks(markdown_section(README, "## Try it (offline demo, no AWS account needed)"), "bash")[0].strip()
    run_tests = fenced_blocks(markdown_section(README, "## Run the tests"), "bash")[0].strip()
    assert run_tests in ci
    assert try_it.endswith("pip install '.[demo]' && bedrock-sql demo")


@dataclass
class ShownCommand:
    command: str
    output: list[str] = field(default_factory=list)


def shown_commands() -> list[ShownCommand]:
    """Every `$ command` of the README's console blocks, with the output lines shown under it."""
    commands: list[ShownCommand] = []
    for block in fenced_blocks(README, "console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(ShownCommand(line[2:]))
            else:
                commands[-1].output.append(line)
    return commands


def normalised(line: str) -> str:
    """Run ids and times change with every demo; everything else must be as shown."""
    line = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>", line)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", line).rstrip()


def shown_line_matches(shown: str, real: str) -> bool:
    """A line shown whole must equal the real line; a trimmed one must be its pieces, in order."""
    shown, real = normalised(shown), normalised(real)
    if shown == real or TRIMMED not in shown:  # (check's table cuts cells with … itself)
        return shown == real
    first, *rest = shown.split(TRIMMED)
    if not real.startswith(first):
        return False
    position = len(first)
    for piece in rest:
        found = real.find(piece.rstrip(), position)
        if found < 0:
            return False
        position = found + len(piece.rstrip())
    return True


def assert_shown_in_order(shown_lines: list[str], real_lines: list[str], command: str) -> None:
    """Each shown line is a real line, in order; and every cut is marked: real lines are left
    out (before the first shown line, between two, after the last) only where a line of its
    own is `…`, and a `…` line stands for at least one line left out."""
    cursor, marked = 0, False
    for shown in shown_lines:
        if shown.strip() == TRIMMED:  # rows left out
            marked = True
            continue
        for index in range(cursor, len(real_lines)):
            if shown_line_matches(shown, real_lines[index]):
                break
        else:
            pytest.fail(f"README shows a line that `{command}` no longer prints (in this order):\n{shown}\n"
                        f"--- its output:\n" + "\n".join(real_lines))
        if index > cursor and not marked:
            pytest.fail(f"README leaves out {index - cursor} line(s) of `{command}` before this one without a "
                        f"line `{TRIMMED}`:\n{shown}\n--- left out:\n" + "\n".join(real_lines[cursor:index]))
        if index == cursor and marked:
            pytest.fail(f"README marks a cut with `{TRIMMED}` before this line of `{command}`, but nothing is "
                        f"left out there:\n{shown}")
        cursor, marked = index + 1, False
    if cursor < len(real_lines) and not marked:
        pytest.fail(f"README leaves out the last {len(real_lines) - cursor} line(s) of `{command}` without a "
                    f"line `{TRIMMED}`:\n" + "\n".join(real_lines[cursor:]))
    if cursor == len(real_lines) and marked:
        pytest.fail(f"README ends the output of `{command}` with `{TRIMMED}`, but nothing is left out")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A fresh `bedrock-sql demo` in an empty directory, as the README's reader makes it."""
    directory = tmp_path_factory.mktemp("readme-demo")
    result = run_shown(["bedrock-sql demo"], directory)[0]
    assert result.returncode == 0, result.stderr
    return directory


def run_shown(commands: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run each command with bash, `bedrock-sql` being this interpreter's bedrock_sql, stdout
    and stderr together. `check`'s table, shown as a terminal prints it, is run on a terminal
    of README_COLUMNS."""
    define = f'bedrock-sql() {{ "{sys.executable}" -m bedrock_sql "$@"; }}'
    results = []
    for command in commands:
        if on_a_terminal(command):
            shown = on_terminal(command, cwd, README_COLUMNS, shell=True)
            results.append(subprocess.CompletedProcess(command, shown.code, shown.text))
        else:
            results.append(subprocess.run(["bash", "-c", f"{define}\n{command}"], cwd=cwd, env=cli_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120))
    return results


README_COLUMNS = 120  # the terminal README's `check` table is shown on (it fits the terminal's width)


def on_a_terminal(command: str) -> bool:
    """`check` in its default table, printed to the terminal (not piped, redirected or -o)."""
    return " check " in f" {command} " and " -o " not in f" {command} " and not re.search(r"[|>]", command)


def test_readme_shows_real_output(demo_dir):
    commands = shown_commands()
    assert [c.command.split()[:3] for c in commands if c.command.startswith("bedrock-sql")][:2] == [
        ["bedrock-sql", "--db", "bedrock-demo.db"]] * 2, "the shown commands changed shape: update this test"
    for shown, result in zip(commands, run_shown([c.command for c in commands], demo_dir)):
        # check exits 1 on the demo's alarms; anything else is a failure of the shown command
        assert result.returncode in (0, 1), f"`{shown.command}` exited {result.returncode}:\n{result.stdout}"
        assert_shown_in_order(shown.output, result.stdout.splitlines(), shown.command)


def test_readme_check_table_and_csv_header_are_real(demo_dir):
    commands = {c.command: c for c in shown_commands()}
    table = next(c for command, c in commands.items() if " check " in command and " -o " not in command)
    shown_rows = [line.split("|") for line in table.output if line.startswith("| ") and not line.startswith("| status")]
    assert shown_rows, "the README shows no check rows"
    findings = run_shown([table.command + " -o csv 2>/dev/null"], demo_dir)[0].stdout
    assert on_a_terminal(table.command) and max(map(len, table.output)) <= README_COLUMNS
    control = table.command.split()[-1]
    real = [(row["control_id"], row["status"].upper(), row["resource"]) for row in csv.DictReader(io.StringIO(findings))]
    for cells in shown_rows:
        status, resource_tail = cells[1].strip(), cells[2].strip().lstrip(TRIMMED)
        assert any(c == control and s == status and r.endswith(resource_tail) for c, s, r in real), (status, resource_tail)
    head = next(c for command, c in commands.items() if command.startswith("head") and command.endswith(".csv"))
    real_header = (demo_dir / head.command.split()[-1]).read_text(encoding="utf-8").splitlines()[0]
    assert head.output[0] == real_header


def test_shown_line_matching_can_fail():
    assert shown_line_matches("| ALARM | …:custom-model/a | reason…| 1 |", "| ALARM | arn:x:custom-model/a | reason long | 1 |")
    assert not shown_line_matches("| OK    | …:custom-model/a | reason…| 1 |", "| ALARM | arn:x:custom-model/a | reason long | 1 |")
    assert not shown_line_matches("| ALARM | …:custom-model/b | reason…| 1 |", "| ALARM | arn:x:custom-model/a | reason long | 1 |")
    assert not shown_line_matches("a,b", "a,b,c")


def test_every_cut_must_be_marked():
    real = ["head", "row 1", "row 2", "row 3", "foot"]
    assert_shown_in_order(["head", "row 1", "row 2", "row 3", "foot"], real, "c")
    assert_shown_in_order(["head", TRIMMED, "row 3", "foot"], real, "c")
    assert_shown_in_order(["head", "row 1", TRIMMED], real, "c")
    assert_shown_in_order([TRIMMED, "foot"], real, "c")
    for unmarked in (["head", "row 3", "foot"],  # rows left out between two lines
                     ["head", "row 1"],  # the end left out
                     ["row 2", "foot"],  # the start left out
                     ["head", TRIMMED, "row 1", "row 2", "row 3", "foot"],  # a mark where nothing is cut
                     ["head", "row 1", "row 2", "row 3", "foot", TRIMMED]):
        with pytest.raises(pytest.fail.Exception):
            assert_shown_in_order(unmarked, real, "c")
