"""Generation backends behind one interface: chat prompts in, n completions out.

Backends: `hf` (transformers, batched, CPU or GPU), `vllm` (offline engine, imported only when
chosen) and `openai` (any OpenAI-compatible endpoint, with retries and a resumable cache file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..grading.formatting import END_SOLUTION
from ..pipeline.artifacts import append_jsonl, iter_jsonl
from ..pipeline.secrets import redact
from .decoding import Finished, decode_continuous

log = logging.getLogger(__name__)


# Called with a prompt's index and its n completions as soon as all n are finished, so a
# caller can keep each result the moment it exists (an evaluation resumes from them).
OnResult = Callable[[int, list["Completion"]], None]


class Backend(Protocol):
    """What every generation backend does: chat prompts in, n completions per prompt out."""

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


def _trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = [text.find(s) + len(s) for s in stop if s in text]
    return (text[: min(cut)], True) if cut else (text, False)


# A greedy loop is called once the last LOOP_MIN_SPAN tokens (or LOOP_MIN_REPEATS periods, if
# longer) repeat with one period. Measured on the 500 stored responses of the tiny reference
# run: it caught 111 of the 180 responses that ran to the token limit and none of the 320 that
# finished; looser settings (48 tokens, 3 repeats) flagged a response that escaped its loop.
LOOP_MIN_SPAN = 128
LOOP_MIN_REPEATS = 5
LOOP_PERIODS = (4, 128)
LOOP_CHECK_EVERY = 8  # tokens between checks: the test costs ~a hundred list comparisons


def repeating_tail(
    tokens: Sequence[int],
    min_span: int = LOOP_MIN_SPAN,
    min_repeats: int = LOOP_MIN_REPEATS,
    periods: tuple[int, int] = LOOP_PERIODS,
) -> bool:
    """Whether the sequence ends in a loop: its tail repeats one block over and over."""
    n = len(tokens)
    for p in range(periods[0], periods[1] + 1):
        w = max(min_span, min_repeats * p)
        if w > n:
            break
        # The last w tokens are p-periodic when they equal themselves shifted by p.
        if tokens[n - w + p :] == tokens[n - w : n - p]:
            return True
    return False


def render(tokenizer: Any, prompt: Prompt) -> str:
    """Render a prompt with the model's chat template, then the assistant prefix."""
    text = tokenizer.apply_chat_template(
        prompt.messages, tokenize=False, add_generation_prompt=True
    )
    return text + prompt.prefix


class HFBackend:
    """Batched transformers generation: left padding, length-sorted batches, stop strings.

    With stop_loops, a row whose tail has become a repeating block stops there (stop reason
    `loop`) instead of decoding to the token limit: greedy decoding of a small model rarely
    leaves such a loop, and on CPU those tokens were a large share of evaluation time.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 32,
        progress: bool = True,
        stop_loops: bool = False,
    ) -> None:
        self.model, self.tok, self.batch_size, self.progress = (
            model,
            tokenizer,
            batch_size,
            progress,
        )
        self.stop_loops = stop_loops
        self.tok.padding_side = "left"
        # Tokens this backend paid for, over all its calls (see decoding.decode).
        self.tokens: Counter = Counter()

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        from tqdm import tqdm

        encoded = [
            self.tok(render(self.tok, p), add_special_tokens=False).input_ids for p in prompts
        ]
        # Requests are (prompt index, sample index); sorting by length keeps padding low.
        requests = sorted(
            ((i, k) for i in range(len(encoded)) for k in range(cfg.n)),
            key=lambda r: (-len(encoded[r[0]]), r),
        )
        ids = [encoded[i] for i, _ in requests]
        bar = tqdm(total=len(requests), desc="generate", unit="seq", disable=not self.progress)
        results: dict[tuple[int, int], Completion] = {}

        def done(f: Finished) -> None:
            i, k = requests[f.key]
            results[(i, k)] = self._completion(f.tokens, cfg.stop)
            bar.update(1)
            if on_result is not None and all((i, j) in results for j in range(cfg.n)):
                on_result(i, [results[(i, j)] for j in range(cfg.n)])

        decode_continuous(
            self.model,
            ids,
            pad_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos,
            batch_size=self.batch_size,
            max_new_tokens=cfg.max_new_tokens,
            eos=self.eos,
            stopped=self._stop_check(cfg.stop),
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed,
            on_done=done,
            stats=self.tokens,
        )
        bar.close()
        return [[results[(i, k)] for k in range(cfg.n)] for i in range(len(encoded))]

    @property
    def eos(self) -> int:
        return self.tok.eos_token_id

    def _completion(self, row: list[int], stop: Sequence[str]) -> Completion:
        """One finished row as a completion: text cut at a stop string, and why it ended."""
        ended = self.eos in row
        if ended:
            row = row[: row.index(self.eos)]
        text = self.tok.decode(row, skip_special_tokens=False)
        text, marker = _trim_at_stop(text, stop)
        reason = "end_marker" if marker else "end_of_turn" if ended else "length"
        if reason == "length" and self.stop_loops and repeating_tail(row):
            reason = "loop"
        return Completion(text, len(row), reason)

    def _stop_check(self, stop: Sequence[str]) -> Any:
        return stop_check(self.tok, stop, self.stop_loops)


def stop_check(tok: Any, stop: Sequence[str], stop_loops: bool) -> Any:
    """A test on a row's tokens so far: a stop string written, or (stop_loops) a loop."""
    if not stop and not stop_loops:
        return None
    # A stop string spans at most this many tokens, plus slack for merges at its edges.
    span = max((len(tok(s, add_special_tokens=False).input_ids) for s in stop), default=0)
    span += 2

    def stopped(tokens: list[int]) -> bool:
        if stop:
            tail = tok.decode(tokens[-span:], skip_special_tokens=False)
            if any(s in tail for s in stop):
                return True
        return stop_loops and len(tokens) % LOOP_CHECK_EVERY == 0 and repeating_tail(tokens)

    return stopped


