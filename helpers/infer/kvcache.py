"""A key/value cache for the decode loop that appends into spare room instead of re-copying."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

# Room added past the current length whenever a layer's buffer is (re)allocated: one copy per
# this many decode steps instead of one per step.
HEADROOM = 128


class GrowingLayer(DynamicLayer):
    """A cache layer whose keys and values are prefix views of a buffer with spare room.

    transformers' DynamicLayer concatenates on every update, copying the whole cache each decode
    step; at batch 100 on CPU that copy was a quarter of the step's time. Anything that replaces
    `keys`/`values` from outside (row selection, trimming, merging) is fine: the next update
    finds the views no longer point into the buffer and copies them into a fresh one.
    """

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Start empty, with no buffer yet."""
        super().lazy_initialization(key_states, value_states)
        self._kbuf: torch.Tensor | None = None
        self._vbuf: torch.Tensor | None = None

    def _in_buffer(self, n: int) -> bool:
        buf = self._kbuf
        return (
            buf is not None
            and self._vbuf is not None
            and self.keys.dim() == 4
            and self.keys.data_ptr() == buf.data_ptr()
            and self.values.data_ptr() == self._vbuf.data_ptr()
            and self.keys.shape[:2] == buf.shape[:2]
            and self.keys.stride() == buf.stride()
            and n <= buf.shape[-2]
        )

    @staticmethod
    def _fresh(old: torch.Tensor, like: torch.Tensor, n: int, room: int) -> torch.Tensor:
        buf = like.new_empty((*like.shape[:2], room, like.shape[-1]))
        if n:
            buf[..., :n, :] = old
        return buf

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new states after the cached ones; return views of everything cached."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.get_seq_length()
        end = n + key_states.shape[-2]
        if not self._in_buffer(end):
            room = end + HEADROOM
            self._kbuf = self._fresh(self.keys, key_states, n, room)
            self._vbuf = self._fresh(self.values, value_states, n, room)
        assert self._kbuf is not None and self._vbuf is not None
        self._kbuf[..., n:end, :] = key_states
        self._vbuf[..., n:end, :] = value_states
        self.keys, self.values = self._kbuf[..., :end, :], self._vbuf[..., :end, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the given rows, spare room included, so the next update copies nothing."""
        n = self.get_seq_length()
        if n == 0:
            return
        if not self._in_buffer(n):
            super().batch_select_indices(indices)
            return
        assert self._kbuf is not None and self._vbuf is not None
        self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
        self.keys, self.values = self._kbuf[..., :n, :], self._vbuf[..., :n, :]


def growing_cache(layers: int) -> DynamicCache:
    """An empty DynamicCache of `layers` GrowingLayers, for a model with that many layers."""
    cache = DynamicCache()
    cache.layers = [GrowingLayer() for _ in range(layers)]
    return cache


def repeat_rows(cache: DynamicCache, rows: int) -> DynamicCache:
    """A growing cache holding `rows` copies of a one-row cache (a prompt prefix shared by all)."""
    out = growing_cache(len(cache.layers))
    for src, dst in zip(cache.layers, out.layers, strict=True):
        dst.update(src.keys.expand(rows, -1, -1, -1), src.values.expand(rows, -1, -1, -1))
    return out
