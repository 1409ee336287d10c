"""Shared fixtures. Tests never write under the repository's outputs/.

The whole session (nbval's kernels included, which inherit this environment) writes run
folders into a temporary outputs root, and the converted backbone into a cache outside the
repository that later sessions reuse.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers.pipeline.machine import HELD_TO_AVX2

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Before torch is imported: this session, and nbval's kernels, compute with AVX2 kernels, so the
# numbers the notebooks show are the same on every machine (helpers.pipeline.machine).
os.environ.update(HELD_TO_AVX2)
os.environ["STILL_OUTPUTS"] = tempfile.mkdtemp(prefix="still-test-outputs-")
atexit.register(shutil.rmtree, os.environ["STILL_OUTPUTS"], ignore_errors=True)
os.environ.setdefault(
    "STILL_CACHE",
    str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slow-thinking"),
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tmp_outputs(tmp_path, monkeypatch):
    """Point STILL_OUTPUTS at a temporary folder of this test's own."""
    out = tmp_path / "outputs"
    out.mkdir()
    monkeypatch.setenv("STILL_OUTPUTS", str(out))
    return out


@pytest.fixture(scope="session")
def backbone():
    """The embedded backbone and its tokenizer, loaded once (fp32 for speed on AVX2 CPUs)."""
    from helpers.infer.models import load_model

    return load_model("smollm2-135m-instruct", dtype="fp32")


def small_config():
    """The backbone's config cut to two narrow layers (same vocabulary and tokenizer)."""
    from transformers import AutoConfig

    from helpers.infer.models import resolve_model_path

    cfg = AutoConfig.from_pretrained(resolve_model_path("smollm2-135m-instruct"))
    cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 2, 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 2, 16
    return cfg


@pytest.fixture
def small_model():
    """A randomly initialised two-layer model with the backbone's vocabulary and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from helpers.infer.models import load_tokenizer

    cfg = small_config()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).eval(), load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A small random model with the backbone's tokenizer, saved where processes can load it."""
    import torch
    from transformers import AutoModelForCausalLM

    from helpers.infer.models import load_tokenizer

    cfg = small_config()
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("small") / "model"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    load_tokenizer("smollm2-135m-instruct").save_pretrained(out)
    return str(out)


# math-verify's first call loads its grammar; per-example deadlines would make that flaky.
from hypothesis import settings  # noqa: E402

settings.register_profile("project", deadline=None, max_examples=60)
settings.load_profile("project")


@pytest.fixture(scope="module")
def tiny_lm():
    """A randomly initialised two-layer Llama with a 64-token vocabulary (decode-loop tests)."""
    import torch
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def sample(model, source, **settings):
    """Run the decode loop over a source, sampling with log-probs (no shared head, no EOS)."""
    from helpers.infer.decoding import decode

    args = dict(head=[], pad_id=0, eos=None, temperature=1.0, logprobs=True)
    return decode(model, source, **{**args, **settings})


# The suite in tiers (`make test-fast`, `make test-stage`, `make test-smoke`; `make test` runs
# all): unit tests need no model; stage tests load the backbone, train, start an engine or
# launch processes; smoke tests run the smoke profile end to end and nbval over the notebooks.
STAGE_FILES = {"test_vllm.py", "test_launch.py", "test_runner.py", "test_runner_safety.py"}
STAGE_FIXTURES = {"backbone", "make_trainer", "engine", "model_dir"}
SMOKE_FILES = {"test_pipeline.py"}


def tier(item: pytest.Item) -> str:
    """The tier a test belongs to (see STAGE_FILES, STAGE_FIXTURES, SMOKE_FILES)."""
    name = Path(str(item.fspath)).name
    if name.endswith(".ipynb") or name in SMOKE_FILES or item.get_closest_marker("slow"):
        return "smoke"
    if name in STAGE_FILES or STAGE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "stage"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, so `-m unit` (and stage, smoke) selects it."""
    for item in items:
        item.add_marker(getattr(pytest.mark, tier(item)))
