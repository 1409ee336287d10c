"""The package's shape: subpackages whose imports flow one way, and code a reviewer can read.

Layers, lowest first: a module may import its own subpackage and the ones below it, never one
above. `pipeline` (profiles, stages, the runner, artifacts) knows nothing of the method;
`analysis` reads what everything else wrote.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.pipeline.paths import repo_root

LAYERS = ("pipeline", "grading", "world", "infer", "train", "method", "analysis")
HELPERS = repo_root() / "helpers"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(p for p in HELPERS.rglob("*.py") if p.name != "__init__.py")


def imported(path: Path, runtime: bool = False) -> list[tuple[str, int]]:
    """The helpers modules a file imports (anywhere in it), as dotted names, with lines
    (runtime: leaving out imports for type checking only)."""
    tree = ast.parse(path.read_text())
    if runtime:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                node.body = []
    package = ["helpers", *path.relative_to(HELPERS).parent.parts]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return [(n, line) for n, line in out if n.startswith("helpers.")]


def layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    loose = [p.name for p in HELPERS.glob("*.py") if p.name not in ("__init__.py", "run.py")]
    assert not loose, f"modules outside the subpackages: {loose}"
    assert {p.name for p in HELPERS.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        LAYERS
    )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(HELPERS)))
def test_imports_flow_down_the_layers(path):
    rel = path.relative_to(HELPERS)
    if len(rel.parts) == 1:  # helpers/run.py, the entry point: may import anything
        return
    mine = LAYERS.index(rel.parts[0])
    upward = [
        f"line {line}: {name}"
        for name, line in imported(path)
        if (other := layer_of(name)) is not None and LAYERS.index(other) > mine
    ]
    assert not upward, f"{rel} ({LAYERS[mine]}) imports from a layer above it: {upward}"


def test_modules_and_functions_are_short_enough_to_read():
    long_modules, long_functions = [], []
    for path in modules():
        text = path.read_text()
        rel = path.relative_to(HELPERS)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def import_graph() -> dict[str, set[str]]:
    """Every helpers module and the helpers modules it imports when it runs (at the top or in a
    function; imports for type checking only do not run)."""
    names = {
        ".".join(("helpers", *p.relative_to(HELPERS).with_suffix("").parts)): p for p in modules()
    }
    return {
        m: {n for n, _ in imported(p, runtime=True) if n in names and n != m}
        for m, p in names.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph: its strongly connected parts of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

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
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_circle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_readme_names_every_module_in_its_layer():
    """README's layout row lists each layer's modules; a module added, moved or renamed without
    it fails here."""
    import re

    row = next(
        line for line in (repo_root() / "README.md").read_text().splitlines()
        if line.startswith("| `helpers/` |")
    )  # fmt: skip
    listed = {
        layer: set(re.findall(r"`(\w+)`", body))
        for layer, body in re.findall(r"`(\w+)` \(([^)]*)\)", row)
    }
    on_disk = {
        layer: {p.stem for p in (HELPERS / layer).glob("*.py") if p.name != "__init__.py"}
        for layer in LAYERS
    }
    assert listed == on_disk


def test_what_the_readme_cites_exists():
    """Every module path, dotted module and `module.name` the README cites names real code (or a
    profile key): README drift fails here."""
    import importlib
    import re

    from helpers.pipeline.schema import Profile

    text = (repo_root() / "README.md").read_text()
    missing = [p for p in re.findall(r"helpers/[\w/]+\.py", text) if not (repo_root() / p).exists()]
    for dotted in set(re.findall(r"\bhelpers(?:\.\w+)+", text)):
        try:
            importlib.import_module(dotted)
        except ImportError:
            missing.append(dotted)
    stems = {p.stem: p for p in modules()}
    sections = set(Profile.model_fields)
    files = ("py", "yaml", "json", "jsonl", "csv", "parquet", "md", "txt", "png")
    for owner, name in set(re.findall(r"`([A-Za-z_]\w*)\.([a-z_]\w*)`", text)):
        if name in files:
            continue
        if owner in sections:
            cfg = Profile.model_fields[owner].annotation
            cfg = next((a for a in getattr(cfg, "__args__", (cfg,)) if a is not type(None)), cfg)
            if name not in getattr(cfg, "model_fields", {}):
                missing.append(f"{owner}.{name}")
        elif owner in stems:
            dotted = ".".join(("helpers", *stems[owner].relative_to(HELPERS).with_suffix("").parts))
            if not hasattr(importlib.import_module(dotted), name):
                missing.append(f"{owner}.{name}")
        elif owner[0].isupper():  # a class: Grade.reason
            if not any(f"class {owner}" in p.read_text() for p in modules()):
                missing.append(f"{owner}.{name}")
        else:
            missing.append(f"{owner}.{name}")
    assert sorted(missing) == []
