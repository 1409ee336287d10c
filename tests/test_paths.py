"""Each artifact's path is spelled once, in its stage record (helpers.pipeline.stages): notebooks,
helpers and tools ask `stages.locate` (and `stages.TRAIN_LOG` / `TRAIN_SUMMARY` for what a model
folder holds) instead of joining names of their own."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from helpers.pipeline import stages

ROOT = Path(__file__).resolve().parents[1]


def artifact_names() -> set[str]:
    """The file names of every file a stage record declares (not folders, no placeholders)."""
    names = {stages.TRAIN_LOG, stages.TRAIN_SUMMARY}
    for s in stages.STAGES:
        for template in s.writes.values():
            last = template.split("/")[-1]  # a folder's ends in "/": no file name
            if last and "{" not in last:
                names.add(last)
    return names


def literals(code: str) -> list[tuple[int, str]]:
    """Every string literal of some code (f-strings by their constant parts), with lines."""
    out = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def spelled(code: str, names: set[str], joins: bool = True) -> list[str]:
    """Literals that name an artifact file, and (with joins) `rdir / "..."` joins."""
    found = [
        f"line {line}: {text!r}"
        for line, text in literals(code)
        if "\n" not in text and text.rstrip("/").split("/")[-1] in names
    ]
    if joins:
        found += [f"join: {m.group(0)}" for m in re.finditer(r"rdir\s*/\s*f?[\"']", code)]
    return found


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


SOURCES = sorted(
    [p for p in (ROOT / "helpers").rglob("*.py") if p.name != "stages.py"]
    + list((ROOT / "tools").glob("*.py"))
    + list((ROOT / "notebooks").glob("*.ipynb")),
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_or_notebook_spells_an_artifact_path(path):
    # The runner's own folders (manifests, executed notebooks, the lock) are not stage
    # artifacts: modules may join those; notebooks join nothing.
    notebook = path.suffix == ".ipynb"
    code = notebook_code(path) if notebook else path.read_text()
    assert spelled(code, artifact_names(), joins=notebook) == []


def test_the_check_finds_a_spelled_path():
    code = 'out = rdir / "mix" / "stats.json"\nlog = folder / "train_log.jsonl"\n'
    found = spelled(code, artifact_names())
    assert any("stats.json" in f for f in found) and any("train_log" in f for f in found)
    assert any(f.startswith("join") for f in found)
