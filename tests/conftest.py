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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
    from helpers.models import load_model

    return load_model("smollm2-135m-instruct", dtype="fp32")


# math-verify's first call loads its grammar; per-example deadlines would make that flaky.
from hypothesis import settings  # noqa: E402

settings.register_profile("project", deadline=None, max_examples=60)
settings.load_profile("project")
