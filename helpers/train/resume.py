"""Training that survives an interruption: checkpoints every few minutes in the trainer's
scratch folder, and a resumed stage that picks up the newest one of the same training.

A training stage of the tiny run takes up to half an hour on a 2-core CPU and a paper-scale one
days; a stopped session or a lost machine would otherwise start it again from step 0. The
Trainer's own checkpoints carry the weights, optimizer, schedule and random states, so a
resumed run takes the steps the uninterrupted one would have taken.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import read_json, settings_hash, write_json
from ..pipeline.config import forced
from ..pipeline.paths import rel

log = logging.getLogger(__name__)

RESUME_META = "resume.json"  # the fingerprint of the training the folder's checkpoints belong to
COUNTS = "token_counts.json"  # the tokens counted up to a checkpoint (see trainer.count_tokens)


def fingerprint(spec: Any) -> str:
    """What a checkpoint must share to be resumed: the whole spec and the starting weights."""
    return settings_hash({"spec": spec.to_json(), "weights": weights_stamp(spec.model)})


def weights_stamp(model: str) -> list[tuple[str, int, int]] | None:
    """The starting model's files by name, size and time (None for a hub id or alias): a
    retrained upstream model is a new folder, and reading a 32B model's bytes on every rank
    would cost minutes."""
    root = Path(model)
    if not root.exists():
        return None
    files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def prepare(spec: Any, work: Path) -> None:
    """Keep `work`'s checkpoints if they belong to this spec's training, else empty it.

    Called once per training, before any process starts (a multi-process launch's ranks then
    only read the folder). When the runner forces the stage, nothing is resumed.
    """
    work = Path(work)
    fp = fingerprint(spec)
    meta = work / RESUME_META
    if work.exists():
        try:
            same = not forced() and read_json(meta).get("fingerprint") == fp
        except (OSError, ValueError):
            same = False
        if not same:
            why = "forced" if forced() else "of other settings"
            log.info("removing %s: its checkpoints are %s", rel(work), why)
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_json(meta, {"fingerprint": fp})


def last_checkpoint(work: Path, spec: Any) -> Path | None:
    """The newest whole checkpoint of this spec's training in `work` (see `prepare`), or None.

    A checkpoint is whole once its trainer state is written (the Trainer writes it last).
    """
    try:
        if read_json(Path(work) / RESUME_META).get("fingerprint") != fingerprint(spec):
            return None
    except (OSError, ValueError):
        return None
    found = []
    for path in Path(work).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and path.is_dir():
            found.append((int(step), path))
    for _, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # cut off by the interruption, or half removed by the Trainer's rotation
        return path
    return None


def restore_counts(trainer: Any, checkpoint: Path | None) -> None:
    """Start the trainer's token counts where the checkpoint left them (the batches a resumed
    Trainer skips are not collated again)."""
    trainer.restored_counts = Counter()
    counts = getattr(trainer, "token_counts", None)
    if checkpoint is None or counts is None or not (checkpoint / COUNTS).exists():
        return
    trainer.restored_counts = Counter(read_json(checkpoint / COUNTS))
    counts.update(trainer.restored_counts)


def counts_so_far(trainer: Any, used: int) -> dict[str, int]:
    """The tokens of the batches trained on: those restored, and the first `used` collated
    since (the data loader collates ahead)."""
    total = Counter(getattr(trainer, "restored_counts", {}))
    for tally in getattr(trainer, "batch_token_counts", [])[:used]:
        total.update(tally)
    return dict(total)


def periodic_save(trainer: Any, minutes: float) -> None:
    """Make the trainer save a checkpoint every `minutes` of training (0: never)."""
    from transformers import TrainerCallback

    if minutes <= 0:
        return
    used = [0]  # batches trained on since this process started
    step = trainer.training_step

    def counted_step(*args: Any, **kwargs: Any) -> Any:
        used[0] += 1
        return step(*args, **kwargs)

    trainer.training_step = counted_step

    class PeriodicSave(TrainerCallback):
        """Asks for a save once `minutes` have passed since the last one (all ranks agree)."""

        def __init__(self) -> None:
            self.last = time.monotonic()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            due = time.monotonic() - self.last >= minutes * 60
            if agreed(due, args) and state.global_step < state.max_steps:
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.last = time.monotonic()
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                write_json(folder / COUNTS, counts_so_far(trainer, used[0]))

    trainer.add_callback(PeriodicSave())


def agreed(due: bool, args: Any) -> bool:
    """Whether any rank's clock says a save is due: every rank must save together."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return due
    flag = torch.tensor([int(due)], device=args.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())
