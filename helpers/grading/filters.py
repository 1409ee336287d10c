"""Cleaning rules for distilled responses: each rule says whether a thought fails it."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

CJK = re.compile(r"[\u3400-\u9fff\u3040-\u30ff]")


def _words(text: str) -> list[str]:
    return re.findall(r"\S+", text.lower())


def repetition_share(text: str, n: int = 6) -> float:
    """Share of word n-grams that are repeats of an earlier n-gram (loops score high)."""
    w = _words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def has_repetition(text: str, n: int = 6, max_share: float = 0.3) -> bool:
    """A loop: many repeated n-grams, or one paragraph repeated three times in a row."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    run = any(paras[i] == paras[i + 1] == paras[i + 2] for i in range(len(paras) - 2))
    return run or repetition_share(text, n) > max_share


def has_language_mixing(text: str) -> bool:
    """English text with Chinese (or Japanese) characters mixed in."""
    return bool(CJK.search(text))


def is_gibberish(text: str) -> bool:
    """Mostly symbols, or 'words' far longer than any real word."""
    if not text.strip():
        return True
    letters = sum(ch.isalnum() or ch.isspace() for ch in text)
    long_tokens = sum(len(t) > 40 and not t.startswith("\\") for t in text.split())
    return letters / len(text) < 0.6 or long_tokens > 2


def too_short(thought: str, min_words: int) -> bool:
    """A thought with fewer words than the profile's minimum."""
    return len(_words(thought)) < min_words


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    """Word n-gram shingles of a text."""
    w = _words(text)
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def near_duplicates(
    records: list[dict[str, Any]], key: str, threshold: float
) -> tuple[set[int], set[int]]:
    """Indices of exact and near duplicates (Jaccard of shingles >= threshold) of an earlier record
    with the same problem id."""
    exact, near = set(), set()
    seen_text: set[str] = set()
    kept: dict[str, list[set]] = {}
    for i, r in enumerate(records):
        text = " ".join(_words(r[key]))
        if text in seen_text:
            exact.add(i)
            continue
        sh = shingles(r[key])
        earlier = kept.setdefault(r["problem_id"], [])
        if any(len(sh & o) / max(1, len(sh | o)) >= threshold for o in earlier):
            near.add(i)
            continue
        seen_text.add(text)
        earlier.append(sh)
    return exact, near
