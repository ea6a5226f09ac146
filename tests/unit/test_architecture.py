"""The shape of the house: which code may import which, read from the source itself.

- ``shop/`` uses the ledger only through the names ``ledger/__init__.py`` exports.
- No feature package imports one that imports it back, and no chain of imports between
  modules comes back to where it started — counting imports inside functions too.
- The ledger's own modules import one another one way.
- No module of ``shop/`` or ``ledger/`` is over 600 lines.
"""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import ledger

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
# Modules that put the application together: they may import every feature package,
# and no feature package imports them.
COMPOSITION_ROOTS = {"shop", "shop.cli", "shop.demo", "shop.models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> list[tuple[int, str, str | None]]:
    """Every import in the file, at any depth: (line, module, imported name or None).
    ``from pkg import sub`` where ``sub`` is a module counts as importing ``pkg.sub``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.append((node.lineno, submodule, None))
                else:
                    found.append((node.lineno, node.module, alias.name))
    return found


def module_graph(package: str) -> dict[str, set[str]]:
    modules = sources(package)
    known = set(modules)
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for _line, target, _name in imports_of(path, known):
            while target and target not in known:  # ``import shop.x.y`` of a name
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def feature_package(module: str) -> str:
    """``shop.orders.services`` → ``shop.orders``; top-level modules stand for themselves."""
    return ".".join(module.split(".")[:2])


def test_shop_uses_only_the_ledgers_public_names():
    modules = sources("shop")
    public = set(ledger.__all__)
    wrong = []
    for path in modules.values():
        for line, target, imported in imports_of(path, set(modules)):
            if target != "ledger" and not target.startswith("ledger."):
                continue
            if target != "ledger":
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            elif imported is None or imported not in public:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports ledger.{imported}")
    assert wrong == []


def test_every_public_ledger_name_exists():
    for name in ledger.__all__:
        assert getattr(ledger, name) is not None


def test_no_feature_package_imports_one_that_imports_it_back():
    graph = module_graph("shop")
    packages: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        for target in targets:
            a, b = feature_package(source), feature_package(target)
            if a != b:
                packages[a].add(b)
    pairs = sorted(
        f"{a} <-> {b}" for a in packages for b in packages[a] if a < b and a in packages.get(b, ())
    )
    assert pairs == []


def test_no_module_imports_its_way_back_to_itself():
    assert cycles(module_graph("shop")) == []
    assert cycles(module_graph("ledger")) == []


def test_composition_roots_are_imported_by_no_feature_package():
    graph = module_graph("shop")
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source not in COMPOSITION_ROOTS
        for target in targets
        if target in COMPOSITION_ROOTS
    )
    assert wrong == []


def test_the_ledger_never_imports_the_shop():
    graph = module_graph("ledger")
    for path in sources("ledger").values():
        for line, target, _name in imports_of(path, set(graph)):
            assert not target.startswith(("shop", "flask")), f"{path.name}:{line} {target}"


def test_no_module_is_doing_two_jobs():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for package in ("shop", "ledger", "alipay_sandbox")
        for path in sources(package).values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_the_standalone_verifier_runs_without_the_ledgers_dependencies(tmp_path):
    """``python -m ledger.verify`` is the auditor's tool: importing the package must not
    pull in SQLAlchemy (its public names load on first use). ``-S``: no site-packages."""
    export = tmp_path / "empty.jsonl"
    export.write_text("")
    done = subprocess.run(
        [sys.executable, "-S", "-m", "ledger.verify", str(export)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "sqlalchemy" not in done.stderr.lower()
