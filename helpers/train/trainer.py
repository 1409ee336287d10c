"""What SFT and DPO training share: loading, TRL's arguments, LoRA, the loss, token counts,
the schedule check, saving, and the launch on one GPU or many (accelerate and DeepSpeed).

A spec (SFTSpec, DPOSpec) says what to train; `train(spec, build, summary, module)` trains it
here, or, with more than one GPU, writes it to JSON and runs `python -m module SPEC.json` under
`accelerate launch` on every GPU, where the module's entry point calls `run` on it.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import write_json, write_jsonl
from ..pipeline.machine import cuda_available, resolve_dtype
from ..pipeline.paths import rel
from ..pipeline.schema import TrainCfg
from ..pipeline.stages import TRAIN_LOG, TRAIN_SUMMARY
from . import resume

log = logging.getLogger(__name__)


def train(spec: Any, build: Callable, summary: Callable, module: str) -> dict[str, Any]:
    """Train a spec and save its checkpoint (merged when LoRA); return the training summary."""
    resume.prepare(spec, work_dir(Path(spec.out_dir)))
    if spec.train.processes > 1:
        return launch_distributed(module, spec.to_json(), Path(spec.out_dir), spec.train)
    return run(spec, build, summary)


def run(spec: Any, build: Callable, summary: Callable) -> dict[str, Any]:
    """Train in this process (or as one rank of a launch): the trainer `build` makes for the
    spec, its schedule checked, resumed from the newest checkpoint an interrupted training of
    the same spec left, saved with `summary(spec, trainer)` and the training loss."""
    import sys

    model, tok, cuda, bf16 = load_for_training(spec.model, spec.train)
    out = Path(spec.out_dir)
    trainer = build(spec, model, tok, work_dir(out), cuda, bf16)
    check_schedule(trainer)
    start = resume.last_checkpoint(work_dir(out), spec)
    if start is not None:
        print(f"resuming training from {rel(start)}", file=sys.stderr, flush=True)
    resume.restore_counts(trainer, start)
    resume.periodic_save(trainer, spec.train.checkpoint_minutes)
    result = trainer.train(resume_from_checkpoint=str(start) if start else None)
    record = {**summary(spec, trainer), "train_loss": result.training_loss}
    record["resumed_from_step"] = int(start.name.split("-")[-1]) if start else None
    return save_trained(trainer, tok, out, work_dir(out), cuda, spec.train.method, record)


def launch_command(module: str, spec_path: Path, train: TrainCfg) -> list[str]:
    """`accelerate launch` of `python -m module SPEC.json` on `train.processes` processes:
    DeepSpeed when the profile names a config, else DDP (torchrun: NCCL on GPUs, gloo on a
    CPU)."""
    import sys

    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    cmd += ["--num_processes", str(train.processes), "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # the spec sets precision
    if train.deepspeed_config:
        from ..pipeline.config import resolve_path

        cmd += ["--use_deepspeed", "--deepspeed_config_file"]
        cmd += [str(resolve_path(train.deepspeed_config))]
    else:
        cmd += ["--multi_gpu"]  # accelerate's name for torchrun's processes, GPUs or not
    return [*cmd, "-m", module, str(spec_path)]


def launch_distributed(
    module: str, spec_json: dict[str, Any], out: Path, train: TrainCfg
) -> dict[str, Any]:
    """Write the spec beside its model folder and train it through launch_command; return the
    summary rank 0 saved."""
    import os
    import sys

    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out.with_name(out.name + ".spec.json")
    write_json(spec_path, spec_json)
    cmd = launch_command(module, spec_path, train)
    print(f"launching: {' '.join(cmd)}", file=sys.stderr, flush=True)
    env = dict(os.environ)
    if not cuda_available():  # the cores shared out, or each process's OpenMP threads spin on all
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // train.processes)))
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise RuntimeError(
            f"training through accelerate failed (exit {result.returncode}): {' '.join(cmd)}"
        )
    return json.loads((out / TRAIN_SUMMARY).read_text())


def load_for_training(model_name: str, train: TrainCfg) -> tuple[Any, Any, bool, bool]:
    """The model to train and its tokenizer, and whether training runs on CUDA and in bf16.

    bf16 weights only for full bf16 training on a GPU (memory); on a CPU the weights stay fp32
    and bf16 runs under autocast, so small updates are not rounded away.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..infer.models import load_tokenizer, resolve_model_path

    cuda = torch.cuda.is_available()
    bf16 = train_in_bf16(train.dtype, cuda)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(model_name),
        dtype=torch.bfloat16 if bf16 and cuda and train.method == "full" else torch.float32,
    )
    return model, load_tokenizer(model_name), cuda, bf16


