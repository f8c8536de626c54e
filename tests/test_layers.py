"""Layers only look down: every import inside lociseg goes to a lower layer.

The order (bottom to top) is the one in docs/design.md, "Code layout". Modules of
one layer may import each other only inside their own package; peers of a
layer (``synth`` and ``export``, ``report`` and ``napari``) do not import
each other. ``predict`` sits just below ``train``: training validates with
the inference paster. Imports inside functions are only
allowed in ``cli`` (start-up time) and for optional extras.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lociseg"

#: Bottom to top; names in one tuple share a layer.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("config", "device", "batch"),
    ("structures",),
    ("transforms",),
    ("ops",),
    ("metrics",),
    ("io",),
    ("data",),
    ("annotate",),
    ("losses",),
    ("models",),
    ("predict",),
    ("train",),
    ("synth", "export"),
    ("scale_out",),
    ("report", "napari"),
    ("cli",),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

#: Modules allowed to import lociseg modules inside functions: optional
#: extras (napari, export formats) and the package's lazy root.
FUNCTION_LEVEL_OK = ("cli", "napari", "export")


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "tests" not in p.relative_to(root).parts)


def _top(module: str) -> str:
    """``lociseg.a.b`` -> ``a``; ``lociseg`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(path: Path, node: ast.ImportFrom | ast.Import, root: Path = ROOT) -> list[str]:
    """Absolute lociseg module names an import statement reads (others dropped)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "lociseg"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "lociseg":
            return []
    else:
        pkg = list(path.relative_to(root.parent).with_suffix("").parts)[:-1]  # the containing package
        if node.level > 1:
            pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    if node.module is None:  # ``from . import x``: x is a submodule, or a name of the package
        return [base if a.name.startswith("__") else f"{base}.{a.name}" for a in node.names]
    return [base]


def _imports(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(imported lociseg module, line, inside a function) of one file."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and not type_checking:
                out.extend((m, child.lineno, in_function) for m in _resolve(path, child, root))
            is_tc = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            visit(
                child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)), type_checking or is_tc
            )

    visit(tree, False, False)
    return out


def _violations(root: Path = ROOT) -> list[str]:
    bad = []
    for path in _modules(root):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _top(name)
        if src in ("", "__main__"):
            continue  # the lazy package root and ``python -m lociseg`` sit above everything
        if src not in RANK:
            bad.append(f"{name}: top-level module {src!r} has no layer")
            continue
        for target, line, in_function in _imports(path, root):
            dst = _top(target)
            where = f"{path.relative_to(root.parent)}:{line} imports {target}"
            if dst == "":
                continue  # ``from lociseg import __version__``: the root imports nothing eagerly
            if dst not in RANK:
                bad.append(f"{where} (no layer)")
            elif dst != src and RANK[dst] >= RANK[src]:
                bad.append(f"{where} ({dst!r} is not below {src!r})")
            elif in_function and src not in FUNCTION_LEVEL_OK:
                bad.append(f"{where} (inside a function)")
    return bad


def test_every_module_has_a_layer():
    tops = {p.relative_to(ROOT).with_suffix("").parts[0] for p in _modules(ROOT)} - {"__init__", "__main__"}
    assert tops <= set(RANK), sorted(tops - set(RANK))


def test_layers_only_look_down():
    assert _violations() == []


def test_checker_sees_upward_and_hidden_imports(tmp_path):
    """The checker itself flags an upward import and a function-level one."""
    pkg = tmp_path / "lociseg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "models" / "m.py").write_text("from ..predict.api import x\n\ndef f():\n    from ..losses import y\n")
    bad = _violations(pkg)
    assert any("lociseg.predict.api" in b and "not below" in b for b in bad), bad
    assert any("lociseg.losses" in b and "inside a function" in b for b in bad), bad
    assert len(bad) == 2, bad


@pytest.mark.parametrize("target", ["lociseg.io", "lociseg.train.loop"])
def test_resolve_relative_imports(target):
    node = ast.parse(
        "from ..io import read_image" if target == "lociseg.io" else "from ..train.loop import train"
    ).body[0]
    assert _resolve(ROOT / "predict" / "api.py", node) == [target]
