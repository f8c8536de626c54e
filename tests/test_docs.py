"""The documentation against the code: the README's command table, docs/cli.md, and links.

- the README's test command is the one `.ci/run` runs, byte for byte;
- every command in the README's table is a ``lociseg`` command, and every command is in the table;
- docs/cli.md equals what ``python docs/gen_cli.py`` writes from the current ``--help``;
- every page under docs/ is linked from the README;
- every relative link in README.md, BENCHMARKS.md and docs/*.md names a file that exists, and a
  ``#anchor`` names a heading of that file.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lociseg.cli.main import build_app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands(text: str) -> list[str]:
    """The command names in the first column of the README's "Commands" table."""
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| \[?`lociseg ([a-z-]+)`", section, flags=re.MULTILINE)


def cli_commands() -> set[str]:
    """The sub-commands the ``lociseg`` group registers."""
    return set(typer.main.get_command(build_app()).commands)


def test_readme_table_lists_every_command_and_only_commands() -> None:
    listed = readme_commands(README.read_text())
    assert len(listed) == len(set(listed)), f"a command is listed twice: {listed}"
    assert set(listed) == cli_commands(), "README's command table and `lociseg --help` differ"
    top = CliRunner().invoke(build_app(), ["--help"], prog_name="lociseg", env={"COLUMNS": "200"})
    for name in listed:
        assert re.search(rf"│ {re.escape(name)}\s", top.output), f"{name} missing from lociseg --help"
        result = CliRunner().invoke(build_app(), [name, "--help"], prog_name="lociseg")
        assert result.exit_code == 0, f"lociseg {name} --help: {result.output}"


def test_readme_test_command_is_what_ci_runs() -> None:
    text = README.read_text()
    block = text.split("Run the tests (exactly what `.ci/run` does):\n\n```bash\n", 1)[1].split("```", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert block.strip() and block in ci, "README's test command differs from .ci/run"


def test_readme_table_parser_sees_a_missing_command() -> None:
    text = "# x\n\n## Commands\n\n| command | does |\n| --- | --- |\n| [`lociseg info`](docs/cli.md) | a |\n\n## Next\n"
    assert readme_commands(text) == ["info"]
    assert set(readme_commands(text)) != cli_commands()


def test_cli_reference_matches_help() -> None:
    gen = _gen_cli()
    expected = gen.render()
    current = gen.PAGE.read_text()
    if current != expected:
        diff = "".join(
            list(difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/cli.md", "--help"))[
                :60
            ]
        )
        pytest.fail(f"docs/cli.md is out of date; regenerate it with `python docs/gen_cli.py`:\n{diff}")


def test_cli_reference_is_plain_fixed_width_text() -> None:
    page = _gen_cli().render()
    assert "\x1b[" not in page
    assert all(line == line.rstrip() for line in page.splitlines())
    assert "Usage: lociseg segment [OPTIONS]" in page


def test_readme_links_every_docs_page() -> None:
    text = README.read_text()
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert pages, "no pages under docs/"
    unlinked = [page for page in pages if f"]({page}" not in text and page != "docs/README.md"]
    assert not unlinked, f"README.md links no {unlinked}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_slug_follows_github() -> None:
    assert _slug(" `lociseg adapt`: the shipped model (issue 22)") == "lociseg-adapt-the-shipped-model-issue-22"
    assert _slug(" Dask: `lociseg segment --cluster local:2`") == "dask-lociseg-segment---cluster-local2"


DOC_FILES = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.name}: " + "; ".join(broken)
