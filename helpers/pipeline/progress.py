"""Live progress of a running notebook in the runner's terminal.

Papermill hands the runner each chunk a notebook writes to stdout and stderr as it arrives.
Progress bars (tqdm: generation sequences, training steps) arrive as carriage-return updates;
the last one is shown on one status line that updates in place on a terminal, and as a plain
line every so often when the output is a log file.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

# A tqdm update: "desc:  42%|####      | 21/50 [00:10<00:14,  2.05it/s]".
_BAR = re.compile(r"(?:(?P<desc>[\w .:-]*?):\s*)?\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<rest>.*)$")


def parse_progress(chunk: str) -> str | None:
    """The latest progress update in a chunk of notebook output, shortened; None if none."""
    for part in reversed(re.split(r"[\r\n]", chunk)):
        m = _BAR.search(part.strip())
        if m:
            desc = (m.group("desc") or "").strip()
            rest = m.group("rest").strip()
            return f"{desc + ' ' if desc else ''}{m.group('pct')}% {rest}".strip()
    return None


class ProgressLine:
    """A file-like sink for a notebook's streams that keeps one status line up to date."""

    def __init__(
        self,
        tag: str,
        out: TextIO | None = None,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: bool = False,
    ) -> None:
        self.tag, self.out, self.every, self.clock = tag, out or sys.stdout, every, clock
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.t0 = clock()
        self.last_shown = -1e9
        self.status = ""
        self.shown = ""
        self.width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # A training step can take minutes with no output: the elapsed time still ticks, each
        # second on a terminal and every `every` seconds in a log.
        if heartbeat:
            threading.Thread(target=self._beat, args=(min(1.0, every),), daemon=True).start()

    def _beat(self, tick: float) -> None:
        while not self._stop.wait(tick):
            self.show()

    def write(self, chunk: str) -> int:
        """Take a chunk of notebook output; show its progress, if it has any."""
        update = parse_progress(chunk)
        if update:
            self.status = update
            self.show()
        return len(chunk)

    def flush(self) -> None:
        """Nothing is buffered."""

    def show(self, force: bool = False) -> None:
        """Print the status: in place on a terminal, or as a plain line now and then."""
        with self._lock:
            if not self._stop.is_set():
                self._show(force)

    def _show(self, force: bool) -> None:
        now = self.clock()
        elapsed = fmt_seconds(now - self.t0)
        line = f"{self.tag} running {elapsed}  {self.status}".rstrip()
        if self.tty:
            cols = 120
            line = line[: cols - 1]
            self.out.write("\r" + line + " " * max(0, self.width - len(line)))
            self.width = len(line)
            self.out.flush()
        elif force or now - self.last_shown >= self.every:
            self.out.write(line + "\n")
            self.out.flush()
            self.last_shown, self.shown = now, self.status

    def close(self) -> None:
        """End the status line: cleared on a terminal, its last state logged elsewhere."""
        with self._lock:
            self._stop.set()
        if self.tty and self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.out.flush()
        elif not self.tty and self.status and self.status != self.shown:
            self._show(force=True)


def fmt_seconds(seconds: float) -> str:
    """A duration as 4m05s (or 12s)."""
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
