"""The quick subset (``pytest -m quick``, QUICK_TESTS in conftest.py) cannot rot silently: every
listed test exists, and every module of src/bedrock_sql is imported by a quick test module
(or by a test helper one imports), or is a piece of a subpackage a quick test imports (its
``__init__`` imports it, directly or through a sibling), or is named in INDIRECT with the quick
test that exercises it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import QUICK_TESTS

TESTS = Path(__file__).resolve().parent
SOURCE = TESTS.parent / "src"

# Modules no quick test module imports by name, and the quick test (file, function) that runs
# them anyway, through the CLI or through the module that calls them.
INDIRECT: dict[str, tuple[str, str]] = {
    "bedrock_sql.__main__": ("test_shell.py", "test_a_command_nobody_judged_is_refused_not_inherited"),
    "bedrock_sql.cli.app": ("test_check_cli.py", "test_exit_1_with_an_alarm"),
    "bedrock_sql.cli.check": ("test_check_cli.py", "test_exit_1_with_an_alarm"),
    "bedrock_sql.cli.query": ("test_cli_errors.py", "test_bad_sql"),
    "bedrock_sql.cli.demo": ("test_file_safety.py", "test_demo_replaces_only_its_own_snapshots"),
    "bedrock_sql.cli.remediate": ("test_remediate.py", "test_plan_targets_only_failing_models"),
    "bedrock_sql.cli.serve": ("test_serve.py", "test_the_hosts_serve_answers"),
    "bedrock_sql.clients": ("test_accounts.py", "test_two_accounts_through_assume_role_rows_attributed"),
    "bedrock_sql.diff": ("test_diff.py", "test_diff_names_what_was_fixed_and_what_regressed"),
    "bedrock_sql.responses": ("test_responses.py", "test_a_page_that_says_truncated_must_name_the_next"),
    "bedrock_sql.report": ("test_check_cli.py", "test_csv_output_is_data_only_and_the_summary_goes_to_stderr"),
    "bedrock_sql.accounts_file": ("test_accounts.py", "test_accounts_file"),
    "bedrock_sql.model_context": ("test_accounts.py", "test_two_accounts_through_assume_role_rows_attributed"),
}


def defined_functions(path: Path) -> set[str]:
    """Names of the test functions (and methods) defined in a test file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def imported_names(path: Path) -> set[str]:
    """Every dotted name a file imports: ``from a.b import c`` gives a.b and a.b.c."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def quick_modules_imports() -> set[str]:
    """What the quick test files import, and the test helpers (tests/*.py) they import, transitively."""
    seen: set[Path] = set()
    todo = [TESTS / name for name in QUICK_TESTS]
    names: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        imported = imported_names(path)
        names |= imported
        todo += [TESTS / f"{name.split('.')[0]}.py" for name in imported]
    return names


def module_path(module: str) -> Path:
    path = SOURCE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def package_pieces(package: str) -> set[str]:
    """The modules of a subpackage that its ``__init__`` imports, directly or through a sibling."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(module_path(module).read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y / from . import x
                names = [node.module] if node.module else [alias.name for alias in node.names]
                todo += [f"{package}.{name.split('.')[0]}" for name in names
                         if module_path(f"{package}.{name.split('.')[0]}").is_file()]
    return seen


def source_modules() -> list[str]:
    modules = []
    for path in sorted((SOURCE / "bedrock_sql").rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@pytest.mark.parametrize("file", sorted(QUICK_TESTS))
def test_every_listed_quick_test_exists(file: str) -> None:
    path = TESTS / file
    assert path.is_file(), f"QUICK_TESTS names {file}, which is gone"
    missing = sorted(set(QUICK_TESTS[file]) - defined_functions(path))
    assert not missing, f"QUICK_TESTS in conftest.py names tests {file} no longer has: {missing}"


def test_every_indirect_module_names_a_listed_quick_test() -> None:
    for module, (file, name) in INDIRECT.items():
        assert name in QUICK_TESTS.get(file, ()), f"{module} is covered by {file}::{name}, which is not quick"
        assert module in source_modules(), f"INDIRECT names {module}, which is no module of src/bedrock_sql"


def test_every_source_module_is_covered_by_a_quick_test() -> None:
    imported = quick_modules_imports()
    packages = [m for m in source_modules() if module_path(m).name == "__init__.py" and m != "bedrock_sql"]
    imported |= {piece for package in packages if package in imported for piece in package_pieces(package)}
    uncovered = [module for module in source_modules()
                 if module not in INDIRECT and not any(name == module or name.startswith(module + ".") for name in imported)]
    assert not uncovered, f"no quick test imports (or, in INDIRECT, runs) these modules: {uncovered}"


def test_the_quick_marker_is_applied(request: pytest.FixtureRequest) -> None:
    """The hook marks the listed tests (collected in this run) and nothing else."""
    session_items = request.session.items
    marked = {item.nodeid for item in session_items if item.get_closest_marker("quick")}
    for item in session_items:
        listed = getattr(item, "originalname", None) in QUICK_TESTS.get(item.path.name, ())
        assert (item.nodeid in marked) == listed, item.nodeid

