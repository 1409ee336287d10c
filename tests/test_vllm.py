"""The vllm backend on this machine's CPU, for real, against the hf backend on the backbone.

One engine serves the module (each start costs seconds); `make setup` installs vLLM's CPU build
into the project's environment, so these run in CI.
"""

from __future__ import annotations

import json

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM's CPU build is installed by `make setup`")

from helpers.grading.formatting import chat_messages, render_prompt  # noqa: E402
from helpers.infer.hf_backend import HFBackend  # noqa: E402
from helpers.infer.interface import Prompt, SamplingCfg  # noqa: E402
from helpers.infer.models import resolve_model_path  # noqa: E402

QUESTIONS = [
    "What is 7 + 8?",
    "Name a prime number.",
    "Write one sentence about the sea.",
    "What is 12 - 5? Think step by step.",
    "List three colours.",
    "Say hello.",
]


@pytest.fixture(scope="module")
def engine():
    from helpers.infer.vllm_backend import VLLMBackend

    be = VLLMBackend(resolve_model_path("smollm2-135m-instruct"), dtype="float32", progress=False)
    yield be
    be.close()


@pytest.fixture(scope="module")
def hf(backbone):
    return HFBackend(*backbone, batch_size=8, progress=False)


def test_greedy_generation_is_the_hf_backends_token_for_token(engine, hf):
    prompts = [Prompt(chat_messages(q, "")) for q in QUESTIONS]
    cfg = SamplingCfg(max_new_tokens=40)
    got, want = engine.generate(prompts, cfg), hf.generate(prompts, cfg)
    assert [c[0].text for c in got] == [c[0].text for c in want]
    # the same token counts (the end-of-turn token uncounted) and the same reasons to stop
    assert [(c[0].tokens, c[0].stop_reason) for c in got] == [
        (c[0].tokens, c[0].stop_reason) for c in want
    ]
    assert engine.tokens["decode"] > 0 and engine.tokens["prefill"] > 0


def test_samples_are_seeded_one_by_one(engine):
    prompts = [Prompt(chat_messages(q, "")) for q in QUESTIONS[:3]]
    cfg = SamplingCfg(n=3, temperature=1.0, max_new_tokens=16, seed=5)
    a = engine.generate(prompts, cfg)
    b = engine.generate(prompts[:1], cfg)  # alone instead of in a batch of nine
    assert [c.text for c in a[0]] == [c.text for c in b[0]]
    assert len({c.text for c in a[1]}) > 1  # three different samples


def test_perplexity_equals_the_hf_backends(engine, hf):
    tok = hf.tok
    p_ids = [tok(render_prompt(tok, q, ""), add_special_tokens=False).input_ids for q in QUESTIONS]
    r_ids = [tok(f"The answer is {i}.", add_special_tokens=False).input_ids for i in range(6)]
    got, want = engine.score(p_ids, r_ids), hf.score(p_ids, r_ids)
    for g, w in zip(got, want, strict=True):
        assert g.tokens == w.tokens and g.logprob == pytest.approx(w.logprob, rel=1e-4, abs=1e-3)


def test_exploration_on_vllm_stops_at_success_and_resumes(engine, tmp_path, monkeypatch):
    import helpers.method.explore as ex
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    problems = build_benchmark("h", BenchmarkCfg(kind="normal", size=4))
    settings = {
        "temperature": 1.0,
        "top_p": 1.0,
        "batch_size": 8,
        "seed": 0,
        "max_rollouts": 3,
        "parallel": 2,
        "max_new_tokens": 12,
    }

    def run(path):
        return ex.explore(
            engine,
            problems,
            path,
            prompt="",
            iteration=1,
            model_name="m",
            settings=settings,
            progress=False,
        )

    whole = tmp_path / "whole" / "pool.jsonl"
    stats = run(whole)
    a = [json.loads(x) for x in whole.read_text().splitlines()]
    key = lambda r: (r["problem_id"], r["attempt"])  # noqa: E731
    # each problem's attempts are 1..j: up to its first correct one, or all three
    for p in problems:
        mine = sorted(r["attempt"] for r in a if r["problem_id"] == p["id"])
        first = min(
            (r["attempt"] for r in a if r["problem_id"] == p["id"] and r["correct"]), default=3
        )
        assert mine[:first] == list(range(1, first + 1))
    assert all(r["logprob"] is not None and r["logprob"] < 0 for r in a)
    assert stats["decode"] >= sum(r["tokens"] for r in a)
    broken = tmp_path / "broken" / "pool.jsonl"
    real, calls = ex.append_jsonl, []

    def crash_on_fifth(path, rows):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real(path, rows)

    monkeypatch.setattr(ex, "append_jsonl", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        run(broken)
    monkeypatch.setattr(ex, "append_jsonl", real)
    run(broken)  # resumes: no attempt twice, none missing
    b = [json.loads(x) for x in broken.read_text().splitlines()]
    assert sorted(map(key, b)) == sorted(map(key, a))


@pytest.mark.slow
def test_the_smoke_profile_runs_the_whole_method_on_vllm(tmp_outputs, tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    from helpers.pipeline.machine import HELD_TO_AVX2
    from helpers.pipeline.paths import repo_root

    data = yaml.safe_load((repo_root() / "params" / "smoke.yaml").read_text())
    data["run"] = "smoke_vllm"
    data["generation"]["backend"] = "vllm"
    data["explore"]["pool_files"] = [str(repo_root() / p) for p in data["explore"]["pool_files"]]
    prof = tmp_path / "smoke_vllm.yaml"
    prof.write_text(yaml.safe_dump(data))
    out = subprocess.run(
        [sys.executable, "-m", "helpers.run", str(prof)],
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=repo_root(),
        env={**os.environ, **HELD_TO_AVX2},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rdir = tmp_outputs / "smoke_vllm"
    for artifact in (
        "explore/iter1/pool.jsonl",
        "dpo/pairs.jsonl",
        "eval/dpo_thought/summary.json",
    ):
        assert (rdir / artifact).exists(), artifact
    summary = json.loads((rdir / "eval" / "sft_small" / "summary.json").read_text())
    assert summary["tokens"]["decode"] > 0  # generated by vLLM, counted as the hf backend counts


def test_the_tiny_profiles_engine_starts_after_training_in_the_same_process(tmp_path):
    """A notebook kernel that trained a model (unify's completer, say) then starts an engine:
    sized from the profile (its context, a KV cache from what is free), it starts and
    generates, where vLLM's own sizing once asked for the model's whole 8,192-token context."""
    import subprocess
    import sys

    code = f"""
import torch
from helpers.infer.generation import backend_from_profile, context_length, free
from helpers.infer.interface import Prompt, SamplingCfg
from helpers.grading.formatting import chat_messages
from helpers.pipeline.config import load_profile
from helpers.pipeline.schema import TrainCfg
from helpers.train.sft import SFTSpec, train_sft

prof = load_profile("params/tiny.yaml")
data = [{{"id": "d0", "question": "What is 2 + 3?", "combined_text": "2 + 3 = 5."}}] * 2
train = TrainCfg(method="full", max_steps=1, warmup_ratio=0.0, dtype="fp32")
train_sft(SFTSpec("smollm2-135m-instruct", data, r"{tmp_path / "m"}", "", train))
be = backend_from_profile(prof, r"{tmp_path / "m"}", local=True, dtype="fp32")
out = be.generate([Prompt(chat_messages("Say hi.", ""))], SamplingCfg(max_new_tokens=4))
print("context", context_length(prof), "tokens", out[0][0].tokens)
free(be)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("context"))
    assert int(line.split()[1]) < 8192 and int(line.split()[3]) > 0
