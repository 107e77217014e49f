"""The core reads as the loop: stage folders, no import circles (typing-only imports count), small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import expscale_core

CORE = Path(expscale_core.__file__).parent
STAGES = ["capture", "episodes", "distill", "store", "serve", "refine", "safety", "ops"]


def _module_name(path: Path) -> str:
    parts = ("expscale_core", *path.relative_to(CORE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every expscale_core module ``path`` imports, anywhere in it (function bodies and TYPE_CHECKING too).
    ``from package import name`` counts as importing the submodule when ``name`` is one."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; the core imports by absolute name"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in CORE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(path, modules) - {name} for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_the_core() -> None:
    assert _cycles(_graph()) == []


def test_no_stage_imports_the_engine() -> None:
    stage_modules = {m: deps for m, deps in _graph().items() if m.split(".")[1:2] and m.split(".")[1] in STAGES}
    offenders = {m: sorted(d) for m, deps in stage_modules.items() if (d := deps & {"expscale_core.engine"})}
    assert offenders == {}


def test_stage_folders_exist_in_loop_order() -> None:
    assert all((CORE / stage / "__init__.py").is_file() for stage in STAGES)


def test_no_module_is_past_about_500_lines_and_the_engine_stays_a_facade() -> None:
    sizes = {
        p.relative_to(CORE).as_posix(): len(p.read_text(encoding="utf-8").splitlines()) for p in CORE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 500} == {}
    assert sizes["engine.py"] <= 420