def work_dir(out: Path) -> Path:
    """The trainer's scratch folder beside a model's folder (removed once the model is saved)."""
    return out.with_name(out.name + ".work")


def train_in_bf16(dtype: str, cuda: bool) -> bool:
    """Whether to train with bf16 (mixed precision): the profile's choice, or the machine's."""
    if dtype == "fp16":
        raise ValueError("sft.dtype fp16 is not supported for training: use bf16 or fp32")
    return resolve_dtype(dtype, cuda) == "bf16"


def text_progress(trainer: Any) -> None:
    """Show training steps as a text bar named "train steps" when the runner executes the
    notebook.

    In a kernel the Trainer draws an HTML bar, which the runner (reading the notebook's
    streams) never sees; by hand the HTML bar stays.
    """
    import os

    from transformers.trainer_callback import ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    from ..pipeline.config import SECTIONS_ENV

    if SECTIONS_ENV not in os.environ:
        return

    class LabelledProgress(ProgressCallback):
        """The Trainer's text bar, named so the runner's status line says what it counts."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from tqdm.auto import tqdm

            if state.is_world_process_zero:
                self.training_bar = tqdm(total=state.max_steps, desc="train steps")
            self.current_step = 0

    handler = trainer.callback_handler
    for cb in list(handler.callbacks):
        if isinstance(cb, (ProgressCallback, NotebookProgressCallback)):
            handler.remove_callback(cb)
    trainer.add_callback(LabelledProgress)


def completion_loss(model: Any, inputs: dict, num_items_in_batch: Any = None) -> Any:
    """Mean negative log-likelihood of the loss-bearing tokens, with the LM head on those only.

    TRL's fused LM head computes log-probabilities, entropy and top-1 over every position,
    prompt and padding included, for two logged metrics; with a 49k vocabulary that was about
    a third of a CPU training step. Here the head sees only the positions whose next token
    carries loss. The loss is the same quantity (summed over those tokens, divided by their
    number in the whole accumulated batch).
    """
    import torch.nn.functional as F

    target = inputs["labels"][:, 1:]
    # Hidden position p predicts token p + 1: the head runs on the positions where any row's
    # next token carries loss (transformers' logits_to_keep), through the model's own forward,
    # so DDP's gradient hooks and accelerate's autocast see the call.
    positions = (target != -100).any(0).nonzero().squeeze(-1)
    # Packed rows (padding_free) come without an attention mask and with position ids that
    # restart at each example: transformers then masks attention to each example's own tokens.
    logits = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs.get("attention_mask"),
        position_ids=inputs.get("position_ids"),
        logits_to_keep=positions,
        use_cache=False,
    ).logits.float()
    wanted = target[:, positions]
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), wanted.reshape(-1), ignore_index=-100, reduction="sum"
    )
    count = num_items_in_batch if num_items_in_batch is not None else (wanted != -100).sum()
    return total / torch_clamp_min(count, 1)


def autocast(args: Any) -> Any:
    """bf16 autocast when the training arguments ask for bf16, a null context otherwise.

    Accelerate applies autocast by wrapping the model's forward; completion_loss calls the
    model's body and head directly, so it opens the context itself.
    """
    import contextlib

    import torch

    if not args.bf16:
        return contextlib.nullcontext()
    return torch.autocast("cpu" if args.use_cpu else "cuda", dtype=torch.bfloat16)


def torch_clamp_min(count: Any, low: int) -> Any:
    """max(count, low) for an int or a tensor (a batch without loss tokens divides by one)."""
    import torch

    return torch.as_tensor(count).clamp(min=low)


def count_tokens(trainer: Any) -> Counter:
    """Count what training pays for, batch by batch: real tokens, padding, tokens with loss.

    The counts land in `trainer.token_counts` (and in the training summary), each batch's in
    `trainer.batch_token_counts` (the data loader collates a batch ahead of training).
    """
    counts: Counter = Counter()
    batches: list[Counter] = []
    collate = trainer.data_collator

    def counting(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(features)
        tally: Counter = Counter()
        for prefix in ("", "chosen_", "rejected_", "prompt_"):
            ids = batch.get(f"{prefix}input_ids")
            if ids is None:
                continue
            mask = batch.get(f"{prefix}attention_mask")
            real = int(mask.sum()) if mask is not None else ids.numel()
            tally["train"] += real
            tally["train_padding"] += ids.numel() - real
        if "labels" in batch:
            tally["loss"] += int((batch["labels"] != -100).sum())
        batches.append(tally)
        counts.update(tally)
        return batch

    trainer.data_collator = counting
    trainer.token_counts = counts
    trainer.batch_token_counts = batches
    return counts


def lora_config(train: TrainCfg) -> Any:
    """PEFT's LoRA config for a `lora` profile (None for full fine-tuning)."""
    if train.method != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def trl_args(
    train: TrainCfg,
    work: Path,
    seed: int,
    cuda: bool,
    bf16: bool,
    by_length: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A profile's training settings as TRL config arguments (SFTConfig and DPOConfig alike)."""
    return dict(
        output_dir=str(work),
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        max_length=train.max_length,
        warmup_steps=train.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        logging_steps=1,
        save_strategy="no",  # resume.periodic_save asks for checkpoints by the clock
        save_total_limit=1,
        report_to=[],
        seed=seed,
        use_cpu=not cuda,
        bf16=bf16,
        # Batches of similar lengths: padding was a large share of CPU training time.
        train_sampling_strategy="group_by_length" if by_length else "random",
        disable_tqdm=False,
        gradient_checkpointing=train.method == "full" and cuda,
        **extra,
    )


def loss_tokens(ds: Any) -> int | None:
    """How many training tokens carry loss (TRL marks the others -100 or masks them)."""
    if "labels" in ds.column_names:
        return sum(sum(t != -100 for t in row) for row in ds["labels"])
    if "completion_mask" in ds.column_names:
        return sum(int(sum(row)) for row in ds["completion_mask"])
    return None


def check_schedule(trainer: Any) -> int:
    """Refuse a run whose warmup covers every step; return its number of optimizer steps.

    Warmup starts at a learning rate of 0: a one-step run with any warmup trains nothing, and a
    run no longer than its warmup never reaches the profile's rate. A handful of DPO pairs
    makes exactly that run.
    """
    import math

    args = trainer.args
    rows = math.ceil(
        len(trainer.train_dataset) / (args.per_device_train_batch_size * max(args.world_size, 1))
    )
    per_epoch = max(math.ceil(rows / args.gradient_accumulation_steps), 1)
    steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * per_epoch)
    warmup = args.get_warmup_steps(steps)
    if str(args.lr_scheduler_type).split(".")[-1].lower() != "constant" and warmup >= steps:
        raise ValueError(
            f"training would take {steps} optimizer step(s) with {warmup} warmup step(s): the "
            f"learning rate never reaches {args.learning_rate:g} (a single step runs at 0 and "
            "trains nothing); set warmup_ratio lower (0 for a run this short) or train longer"
        )
    return steps


def save_trained(
    trainer: Any,
    tok: Any,
    out: Path,
    work: Path,
    cuda: bool,
    method: str,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Merge LoRA, save the checkpoint, its training log and summary (with the tokens spent)."""
    import shutil

    import torch

    from ..infer.models import save_model

    trained = trainer.model
    if method == "lora":
        trained = trained.merge_and_unload()
    trained = trained.to(torch.float32) if not cuda else trained
    if not trainer.accelerator.is_main_process:
        return {}
    tok.padding_side = "left"
    save_model(trained, tok, out)
    history = [h for h in trainer.state.log_history if "loss" in h]
    write_jsonl(out / TRAIN_LOG, history)
    summary = {
        "tokens": dict(getattr(trainer, "token_counts", {})),
        "method": method,
        "steps": trainer.state.global_step,
        **summary,
    }
    write_json(out / TRAIN_SUMMARY, summary)
    shutil.rmtree(work, ignore_errors=True)
    log.info("saved %s", rel(out))
    return summary
