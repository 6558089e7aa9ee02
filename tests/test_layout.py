"""The package's shape: imports run one way, from the command line down to the core.

Reads every module of ``simulator/`` with :mod:`ast` (nothing is imported) and checks:

- no import cycle between the top-level packages of ``simulator/`` (``config``, ``sim``,
  ``run``, ...), counting imports inside functions (``if TYPE_CHECKING:`` ones do not);
- at most one cycle between files anywhere;
- an import of a project module inside a function says why on its line
  (``# deferred: <reason>``): it defers a heavy optional dependency or a start-up cost;
- the economic core and the inference layer import nothing above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "simulator"


def _modname(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    mods = {_modname(p): p for p in ROOT.rglob("*.py")}

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    edges: dict[str, set[str]] = {m: set() for m in mods}
    undeclared: list[tuple[str, int, str]] = []
    for mod, path in mods.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        skip: set[int] = set()
        infunc: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for n in ast.walk(node)}
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                infunc |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if not t.startswith("simulator"):
                    continue
                r = resolve(t)
                if not r or r == mod:
                    continue
                edges[mod].add(r)
                if id(node) in infunc:
                    end = getattr(node, "end_lineno", node.lineno)
                    if not any("# deferred:" in lines[i - 1] for i in range(node.lineno, end + 1)):
                        undeclared.append((mod, node.lineno, r))
    return edges, undeclared


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def _top(mod: str) -> str:
    return ".".join(mod.split(".")[:2])


def test_no_cycle_between_top_level_packages():
    edges, _ = _graph()
    top: dict[str, set[str]] = {}
    for a, bs in edges.items():
        for b in bs:
            if _top(a) != _top(b):
                top.setdefault(_top(a), set()).add(_top(b))
    assert _cycles(top) == []


def test_at_most_one_cycle_between_files():
    edges, _ = _graph()
    assert len(_cycles(edges)) <= 1, _cycles(edges)


def test_every_import_inside_a_function_says_why():
    _, undeclared = _graph()
    assert undeclared == [], "function-local imports without '# deferred: <reason>':\n" + "\n".join(
        f"  {m}:{line} -> {t}" for m, line, t in undeclared)


def test_layers_import_only_downwards():
    """economy and llm are the ground floor; config sits on them; sim on config; run on sim."""
    edges, _ = _graph()
    allowed = {
        "simulator.economy": {"simulator.errors"},
        "simulator.llm": {"simulator.errors", "simulator.lifeline", "simulator"},
        "simulator.config": {"simulator.economy", "simulator.llm", "simulator.errors"},
        "simulator.sim": {"simulator.config", "simulator.economy", "simulator.llm",
                          "simulator.errors", "simulator.lifeline", "simulator"},
        "simulator.run": {"simulator.sim", "simulator.config", "simulator.economy", "simulator.llm",
                          "simulator.errors", "simulator.results", "simulator.validity",
                          "simulator.lifeline", "simulator"},
    }
    bad = [(a, b) for a, bs in edges.items() for b in bs
           if _top(a) in allowed and _top(b) != _top(a) and _top(b) not in allowed[_top(a)]]
    assert bad == []


def test_leaves_import_nothing_from_the_project():
    """errors and lifeline sit under every layer: they import no other econsim module."""
    edges, _ = _graph()
    for leaf in ("simulator.errors", "simulator.lifeline"):
        assert {b for b in edges.get(leaf, set()) if b.startswith("simulator")} == set(), leaf
