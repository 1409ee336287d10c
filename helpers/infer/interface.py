"""What every generation backend takes and returns: chat prompts, sampling settings, completions,
the settings of a request source, and the Backend protocol. The backends (hf_backend,
vllm_backend, openai_backend) and generation (which builds them) import this; it imports none
of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..grading.formatting import END_SOLUTION

# Called with a prompt's index and its n completions as soon as all n are finished, so a
# caller can keep each result the moment it exists (an evaluation resumes from them).
OnResult = Callable[[int, list["Completion"]], None]


class Backend(Protocol):
    """What every generation backend does: chat prompts in, n completions per prompt out.

    The local backends (hf, vllm) also decode the requests of a source (`run_source`: the
    exploration scheduler hands out attempts and cancels those a success makes useless) and
    score responses teacher-forced (`score`, for perplexity selection and DPO pairs).
    """

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        ...


@dataclass
class Prompt:
    """One request: chat messages, and optionally the start of the assistant's reply."""

    messages: list[dict[str, str]]
    prefix: str = ""


@dataclass
class Completion:
    """One generated continuation with its token count and why it stopped."""

    text: str
    tokens: int
    stop_reason: str  # end_marker | end_of_turn | length | loop | error
    reasoning: str | None = None  # a separate reasoning field (DeepSeek-R1's API)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SamplingCfg:
    """How to sample: greedy when temperature is 0."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: tuple[str, ...] = (END_SOLUTION,)


@dataclass
class SourceSettings:
    """How a backend decodes the requests of a source (see Backend.run_source): the token ids
    of every prompt the source can hand out (their shared head is prefilled once), sampling,
    limits, and whether each request's log-probability is recorded."""

    prompts: list[list[int]]
    max_new_tokens: int
    batch_size: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | str = 0  # what each request's seed is drawn from, with the request's key
    stop: tuple[str, ...] = (END_SOLUTION,)
    logprobs: bool = False


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = [text.find(s) + len(s) for s in stop if s in text]
    return (text[: min(cut)], True) if cut else (text, False)


def render(tokenizer: Any, prompt: Prompt) -> str:
    """Render a prompt with the model's chat template, then the assistant prefix."""
    text = tokenizer.apply_chat_template(
        prompt.messages, tokenize=False, add_generation_prompt=True
    )
    return text + prompt.prefix
