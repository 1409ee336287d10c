"""Shared fixtures: a temporary outputs folder, so tests never touch outputs/<run>/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tmp_outputs(tmp_path, monkeypatch):
    """Point STILL_OUTPUTS at a temporary folder for the test."""
    out = tmp_path / "outputs"
    out.mkdir()
    monkeypatch.setenv("STILL_OUTPUTS", str(out))
    return out


@pytest.fixture(scope="session")
def backbone():
    """The embedded backbone and its tokenizer, loaded once (fp32 for speed on AVX2 CPUs)."""
    from helpers.models import load_model

    return load_model("smollm2-135m-instruct", dtype="fp32")


# math-verify's first call loads its grammar; per-example deadlines would make that flaky.
from hypothesis import settings  # noqa: E402

settings.register_profile("project", deadline=None, max_examples=60)
settings.load_profile("project")
