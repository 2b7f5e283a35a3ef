"""Hostile resource data, end to end (issue 19): nothing bedrock-sql writes lets it run,
open, fetch or restyle anything.

One adversarial estate (tests/hostile_estate.py: every free-text field the API allows --
descriptions, tag keys and values, S3 URIs, hyperparameters, key descriptions, policy Sids,
a role path, a failure message -- filled with one payload of each class) is seeded through
the HTTP moto server, once for the module. Every AWS-talking command goes through an
AwsProxy that records what reached "AWS". Then, as a user would: `collect` twice (the estate
changed in between), every `query -o` and `check -o` format, every `--export`, `diff` in its
formats, `remediate` (the script, `--output json`, `--apply`), and the script itself run with
the real AWS CLI against moto -- the whole plan's, and, for each class that could run
something, the plan of that class's own model alone (`remediate --model`), so that one class
breaking the script (a syntax error) cannot hide another that would run. The environment holds
canaries (CANARY_SECRET, a unique AWS_SECRET_ACCESS_KEY, a HOME path, a file a file://
payload names). BEDROCK_SQL_HOSTILE_DUMP=DIR keeps every output in DIR, to read them.

Each test is one (output, payload class) pair, so a failure names the output that leaked and
the class that leaked through it:

- every output: no canary (``envvar``, ``paramfile``), and no marker file ever appears
  (``test_no_payload_ran``, per stage and class);
- terminal outputs (table, line, brief, the diff table, what collect/remediate/the script
  print, every stderr): no raw ESC/BEL/CR/C1 (``terminal``);
- Markdown outputs, rendered by markdown-it with raw HTML on and every link scheme allowed:
  no element from data (``html``, ``markdown``), no data line breaking out of its table row
  (``newline``, ``heredoc``);
- CSV outputs: no cell with a formula payload starts with = + - @ (``formula_*``);
- the HTML report: no raw ``<script>``/``<img onerror>`` from data, and its CSP meta;
- the remediation outputs: no placeholder look-alike turned into a ``$(...)``;
- the AWS requests: no canary.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import boto3
import pytest

from conftest import reset_moto_server
from e2e_helpers import AwsProxy, cli_command, cli_env
from hostile_estate import (
    CANARY_SECRET, CLASSES, FILE_CANARY, HOME_CANARY, MARKER_PREFIX, SECRET_ACCESS_KEY, HostileEstate,
    change_estate, check_canaries, check_csv, check_html_report, check_markdown, check_no_live_placeholder,
    check_raw_controls, exact_values, marker_files, payloads, seed_hostile_estate,
)

SCRIPT_NAME = "bedrock-cmk-remediation.sh"
# Seeding, two collects, ~25 commands and ten scripts under the real AWS CLI: about two
# minutes on an idle 2-core machine, all in the module fixture (the first test's setup).
pytestmark = pytest.mark.timeout(900)


@dataclass
class Output:
    """One thing bedrock-sql wrote: a command's stdout (or a file it wrote), and its stderr."""

    name: str
    kind: str  # terminal, csv, json, jsonl, markdown, html, script, requests
    text: str = ""
    stderr: str = ""
    failure: str | None = None  # the command did not do its job (unexpected exit code...)


@dataclass
class Stage:
    markers: list[Path] = field(default_factory=list)  # marker files that appeared during it


@dataclass
class World:
    root: Path
    work: Path
    estate: HostileEstate | None = None
    outputs: dict[str, Output] = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)
    setup_failure: str | None = None


# The outputs and their kinds, known at collection time (one test per output and class).
QUERY_FORMATS = {"table": "terminal", "csv": "csv", "json": "json", "jsonl": "jsonl", "markdown": "markdown",
                 "line": "terminal"}
CHECK_FORMATS = {"table": "terminal", "brief": "terminal", "csv": "csv", "json": "json", "jsonl": "jsonl",
                 "markdown": "markdown", "asff": "json", "ocsf": "json"}
EXPORTS = {"csv": "csv", "json": "json", "jsonl": "jsonl", "md": "markdown", "asff.json": "json",
           "ocsf.json": "json", "html": "html"}