class VLLMBackend:
    """vLLM's offline engine (GPU boxes): n samples per prompt, tensor parallel, seeded."""

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,
        dtype: str = "bfloat16",
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        from vllm import LLM  # imported only when this backend is chosen

        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
        )
        self.tok = self.llm.get_tokenizer()

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        from vllm import SamplingParams

        sp = SamplingParams(
            n=cfg.n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
            stop=list(cfg.stop),
            include_stop_str_in_output=True,
        )
        outs = self.llm.generate([render(self.tok, p) for p in prompts], sp)
        results = []
        for o in outs:
            comps = []
            for c in o.outputs:
                reason = (
                    "length"
                    if c.finish_reason == "length"
                    else "end_marker"
                    if c.stop_reason in cfg.stop
                    else "end_of_turn"
                )
                comps.append(Completion(c.text, len(c.token_ids), reason))
            results.append(comps)
            if on_result is not None:
                on_result(len(results) - 1, comps)
        return results


def redact_strings(obj: Any, secrets: list[str]) -> Any:
    """Mask secrets in every string of decoded JSON (a key escaped as \\uXXXX in the raw text is
    only the key once decoded, so masking the raw text misses it)."""
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, list):
        return [redact_strings(v, secrets) for v in obj]
    if isinstance(obj, dict):
        return {redact_strings(k, secrets): redact_strings(v, secrets) for k, v in obj.items()}
    return obj


ERROR_BODY_CHARS = 300  # of an error body shown in a message


def error_body(text: str, secrets: list[str]) -> str:
    """An HTTP error body fit to show: decoded when it is JSON, masked, then cut (in that order:
    a key cut in two would survive masking as its first half)."""
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    return redact(text, secrets)[:ERROR_BODY_CHARS]


