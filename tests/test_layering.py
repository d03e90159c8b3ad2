"""The package's import structure, read from the source (nothing is imported): which layers may use which, and no
module importing, at the top or inside a function, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import imgclf

SRC = Path(imgclf.__file__).parent

# package -> packages it must never import (DESIGN.md: train only trains, evaluation only reads records,
# models know neither; only the pipeline joins them, and only the CLI sits above the pipeline)
FORBIDDEN = {
    "models": {"train", "evaluation", "pipeline", "study", "serve", "cli"},
    "data": {"audit", "train", "evaluation", "pipeline", "models", "study", "serve", "cli"},
    # the duplicate search sits below both the audit and the data sets' group-aware split: it imports nothing of
    # imgclf's (every other module and package, read from the tree so that a new one is covered too)
    "duplicates": {p.stem for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    - {"duplicates"},
    "train": {"evaluation", "pipeline", "study", "serve", "cli"},
    "evaluation": {"train", "pipeline", "study", "serve", "cli"},
    "pipeline": {"cli", "serve", "study"},
    "records": {"train", "evaluation", "pipeline", "models", "data", "cli"},
}


def _module_name(path: Path, root: Path) -> str:
    """imgclf/data/cache.py -> imgclf.data.cache; a package's __init__.py is the package itself."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path, root: Path) -> set[str]:
    """Dotted names `path` imports, absolute or relative, at any depth of the code (lazy imports included):
    `from .x import y` gives x.y, which is a module or a name defined in module x."""
    module = _module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _imported_packages(path: Path, root: Path = SRC) -> set[str]:
    """imgclf sub-packages/modules that `path` (a file under `root`, the imgclf package) imports."""
    return {n.split(".")[1] for n in _imported_names(path, root) if n.startswith("imgclf.") and len(n.split(".")) > 1}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. `from pkg import name` points at pkg.name when that is a
    module, else at pkg (whose __init__ runs)."""
    files = {_module_name(f, root): f for f in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for imported in _imported_names(path, root):
            parent = imported.rpartition(".")[0]
            if imported in files:
                targets.add(imported)
            elif parent in files:
                targets.add(parent)
        graph[name] = targets - {name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_layering(package):
    files = [SRC / f"{package}.py"] if (SRC / f"{package}.py").exists() else sorted((SRC / package).rglob("*.py"))
    assert files
    bad = {f"{f.relative_to(SRC)} imports imgclf.{p}" for f in files for p in _imported_packages(f) & FORBIDDEN[package]}
    assert not bad, sorted(bad)


def test_layering_check_sees_relative_imports(tmp_path):
    """The checker itself: a relative import of train from models is caught (so the layering test can fail). The
    probe sits in a made-up imgclf tree: written into the real one, a parallel worker walking it would see it."""
    fake = tmp_path / "imgclf" / "models" / "_layering_probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..train.finetune import FreezeSchedule\nfrom .lookup import list_models\n")
    assert _imported_packages(fake, tmp_path / "imgclf") == {"train", "models"}


def test_no_module_imports_one_that_imports_it_back():
    """A cycle, even through an import inside a function, means neither module can be read or tested alone; the
    one that is imported back holds something that belongs in a third module below both."""
    cycles = import_cycles(import_graph(SRC))
    assert not cycles, [" <-> ".join(c) for c in cycles]


def test_the_cycle_check_finds_lazy_and_package_cycles(tmp_path):
    """The checker itself, on a made-up package: a lazy import back, a cycle through a package's __init__, and a
    `from . import module` that is not one."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from .a import other\n")
    (pkg / "sub" / "__init__.py").write_text("def run():\n    from .worker import go\n")
    (pkg / "sub" / "worker.py").write_text("from . import run\n")
    (pkg / "sub" / "plain.py").write_text("from . import worker\n")
    (pkg / "c.py").write_text("from .sub import plain\n")
    assert import_cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"], ["pkg.sub", "pkg.sub.worker"]]
