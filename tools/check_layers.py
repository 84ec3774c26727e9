"""Fail on an import that points up the agent's layers, or on an import cycle.

    .venv/bin/python tools/check_layers.py      (also run by the suite: tests/unit/test_layers.py)

Reads every module of ``agent/`` with :mod:`ast` (imports inside functions count; those under
``if TYPE_CHECKING:`` do not, as they never run). A module may import from its own layer and the
layers below it (:data:`LAYERS`, top first); any import of an ``agent`` module that no layer
names is an error too, so a new package has to be placed. The graph of module imports must have
no cycle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Top first. A module belongs to the first layer with a prefix it starts with (``agent.x`` or
# ``agent.x.…``); ``agent`` alone is the package's __init__ (its version).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("agent.cli", "agent.__main__", "agent.console")),
    ("app", ("agent.app",)),
    ("wiring", ("agent.services", "agent.worker", "agent.homeassistant", "agent.snapshots")),
    ("controls", ("agent.controls",)),
    ("settings", ("agent.settings",)),
    ("engine", ("agent.pipelines.engine",)),
    ("registry", ("agent.pipelines.registry",)),
    ("commands", ("agent.commands",)),
    ("pipelines", ("agent.pipelines",)),
    (
        "domain",
        (
            "agent.vision",
            "agent.bank",
            "agent.models",
            "agent.sources",
            "agent.events",
            "agent.stage_times",
            "agent.preview",
        ),
    ),
    ("transport", ("agent.mqtt",)),
    ("base", ("agent.sections", "agent.errors", "agent.storage", "agent.version", "agent")),
]


def module_name(path: Path, root: Path = REPO) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    for i, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "agent" and module.startswith(prefix + ".")):
                return i
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported agent module, line) for every import that runs."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = here.split(".") if is_package else here.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno
        stack.extend(ast.iter_child_nodes(node))


def graph(root: Path = REPO) -> dict[str, dict[str, int]]:
    """module → {agent module it imports: line}, for the ``agent`` package under ``root``."""
    files = sorted((root / "agent").rglob("*.py"))
    known = {module_name(f, root) for f in files}
    out: dict[str, dict[str, int]] = {}
    for f in files:
        here = module_name(f, root)
        tree = ast.parse(f.read_text(), str(f))
        deps: dict[str, int] = {}
        for target, line in _imports(tree, here, f.name == "__init__.py", known):
            if (target == "agent" or target.startswith("agent.")) and target != here:
                deps.setdefault(target, line)
        out[here] = deps
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in g:
                continue
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
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def problems(root: Path = REPO) -> list[str]:
    g = graph(root)
    out = []
    for module, deps in sorted(g.items()):
        mine = layer_of(module)
        if mine is None:
            out.append(f"{module}: in no layer (add it to LAYERS in tools/check_layers.py)")
            continue
        for target, line in sorted(deps.items()):
            theirs = layer_of(target)
            if theirs is None:
                out.append(f"{module}:{line} imports {target}, which is in no layer")
            elif theirs < mine:
                out.append(
                    f"{module}:{line} imports {target}: layer {LAYERS[mine][0]!r} may not import "
                    f"from the higher layer {LAYERS[theirs][0]!r}"
                )
    for comp in cycles(g):
        out.append("import cycle: " + " -> ".join(comp))
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        print(f"layers ok: {len(graph())} modules, {len(LAYERS)} layers, no import pointing up, no cycle")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
