"""A newcomer's first hour (issue 20): `check` fits the terminal it prints on (and is whole
when piped), `controls` is a short list there, and the hints say what to type.

The terminal is a real one: the command runs on a pseudo-terminal of the given size (no
COLUMNS in its environment), as a user's shell runs it.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bedrock_sql.demo import run_demo
from bedrock_sql.report import ELLIPSIS, fit_summary, short_arn, _fitted_rows
from e2e_helpers import cli_env
from helpers import run_main as cli

STYLE = re.compile(r"\x1b\[[0-9;]*m")  # our colours (the only escapes a terminal gets)


@dataclass
class Shown:
    code: int
    text: str  # stdout and stderr as the terminal showed them, colours removed

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def on_terminal(command: list[str] | str, cwd: Path, columns: int, *, shell: bool = False) -> Shown:
    """Run `bedrock-sql COMMAND` (or, with ``shell``, a bash line where `bedrock-sql` is this
    interpreter's) on a pseudo-terminal ``columns`` wide."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in cli_env().items() if k not in ("COLUMNS", "LINES")}
    if shell:
        define = f'bedrock-sql() {{ "{sys.executable}" -m bedrock_sql "$@"; }}'
        argv = ["bash", "-c", f"{define}\n{command}"]
    else:
        argv = [sys.executable, "-m", "bedrock_sql", *command]
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while True:
            if not select.select([main], [], [], max(deadline - time.monotonic(), 0))[0]:
                pytest.fail(f"{command} printed nothing more for 120 s:\n" + b"".join(chunks).decode(errors="replace"))
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        if process.poll() is None and time.monotonic() > deadline:
            process.kill()
    code = process.wait(timeout=120)
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    return Shown(code, STYLE.sub("", text))


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("newcomer")
    run_demo(folder / "bedrock-demo.db", io.StringIO())
    return folder


def piped(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bedrock_sql", "--db", "bedrock-demo.db", *args], cwd=folder,
                          env=cli_env(), capture_output=True, text=True, timeout=120)


# --- check fits the terminal --------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 120])
def test_the_demos_check_fits_the_terminal(demo: Path, columns: int) -> None:
    shown = on_terminal(["--db", "bedrock-demo.db", "check"], demo, columns)
    assert shown.code == 1, shown.text  # the demo's alarms
    too_wide = [line for line in shown.lines if len(line) > columns]
    assert not too_wide, f"{len(too_wide)} lines wider than {columns}:\n" + "\n".join(too_wide[:5])
    # Every finding is still there, one line each, its resource recognisable.
    whole = piped(demo, "check", "-o", "csv").stdout.splitlines()
    rows = [line for line in shown.lines if line.startswith("| ") and not line.startswith("| status")]
    assert len(rows) == len(whole) - 1
    assert any(f"{ELLIPSIS}:custom-model/hr-policy-qa-v1 " in row or "hr-policy-qa-v1 " in row for row in rows)
    assert any(line.startswith("Summary: total 120") for line in shown.lines)


def test_check_is_whole_when_piped_and_with_wide(demo: Path) -> None:
    whole = piped(demo, "check")
    assert whole.returncode == 1
    assert ELLIPSIS not in whole.stdout and max(map(len, whole.stdout.splitlines())) > 120
    assert "arn:aws:bedrock:us-east-1:123456789012:custom-model/hr-policy-qa-v1" in whole.stdout
    wide = on_terminal(["--db", "bedrock-demo.db", "check", "--wide"], demo, 80)
    assert wide.code == 1
    # The same rows as piped (the terminal gets colours, and its rows are whole).
    table = [line for line in wide.lines if line.startswith("| ")]
    assert table == [line for line in whole.stdout.splitlines() if line.startswith("| ")]


def test_wide_goes_with_the_table(capsys, demo: Path) -> None:
    code, out, err = cli(capsys, "--db", demo / "bedrock-demo.db", "check", "-o", "csv", "--wide")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bedrock-sql: error: --wide goes with --output table")


def test_a_short_arn_drops_only_what_the_row_says() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:custom-model/m"
    assert short_arn(arn, "123456789012", "us-east-1") == f"{ELLIPSIS}:custom-model/m"
    # Another account or region than the row's: nothing may be lost.
    assert short_arn(arn, "999999999999", "us-east-1") == arn
    assert short_arn(arn, "123456789012", "eu-west-1") == arn
    assert short_arn("not-an-arn", "123456789012", "us-east-1") == "not-an-arn"


def test_fitted_cells_stay_inert_and_fit() -> None:
    from bedrock_sql.render import render

    hostile = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 " + "\u202e" * 30 + "x" * 200
    rows = _fitted_rows([("ALARM", "arn:aws:bedrock:us-east-1:1:custom-model/" + "n" * 90, hostile, "1", "us-east-1")],
                        80)
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    render(["status", "resource", "reason", "account_id", "region"], rows, "table", out)
    assert "\x1b" not in out.getvalue() and "\u202e" not in out.getvalue()
    assert max(map(len, out.getvalue().splitlines())) <= 80
    assert rows[0][2].endswith(ELLIPSIS) and rows[0][1].startswith(ELLIPSIS) and rows[0][1].endswith("nnn")


def test_the_summary_fits_too() -> None:
    line = ("Summary: total 120, ok 54, alarm 30, info 10, skip 26, error 0; snapshot collected "
            "2026-12-08T04:41:31Z, run 7f084ea0-94ad-4dad-8284-43c4f5d36fbe")
    assert fit_summary(line, None) == line
    for width in (80, 60):
        fitted = fit_summary(line, width)
        assert max(map(len, fitted.splitlines())) <= width
        assert " ".join(fitted.split()) == " ".join(line.split())  # nothing lost


# --- controls: a short list on a terminal --------------------------------------------------------


def test_controls_on_a_terminal_is_id_severity_title(demo: Path) -> None:
    short = on_terminal(["controls"], demo, 120)
    assert short.code == 0
    header = [cell.strip() for cell in short.lines[1].split("|")[1:-1]]
    assert header == ["id", "severity", "title"]
    assert "bedrock_custom_model_encrypted_with_cmk" in short.text
    assert max(map(len, short.lines)) <= 120
    long = on_terminal(["controls", "--long"], demo, 120)
    assert [cell.strip() for cell in long.lines[1].split("|")[1:-1]] == [
        "id", "title", "severity", "frameworks", "description"]
    # Piped: every column, as before (scripts read it).
    whole = subprocess.run([sys.executable, "-m", "bedrock_sql", "controls"], cwd=demo, env=cli_env(),
                           capture_output=True, text=True, timeout=60)
    assert [cell.strip() for cell in whole.stdout.splitlines()[1].split("|")[1:-1]] == [
        "id", "title", "severity", "frameworks", "description"]
