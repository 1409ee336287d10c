"""Stopping a generation early: a stop string written, or a greedy loop that will not end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
