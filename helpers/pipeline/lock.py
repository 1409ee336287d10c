"""One runner per run folder: an advisory lock that names its holder.

Two runners on one `outputs/<run>/` would race on the same model folder and can leave it without
weights. The lock is an `flock` on `outputs/<run>/.runner.lock`: the kernel releases it when its
holder exits, however it exits, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .paths import rel


class RunLocked(RuntimeError):
    """Another runner holds the run folder."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextlib.contextmanager
def run_lock(rdir: Path, wait: bool = False, log=print) -> Iterator[None]:
    """Hold the run folder's lock for the block; refuse (or wait, with wait=True) if taken."""
    rdir.mkdir(parents=True, exist_ok=True)
    path = rdir / ".runner.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise RunLocked(
                    f"{rel(rdir)} is in use by another run ({holder}); wait for it to finish, "
                    "or pass --wait to queue behind it"
                ) from None
            log(f"waiting for {rel(rdir)}: in use by another run ({holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock
