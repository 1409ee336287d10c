"""The runner on the smoke profile: every notebook end to end, then a rerun that skips all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.analysis.digest import run_figures
from helpers.pipeline.machine import HELD_TO_AVX2
from tests.pins import compare, expected_path

pytestmark = pytest.mark.slow


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "helpers.run", "params/smoke.yaml", *args],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, **HELD_TO_AVX2},
    )


def test_smoke_profile_end_to_end_then_skips():
    # In the session's outputs root, not a folder of its own: nbval's notebooks then find the
    # finished smoke run, as `make notebooks` gives them (notebooks/conftest.py).
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    rdir = Path(os.environ["STILL_OUTPUTS"]) / "smoke"
    for artifact in [
        "collect/responses.jsonl",
        "unify/demos.jsonl",
        "unify/filter_report.json",
        "mix/distill_small.jsonl",
        "models/sft_small/config.json",
        "explore/iter1/pool.jsonl",
        "explore/iter1/selected.jsonl",
        "models/sft_explore_1/config.json",
        "dpo/pairs.jsonl",
        "models/dpo_thought/config.json",
        "eval/backbone/summary.json",
        "eval/sft_small/summary.json",
        "eval/dpo_thought/summary.json",
        "REPORT.md",
        "tables/table2.md",
        "tables/table4.md",
    ]:
        assert (rdir / artifact).exists(), artifact
    assert "| Thought, SFT loss | dpo_thought |" in (rdir / "REPORT.md").read_text()
    # The numbers a reader relies on, pinned: `python -m tests.pins params/smoke.yaml
    # --update` rewrites them after an intended change (its commit says why).
    expected = json.loads(expected_path("smoke").read_text())
    moved = compare(expected, run_figures(rdir))
    assert not moved, "figures of the smoke run moved:\n" + "\n".join(moved)
    second = run()
    assert second.returncode == 0 and "running" not in second.stdout
    assert second.stdout.count("skip (done, unchanged)") == 14
    dry = run("--dry-run", "--force")
    assert dry.stdout.count(" run (forced)") == 14


def test_bad_profile_stops_before_running(tmp_outputs, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: x\nbenchmarks: {}\nvariants: []\nseeed: 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "helpers.run", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "did you mean 'seed'" in out.stderr
    assert not (tmp_outputs / "x").exists()