DIFF_FORMATS = {"table": "terminal", "csv": "csv", "json": "json", "jsonl": "jsonl", "markdown": "markdown"}
# The classes that would run a command, or read a file, if they ever reached a shell.
EXECUTING = ("newline", "cmdsubst", "backtick", "quotes", "heredoc", "placeholder", "envvar", "paramfile")
OUTPUTS: dict[str, str] = {
    "collect-old": "terminal",
    "collect-new": "terminal",
    **{f"query-{f}": kind for f, kind in QUERY_FORMATS.items()},
    **{f"check-{f}": kind for f, kind in CHECK_FORMATS.items()},
    **{f"export-{f}": kind for f, kind in EXPORTS.items()},
    **{f"diff-{f}": kind for f, kind in DIFF_FORMATS.items()},
    "remediate-script": "script",  # the script and its key policies
    "remediate-stdout": "terminal",  # what `remediate` printed writing them
    "remediate-json": "json",
    "remediate-apply": "terminal",
    "script-run": "terminal",  # the script's own output, run with the real AWS CLI
    # The plan of each executing class's own model alone (`remediate --model`), run the same way.
    **{f"class-script-{cls}": "terminal" for cls in EXECUTING},
    "requests-collect": "requests",
    "requests-apply": "requests",
    "requests-script": "requests",
    "requests-class-scripts": "requests",
}
STAGES = ("seed", "collect", "query-check-diff", "remediate", "apply", "script-run", "class-scripts")


# --------------------------------------------------------------------------- the world


