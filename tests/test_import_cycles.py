"""No import circle among the project's modules, and the packages' arrows point one way.

Every `import` / `from ... import` in engine, nn, models and viz counts, at module level or
inside a function: a circle closed by an import inside a function still means two modules that
cannot be understood (or moved) one without the other. The graph is read from the source with
`ast`, so nothing is imported here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "nn", "models", "viz")
#: which package may import which (DESIGN.md): engine <- nn <- models; viz reads engine and may be used by models.
ALLOWED = {
    "engine": {"engine"},
    "nn": {"engine", "nn"},
    "viz": {"engine", "viz"},
    "models": {"engine", "nn", "models", "viz"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from pkg import sub` names the submodule when there is one)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # `import models.zoo.gpt.GPT`-style tails
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of module names (first == last), or None; iterative DFS with colours."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop()
                if colour.get(nxt) == GREY:
                    return path[path.index(nxt) :] + [nxt]
                if colour.get(nxt) == WHITE:
                    colour[nxt] = GREY
                    stack.append((nxt, sorted(graph[nxt])))
                    path.append(nxt)
            else:
                colour[node] = BLACK
                stack.pop()
                path.pop()
    return None


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "models.zoo.gpt" in graph and "models.zoo.gpt_fused" in graph["models.zoo.gpt"]
    assert "engine.value" in graph["nn.linear"] or "engine" in graph["nn.linear"] or graph["nn.linear"]


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_project() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_packages_import_only_down_the_stack() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert not bad, "\n".join(bad)
