"""The kernels the runner executes notebooks in: their environment, sockets, logs and stops."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import FORCE_ENV, SECTIONS_ENV
from .plan import Execution

DEFAULT_KERNEL = "slow-thinking"
KERNEL_DIED = "Kernel died while waiting for execute reply."


@contextlib.contextmanager
def kernel_env(ex: Execution, forced: bool) -> Iterator[None]:
    """What the kernel inherits: the sections its profile may hand out (the execution's record
    lists them) and whether the run is forced (resumable partial outputs start afresh)."""
    values = {
        SECTIONS_ENV: None if ex.sections is None else ",".join(ex.sections),
        FORCE_ENV: "1" if forced else None,
    }
    old = {k: os.environ.get(k) for k in values}

    def put(items: dict[str, str | None]) -> None:
        for k, v in items.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    put(values)
    try:
        yield
    finally:
        put(old)


def kernel_manager(log_path: Path) -> type:
    """Kernels over IPC sockets, their process output kept in a log file of the run.

    IPC: no TCP port, and no "running over TCP without encryption" warning for every stage.
    The log: a kernel's own messages (a traceback while it is shut down after Ctrl-C, say)
    belong beside its executed notebook, not in the runner's terminal.
    """
    import atexit
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    # The sockets are files named after `ip`, relative to the kernel's working directory (the
    # repository) by default: a killed run left them there. A private folder instead.
    sockets = Path(tempfile.mkdtemp(prefix="still-kernels-"))
    atexit.register(shutil.rmtree, sockets, ignore_errors=True)

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(sockets / "kernel"))
            super().__init__(**kwargs)

        async def start_kernel(self, **kw: Any) -> None:
            log = open(log_path, "a")  # noqa: SIM115 (the kernel process owns it from here)
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            try:
                await super().start_kernel(**kw)
            finally:
                log.close()  # the child keeps its own copy of the descriptor

    return IPCKernelManager


def _is_kernel_death(record: logging.LogRecord) -> bool:
    """nbclient's report of a dead kernel, logged or left in an unretrieved task."""
    from nbclient.exceptions import DeadKernelError

    exc = record.exc_info[1] if record.exc_info else None
    return record.getMessage() == KERNEL_DIED or isinstance(exc, DeadKernelError)


class _KernelDeathsToLog(logging.Filter):
    """Send nbclient's dead-kernel reports to the kernel's log file instead of the terminal.

    On a stop, nbclient shuts the kernel down while a cell's poll may still be pending; that
    poll then reports the death (a race: some stops print it, most do not). A kernel that dies
    on its own is reported by the runner as the execution's failure, in one line.
    """

    log_path: Path | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.log_path is None or not _is_kernel_death(record):
            return True
        with open(self.log_path, "a") as f:
            f.write(f"[runner] {record.getMessage()}\n")
        return False


_DEATHS = _KernelDeathsToLog()


def kernel_deaths_to(log_path: Path) -> None:
    """From now on, keep nbclient's dead-kernel reports in `log_path` (the current execution's).

    The filters stay for the process: a stop's orphaned poll may report after its execution has
    unwound (papermill hands nbclient its own logger; asyncio reports the task when collected).
    """
    _DEATHS.log_path = log_path
    for name in ("papermill", "asyncio"):
        logging.getLogger(name).addFilter(_DEATHS)  # once: a filter already there is kept


def stop_as_ctrl_c() -> None:
    """Make `kill`, a scheduler's SIGTERM or a closed terminal's SIGHUP stop the run as Ctrl-C
    does: the notebook in hand marked interrupted, its kernel shut down, finished work kept."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)


def pick_kernel() -> str:
    """Use the project's registered kernel when present, else the default python3 kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return DEFAULT_KERNEL if DEFAULT_KERNEL in specs else "python3"