class RetryableError(RuntimeError):
    """An HTTP failure worth retrying (429, 5xx, timeouts, broken connections)."""


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint: bounded concurrency, retries, resumable cache."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 8,  # requests in flight at once
        timeout: float = 600.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        cache_path: str | Path | None = None,
        reasoning_field: str | None = "reasoning_content",
        progress: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.concurrency, self.timeout = model, concurrency, timeout
        self.max_retries, self.backoff = max_retries, backoff
        self.cache_path = Path(cache_path) if cache_path else None
        self.reasoning_field, self.progress = reasoning_field, progress
        # The key lives only on this object, never in a record or a log line; a server that
        # echoes it (some proxies do, in error bodies) has it masked before anything keeps it.
        self._headers = {"Content-Type": "application/json"}
        self._secrets = [api_key] if api_key else []
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _key(self, prompt: Prompt, cfg: SamplingCfg) -> str:
        blob = json.dumps(
            [
                self.model,
                prompt.messages,
                prompt.prefix,
                cfg.n,
                cfg.temperature,
                cfg.top_p,
                cfg.max_new_tokens,
                cfg.seed,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        for attempt in range(self.max_retries + 1):
            try:
                r = httpx.post(
                    f"{self.base_url}/chat/completions",
                    json=payload,
                    headers=self._headers,
                    timeout=self.timeout,
                )
                if r.status_code == 429 or r.status_code >= 500:
                    raise RetryableError(f"HTTP {r.status_code}")
                if r.status_code >= 400:
                    body = error_body(r.text, self._secrets)
                    raise RuntimeError(f"{self.base_url}: HTTP {r.status_code}: {body}")
                return redact_strings(json.loads(r.text), self._secrets)
            except (RetryableError, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == self.max_retries:
                    why = redact(str(exc), self._secrets)
                    raise RuntimeError(
                        f"{self.base_url}: gave up after {attempt + 1} tries ({why})"
                    ) from None
                delay = self.backoff * 2**attempt
                log.warning("%s: %s, retrying in %.1fs", self.base_url, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _one(self, prompt: Prompt, cfg: SamplingCfg) -> list[Completion]:
        messages = list(prompt.messages)
        if prompt.prefix:
            messages.append({"role": "assistant", "content": prompt.prefix})
        payload = {
            "model": self.model,
            "messages": messages,
            "n": cfg.n,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_tokens": cfg.max_new_tokens,
            "seed": cfg.seed,
        }
        if cfg.stop:
            payload["stop"] = list(cfg.stop)
        data = self._post(payload)
        usage = data.get("usage", {})
        comps = []
        for ch in data["choices"]:
            msg = ch.get("message", {})
            text = msg.get("content") or ""
            reason = (
                "length"
                if ch.get("finish_reason") == "length"
                else ("end_marker" if any(s in text for s in cfg.stop) else "end_of_turn")
            )
            comps.append(
                Completion(
                    text,
                    int(usage.get("completion_tokens", 0)) // max(1, len(data["choices"])),
                    reason,
                    msg.get(self.reasoning_field) if self.reasoning_field else None,
                    {"prompt_tokens": usage.get("prompt_tokens", 0)},
                )
            )
        return comps

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions per prompt; answers already in the cache file are reused."""
        from tqdm import tqdm

        keys = [self._key(p, cfg) for p in prompts]
        done: dict[str, list[Completion]] = {}
        if self.cache_path and self.cache_path.exists():
            for rec in iter_jsonl(self.cache_path):
                done[rec["key"]] = [Completion(**c) for c in rec["completions"]]
        todo = [i for i, k in enumerate(keys) if k not in done]
        bar = tqdm(
            total=len(prompts),
            initial=len(prompts) - len(todo),
            desc="requests",
            disable=not self.progress,
        )
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, prompts[i], cfg): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                comps = fut.result()
                done[keys[i]] = comps
                if self.cache_path:
                    append_jsonl(
                        self.cache_path,
                        [{"key": keys[i], "completions": [c.as_dict() for c in comps]}],
                    )
                if on_result is not None:
                    on_result(i, comps)
                bar.update(1)
        bar.close()
        return [done[k] for k in keys]


def make_backend(
    kind: str,
    model: str | None = None,
    *,
    batch_size: int = 32,
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    base_url: str | None = None,
    api_model: str | None = None,
    api_key: str | None = None,
    cache_path: str | Path | None = None,
    seed: int = 0,
    stop_loops: bool = False,
) -> Backend:
    """Build a backend by name; local backends load the model (alias, hub id or path)."""
    if stop_loops and kind != "hf":
        raise ValueError(f"generation.stop_loops works with the hf backend only, not '{kind}'")
    if kind == "hf":
        from .models import load_model

        m, tok = load_model(model or "smollm2-135m-instruct", dtype=dtype)
        return HFBackend(m, tok, batch_size=batch_size, stop_loops=stop_loops)
    if kind == "vllm":
        from .models import resolve_model_path

        vdtype = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype]
        return VLLMBackend(resolve_model_path(model or ""), tensor_parallel_size, vdtype, seed=seed)
    if kind == "openai":
        if not base_url or not api_model:
            raise ValueError("the openai backend needs base_url and api_model")
        return OpenAIBackend(base_url, api_model, api_key, cache_path=cache_path)
    raise ValueError(f"unknown generation backend '{kind}': expected hf, vllm or openai")


def backend_from_profile(
    profile: Any, model: str, *, local: bool = False, **overrides: Any
) -> Backend:
    """The generation backend a profile's `generation` section describes, for one model.

    `local`: the model is a checkpoint of this run (a completer, a trained variant), so an
    `openai` profile still generates it locally (hf). `overrides` replace fields of the
    section (batch_size, stop_loops, ...) for this backend only.
    """
    from ..pipeline.secrets import secret

    gen = profile.generation.model_copy(update=overrides)
    kind = "hf" if local and gen.backend == "openai" else gen.backend
    return make_backend(
        kind,
        model,
        batch_size=gen.batch_size,
        dtype=gen.dtype,
        tensor_parallel_size=gen.tensor_parallel_size,
        base_url=gen.base_url,
        api_model=gen.api_model,
        api_key=secret(gen.api_key_env) if kind == "openai" else None,
        seed=profile.seed,
        stop_loops=gen.stop_loops and kind == "hf",
    )