def _run(world: World, env: dict, args: list[str], *, cwd: Path | None = None, timeout: float = 240,
         ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    result = subprocess.run(cli_command(*args), cwd=cwd or world.work, env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, errors="surrogateescape")
    result.failure = None if result.returncode in ok else (
        f"`bedrock-sql {' '.join(args)[:200]}` exited {result.returncode}, expected {ok}: {result.stderr[-1500:]}")
    return result


def _add(world: World, name: str, result, text: str | None = None) -> None:
    world.outputs[name] = Output(name, OUTPUTS[name], result.stdout if text is None else text, result.stderr,
                                 result.failure)


def _stage(world: World, name: str, seen: set[Path]) -> None:
    now = set(marker_files(_roots(world)))
    world.stages[name] = Stage(sorted(now - seen))
    seen |= now


def _roots(world: World) -> list[Path]:
    return [world.root, Path.cwd(), Path(__file__).resolve().parent.parent]


def _all_text_query(db: Path) -> str:
    """One query returning every text cell of the snapshot that holds a payload (its table,
    column and value): each format then renders every payload."""
    connection = sqlite3.connect(db)
    try:
        tables = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        parts = []
        for table in tables:
            for (column,) in connection.execute(f"SELECT name FROM pragma_table_info('{table}') ORDER BY cid"):
                parts.append(f"SELECT '{table}' AS source, '{column}' AS field, CAST(\"{column}\" AS TEXT) AS value "
                             f"FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), 'HX') > 0")
    finally:
        connection.close()
    return "\nUNION ALL\n".join(parts)


def _script_run(world: World, env: dict, script: Path) -> subprocess.CompletedProcess:
    bash = shutil.which("bash") or "/bin/bash"
    result = subprocess.run([bash, str(script)], cwd=world.work, env=env, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL, errors="surrogateescape")
    result.failure = None if result.returncode == 0 else (
        f"the script exited {result.returncode}: {result.stderr[-1500:]}")
    return result


@pytest.fixture(scope="module")
def world(moto_server: str, tmp_path_factory: pytest.TempPathFactory):
    """Seed, collect twice, and write every output once; the tests judge what was written."""
    reset_moto_server(moto_server)
    root = tmp_path_factory.mktemp("hostile")
    world = World(root=root, work=root / "work")
    world.work.mkdir()
    home = root / HOME_CANARY
    home.mkdir()
    canary_file = root / "canary.txt"
    canary_file.write_text(FILE_CANARY)
    seen: set[Path] = set()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    world.estate = seed_hostile_estate(session, moto_server, canary_file)
    _stage(world, "seed", seen)

    with AwsProxy(moto_server) as proxy:
        env = cli_env(proxy.url, CANARY_SECRET=CANARY_SECRET, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, HOME=str(home))
        old, new = world.work / "old.db", world.work / "bedrock.db"

        # --- collect, change the estate, collect again
        collect = ["collect", "--kms-keys", "all", "--region", "us-east-1"]
        _add(world, "collect-old", _run(world, env, ["--db", str(old), *collect]))
        change_estate(session, moto_server, world.estate)
        _add(world, "collect-new", _run(world, env, ["--db", str(new), *collect]))
        world.outputs["requests-collect"] = _requests("requests-collect", proxy)
        _stage(world, "collect", seen)
        if not new.exists():
            world.setup_failure = f"collect wrote no snapshot: {world.outputs['collect-new'].stderr[-2000:]}"
            yield world
            return

        # --- query, check, exports, diff (no AWS)
        sql = _all_text_query(new)
        for fmt in QUERY_FORMATS:
            _add(world, f"query-{fmt}", _run(world, env, ["query", "-o", fmt, sql]))
        for fmt in CHECK_FORMATS:
            _add(world, f"check-{fmt}", _run(world, env, ["check", "-o", fmt], ok=(1,)))
        exports = {fmt: world.work / f"findings.{fmt}" for fmt in EXPORTS}
        exported = _run(world, env, ["check", *(a for p in exports.values() for a in ("--export", str(p)))], ok=(1,))
        for fmt, path in exports.items():
            _add(world, f"export-{fmt}", exported, path.read_text(errors="surrogateescape") if path.exists() else "")
            if not path.exists():
                world.outputs[f"export-{fmt}"].failure = f"--export {path.name} wrote nothing: {exported.stderr[-800:]}"
        for fmt in DIFF_FORMATS:
            _add(world, f"diff-{fmt}", _run(world, env, ["diff", str(old), str(new), "-o", fmt]))
        _stage(world, "query-check-diff", seen)

        # --- remediate: the script (and its key policies), and the steps as JSON
        proxy.clear()
        plan = world.work / "plan"
        planned = _run(world, env, ["remediate", "--create-key", "--alias", "alias/hostile-script",
                                    "--out-dir", str(plan)])
        files = sorted(plan.glob("*")) if plan.is_dir() else []
        _add(world, "remediate-script", planned,
             "\n".join(f"#### {p.name}\n{p.read_text(errors='surrogateescape')}" for p in files if p.is_file()))
        _add(world, "remediate-stdout", planned)
        script = plan / SCRIPT_NAME
        if not script.exists() and planned.failure is None:
            world.outputs["remediate-script"].failure = f"remediate wrote no {SCRIPT_NAME}: {planned.stderr[-800:]}"
        _add(world, "remediate-json", _run(world, env, ["remediate", "--create-key", "--alias", "alias/hostile-json",
                                                         "--output", "json"]))
        _stage(world, "remediate", seen)

        # --- remediate --apply, against moto (other names than the script's: both can run)
        proxy.clear()
        _add(world, "remediate-apply", _run(world, env, ["remediate", "--apply", "--yes", "--create-key", "--alias",
                                                          "alias/hostile-apply", "--suffix", "-fix"]))
        world.outputs["requests-apply"] = _requests("requests-apply", proxy)
        _stage(world, "apply", seen)

        # --- the script, under bash and the real AWS CLI, its calls through the proxy
        proxy.clear()
        run = world.outputs["script-run"] = Output("script-run", "terminal")
        if shutil.which("aws") is None:
            run.failure = "no AWS CLI on PATH (.ci/run installs one: pip install awscli)"
        elif script.exists():
            result = _script_run(world, cli_env(proxy.url, PATH=os.environ["PATH"], CANARY_SECRET=CANARY_SECRET,
                                                 AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, HOME=str(home)), script)
            run.text, run.stderr, run.failure = result.stdout, result.stderr, result.failure
        else:
            run.failure = "remediate wrote no script to run"
        world.outputs["requests-script"] = _requests("requests-script", proxy)
        _stage(world, "script-run", seen)

        # --- each class's model alone: its plan holds one class, so no other class's breakage
        # (a syntax error, say) can stop the script before this one's payload would run
        proxy.clear()
        script_env = cli_env(proxy.url, PATH=os.environ["PATH"], CANARY_SECRET=CANARY_SECRET,
                             AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, HOME=str(home))

        def one_class(cls: str) -> Output:
            output = Output(f"class-script-{cls}", "terminal")
            folder = world.work / f"plan-{cls}"
            planned = _run(world, env, ["remediate", "--model", world.estate.class_models[cls], "--create-key",
                                        "--alias", f"alias/hostile-c-{cls.replace('_', '-')}", "--suffix", "-one",
                                        "--out-dir", str(folder)])
            if planned.failure or not (folder / SCRIPT_NAME).exists():
                output.failure = planned.failure or f"remediate wrote no script: {planned.stderr[-800:]}"
                return output
            if shutil.which("aws") is None:
                output.failure = "no AWS CLI on PATH (.ci/run installs one: pip install awscli)"
                return output
            result = _script_run(world, script_env, folder / SCRIPT_NAME)
            output.text, output.stderr = planned.stdout + result.stdout, planned.stderr + result.stderr
            output.failure = result.failure
            return output

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:
            for output in pool.map(one_class, EXECUTING):
                world.outputs[output.name] = output
        world.outputs["requests-class-scripts"] = _requests("requests-class-scripts", proxy)
        _stage(world, "class-scripts", seen)
    dump = os.environ.get("BEDROCK_SQL_HOSTILE_DUMP")  # a folder to keep every output in, to read them
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        for output in world.outputs.values():
            (Path(dump) / f"{output.name}.out").write_text(output.text, errors="surrogateescape")
            (Path(dump) / f"{output.name}.err").write_text(output.stderr, errors="surrogateescape")
    yield world


def _requests(name: str, proxy: AwsProxy) -> Output:
    """Every request that reached "AWS", as text: method, path, query, headers and body."""
    lines = []
    for request in list(proxy.requests):
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        lines.append(f"{request.method} {request.path} {request.query} {headers} "
                     f"{request.body.decode('utf-8', 'replace')}")
    return Output(name, "requests", "\n".join(lines))


def _output(world: World, name: str) -> Output:
    if world.setup_failure:
        pytest.fail(world.setup_failure)
    output = world.outputs.get(name)
    assert output is not None, f"{name} was never written"
    return output


# --------------------------------------------------------------------------- which checks apply where


def _checks(kind: str) -> dict[str, Callable[[Output], list[str]]]:
    """class -> what to check of an output of this kind."""
    checks: dict[str, Callable[[Output], list[str]]] = {}
    # envvar and paramfile: no canary anywhere, stdout or stderr, data or requests.
    checks["envvar"] = lambda o: check_canaries(o.text + "\n" + o.stderr, "envvar")
    checks["paramfile"] = lambda o: check_canaries(o.text + "\n" + o.stderr, "paramfile")
    if kind == "requests":
        return checks
    # Whatever is on stderr reaches a terminal; so does a terminal format's stdout.
    # The script is read in a terminal (and its comments and heredocs printed) too.
    checks["terminal"] = lambda o: (check_raw_controls(o.text) if o.kind in ("terminal", "script") else []) + [
        f"stderr: {p}" for p in check_raw_controls(o.stderr)]
    if kind == "markdown":
        for cls in ("html", "markdown", "newline", "heredoc"):
            checks[cls] = lambda o, cls=cls: check_markdown(o.text, cls)
    if kind == "csv":
        for cls in ("formula_hyperlink", "formula_dde"):
            checks[cls] = lambda o, cls=cls: check_csv(o.text, cls)
    if kind == "html":
        checks["html"] = lambda o: check_html_report(o.text, "html")
    return checks


REMEDIATION_OUTPUTS = ("remediate-script", "remediate-stdout", "remediate-json", "remediate-apply", "script-run",
                       "class-script-placeholder")
CASES = [(name, cls) for name, kind in OUTPUTS.items() for cls in _checks(kind)]
CASES += [(name, "placeholder") for name in REMEDIATION_OUTPUTS]


@pytest.mark.parametrize(("name", "cls"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_output_is_inert(world: World, name: str, cls: str) -> None:
    output = _output(world, name)
    if cls == "placeholder":
        problems = check_no_live_placeholder(output.text + "\n" + output.stderr)
    else:
        problems = _checks(output.kind)[cls](output)
    assert not problems, f"{name} leaked the {cls} payload:\n" + "\n".join(problems[:10])


# --------------------------------------------------------------------------- nothing ran


@pytest.mark.parametrize("cls", EXECUTING)
@pytest.mark.parametrize("stage", STAGES)
def test_no_payload_ran(world: World, stage: str, cls: str) -> None:
    """No PWNED_<class>_<field> file appeared (in the tmp tree, the working directories or
    the checkout) while the stage ran: its name says which field's payload ran."""
    if world.setup_failure:
        pytest.fail(world.setup_failure)
    assert stage in world.stages, f"stage {stage} never ran"
    ran = [p.name for p in world.stages[stage].markers if p.name.startswith(f"{MARKER_PREFIX}{cls}_")]
    assert not ran, f"during {stage}, the {cls} payload ran: {ran}"


def test_no_marker_file_anywhere_at_the_end(world: World) -> None:
    leftover = marker_files(_roots(world))
    assert not leftover, f"marker files: {[str(p) for p in leftover]}"


# --------------------------------------------------------------------------- each command did its job


@pytest.mark.parametrize("name", [n for n, kind in OUTPUTS.items() if kind != "requests"])
def test_the_command_did_its_job(world: World, name: str) -> None:
    """A clean verdict above means nothing if the command fell over before writing its output."""
    output = _output(world, name)
    assert output.failure is None, output.failure
    assert output.text.strip() or name in ("collect-old", "collect-new", "remediate-stdout"), f"{name} is empty"


@pytest.mark.parametrize("name", [n for n, kind in OUTPUTS.items() if kind in ("json", "jsonl", "csv")])
def test_machine_formats_stay_parseable(world: World, name: str) -> None:
    output = _output(world, name)
    if output.kind == "json":
        json.loads(output.text)
    elif output.kind == "jsonl":
        for line in output.text.splitlines():
            json.loads(line)
    else:
        rows = list(csv.reader(io.StringIO(output.text)))
        assert rows and all(len(row) == len(rows[0]) for row in rows), f"{name}: ragged CSV"


@pytest.mark.parametrize("name", ["query-json", "query-jsonl"])
@pytest.mark.parametrize("cls", CLASSES)
def test_json_keeps_the_data_exact(world: World, name: str, cls: str) -> None:
    """Machine formats carry the data as AWS gave it: inert is the renderers' job, not a
    reason to lose or alter text in JSON."""
    output = _output(world, name)
    documents = [json.loads(line) for line in output.text.splitlines()] if name.endswith("jsonl") else [
        json.loads(output.text)]
    values = set().union(*(exact_values(d) for d in documents))
    expected = payloads("kms_description", world.estate.canary_file)[cls]
    assert expected in values, f"{name}: the {cls} key description is not there as given: {expected!r}"


def test_the_html_report_carries_its_content_security_policy(world: World) -> None:
    report = _output(world, "export-html").text
    assert '<meta http-equiv="Content-Security-Policy"' in report
    assert "script-src" in report and "<script>alert(1)" not in report


def test_the_script_is_valid_bash(world: World) -> None:
    script = world.work / "plan" / SCRIPT_NAME
    assert script.exists(), _output(world, "remediate-script").failure
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("name", ["query-json", "check-json", "diff-json", "export-html", "export-md",
                                  "remediate-json", "remediate-script", "remediate-apply"])
def test_every_payload_reached_the_output(world: World, name: str) -> None:
    """The verdicts above are not vacuous: every class is in the snapshot (query), the
    check's reasons (policy Sids), the diff, the report, and the plan in each form."""
    text = _output(world, name).text
    missing = [cls for cls in CLASSES if f"HX{cls}" not in text]
    assert not missing, f"{name} holds no payload of {missing}"


def test_the_script_sent_the_payloads_to_aws(world: World) -> None:
    """The script ran the re-created model's job for real, hyperparameters and tags and all."""
    requests = _output(world, "requests-script").text
    for sent in ("PWNED_cmdsubst_apiok", "PWNED_newline_apiok_model_tag", "PWNED_cmdsubst_c_hyperparameter"):
        assert sent in requests, f"the script sent no request holding {sent}"
