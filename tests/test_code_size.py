"""Size guards for the package: modules under 600 lines, functions under 100, ruff's complexity under 15.

Long modules and functions are where concerns pile up; these limits keep
them split by concern (issue 34). ``KNOWN`` lists what is still over a limit
while other work splits it: an entry may only shrink, and an entry that is
back under its limit must be removed, so the list only gets shorter.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lociseg"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
#: A command's ``main`` parses options, calls the library and prints (issue 34 part 1).
MAX_CLI_MAIN_LINES = 60

#: Still over a limit: "path" (module lines) or "path:function" (function lines) -> lines when listed.
KNOWN: dict[str, int] = {}

#: CLI mains still over MAX_CLI_MAIN_LINES while their work moves into the library -> lines when listed.
KNOWN_CLI_MAINS: dict[str, int] = {}


def sizes(package: Path = PACKAGE) -> dict[str, int]:
    """Lines of every module of ``package`` but its tests (``path``) and of every function in it (``path:name``)."""
    out: dict[str, int] = {}
    for path in sorted(package.rglob("*.py")):
        if "tests" in path.relative_to(package).parts:
            continue
        text = path.read_text()
        rel = path.relative_to(package.parent).as_posix()
        out[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{rel}:{node.name}"
                out[key] = max(out.get(key, 0), node.end_lineno - node.lineno + 1)
    return out


def _limit(key: str) -> int:
    return MAX_FUNCTION_LINES if ":" in key else MAX_MODULE_LINES


def over_limits(measured: dict[str, int]) -> list[str]:
    """What is over its limit and not in ``KNOWN``, or grew past its ``KNOWN`` size."""
    bad = []
    for key, n in sorted(measured.items()):
        allowed = max(_limit(key), KNOWN.get(key, 0))
        if n > allowed:
            what = "function" if ":" in key else "module"
            bad.append(f"{key}: {what} of {n} lines (limit {allowed})")
    return bad


def test_modules_and_functions_are_within_the_limits():
    bad = over_limits(sizes())
    assert not bad, "split these by concern:\n" + "\n".join(bad)


def test_known_exceptions_are_still_needed():
    measured = sizes()
    stale = [k for k in KNOWN if measured.get(k, 0) <= _limit(k)]
    assert not stale, f"back under the limit (or gone): remove from KNOWN: {stale}"


def test_the_checks_catch_a_long_module_and_function(tmp_path):
    pkg = tmp_path / "lociseg"
    (pkg / "tests").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (pkg / "big.py").write_text(f"def f():\n{body}\n" + "\n" * MAX_MODULE_LINES)
    (pkg / "tests" / "test_big.py").write_text("\n" * 2 * MAX_MODULE_LINES)  # tests are not measured
    bad = over_limits(sizes(pkg))
    assert bad == [
        f"lociseg/big.py: module of {MAX_FUNCTION_LINES + 1 + MAX_MODULE_LINES} lines (limit {MAX_MODULE_LINES})",
        f"lociseg/big.py:f: function of {MAX_FUNCTION_LINES + 1} lines (limit {MAX_FUNCTION_LINES})",
    ], bad


def cli_mains_over_limit(measured: dict[str, int]) -> list[str]:
    """Every ``lociseg/cli/<command>.py:main`` over :data:`MAX_CLI_MAIN_LINES` and its ``KNOWN_CLI_MAINS`` size."""
    bad = []
    for key, n in sorted(measured.items()):
        if key.startswith("lociseg/cli/") and key.endswith(".py:main"):
            allowed = max(MAX_CLI_MAIN_LINES, KNOWN_CLI_MAINS.get(key, 0))
            if n > allowed:
                bad.append(f"{key}: {n} lines (limit {allowed})")
    return bad


def test_cli_mains_only_parse_call_and_print():
    bad = cli_mains_over_limit(sizes())
    assert not bad, "move the work of these commands into the library:\n" + "\n".join(bad)


def test_known_cli_mains_are_still_needed():
    measured = sizes()
    stale = [k for k in KNOWN_CLI_MAINS if measured.get(k, 0) <= MAX_CLI_MAIN_LINES]
    assert not stale, f"back under the limit (or gone): remove from KNOWN_CLI_MAINS: {stale}"


def test_the_cli_main_check_catches_a_long_main():
    measured = {
        "lociseg/cli/new.py:main": MAX_CLI_MAIN_LINES + 1,
        "lociseg/cli/new.py:_helper": MAX_CLI_MAIN_LINES + 1,  # only mains are held to it
        "lociseg/train/loop.py:main": MAX_CLI_MAIN_LINES + 1,
    }
    assert cli_mains_over_limit(measured) == [
        f"lociseg/cli/new.py:main: {MAX_CLI_MAIN_LINES + 1} lines (limit {MAX_CLI_MAIN_LINES})"
    ]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_no_function_is_over_the_complexity_limit():
    """ruff's C901 with the package's max-complexity (pyproject.toml), over the package."""
    proc = subprocess.run(
        ["ruff", "check", "--select", "C901", "--output-format", "concise", str(PACKAGE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
