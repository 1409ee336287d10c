"""The openai backend: any OpenAI-compatible endpoint, with retries, a resumable cache and masking."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import append_jsonl, iter_jsonl
from ..pipeline.secrets import redact
from .interface import Completion, OnResult, Prompt, SamplingCfg

log = logging.getLogger(__name__)


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
