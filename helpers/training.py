"""SFT with TRL's SFTTrainer: loss on the response only, LoRA or full, one GPU or many.

Every variant trains from the backbone. With more than one GPU configured, training runs under
`accelerate launch` with the profile's DeepSpeed config: `python -m helpers.training SPEC.json`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import write_json, write_jsonl
from .formatting import user_turn
from .paths import rel

log = logging.getLogger(__name__)


@dataclass
class SFTSpec:
    """Everything one SFT run needs; serialisable so a multi-GPU launch can read it."""

    model: str
    data: list[dict[str, Any]]  # records with question and combined_text
    out_dir: str
    prompt: str
    method: str = "lora"
    learning_rate: float = 1e-4
    epochs: float = 1.0
    per_device_batch_size: int = 4
    gradient_accumulation: int = 1
    max_length: int = 1024
    lora_r: int = 16
    lora_alpha: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    num_gpus: int = 1
    deepspeed_config: str | None = None
    max_steps: int = -1
    seed: int = 0
    # "response": learn the whole thought/solution response; "solution": the prompt carries the
    # question and the thought, and the loss is on the solution only (the QwQ completer).
    target: str = "response"
    # Give each format marker a token of its own (see add_marker_tokens).
    marker_tokens: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def spec_from_profile(
    profile: Any, model: str, data: list[dict[str, Any]], out_dir: Path, prompt: str
) -> SFTSpec:
    """Build an SFTSpec from a profile's sft section."""
    # SFTSpec's training fields are named as the profile's sft section names them.
    return SFTSpec(
        model=model,
        data=data,
        out_dir=str(out_dir),
        prompt=prompt,
        seed=profile.seed,
        **profile.sft.model_dump(),
    )


def spec_key(spec: SFTSpec) -> str:
    """A hash of a spec's settings (not its data), to tell whether a saved run can be reused."""
    import hashlib

    settings = {k: v for k, v in asdict(spec).items() if k not in ("data", "out_dir")}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def to_conversations(data: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """Turn demonstrations into TRL prompt/completion conversations (prompt in the user turn)."""
    return [
        {
            "prompt": [{"role": "user", "content": user_turn(r["question"], prompt)}],
            "completion": [{"role": "assistant", "content": r["combined_text"]}],
        }
        for r in data
    ]


def to_solution_examples(
    tokenizer: Any, data: list[dict[str, Any]], prompt: str
) -> list[dict[str, Any]]:
    """Plain-text prompt/completion pairs: question and thought in, solution out."""
    from .formatting import END_SOLUTION, parse_response, render_prompt, solution_prefix

    out = []
    for i, r in enumerate(data):
        parsed = parse_response(r["combined_text"])
        if not parsed.well_formed:
            raise ValueError(f"training data, record {i} ({r.get('id')}): not well formed")
        out.append(
            {
                "prompt": render_prompt(tokenizer, r["question"], prompt)
                + solution_prefix(parsed.thought),
                "completion": f"\n\n{parsed.solution.strip()}\n\n{END_SOLUTION}",
            }
        )
    return out


def render_training_text(tokenizer: Any, example: dict[str, Any]) -> str:
    """Render one conversation the way training sees it (to check nothing is stripped)."""
    return tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)


def train_sft(spec: SFTSpec) -> dict[str, Any]:
    """Train and save a checkpoint (merged when LoRA) with its log; return a summary."""
    if spec.num_gpus > 1:
        return _launch_distributed(spec)
    return _train(spec)


def _launch_distributed(spec: SFTSpec) -> dict[str, Any]:
    out = Path(spec.out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out.with_name(out.name + ".spec.json")
    write_json(spec_path, asdict(spec))
    cmd = ["accelerate", "launch", "--num_processes", str(spec.num_gpus)]
    if spec.deepspeed_config:
        from .config import resolve_path

        cmd += [
            "--use_deepspeed",
            "--deepspeed_config_file",
            str(resolve_path(spec.deepspeed_config)),
        ]
    cmd += ["-m", "helpers.training", str(spec_path)]
    log.info("launching: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return json.loads((out / "train_summary.json").read_text())


def _train(spec: SFTSpec) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from .models import cpu_has_fast_bf16, load_tokenizer, resolve_model_path

    t0 = time.time()
    cuda = torch.cuda.is_available()
    bf16 = cuda or cpu_has_fast_bf16()
    tok = load_tokenizer(spec.model)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(spec.model),
        dtype=torch.bfloat16 if bf16 and spec.method == "full" else torch.float32,
    )
    out = Path(spec.out_dir)
    work = out.with_name(out.name + ".work")
    trainer = build_trainer(spec, model, tok, work, cuda, bf16)
    return _finish(trainer, spec, tok, out, work, cuda, t0)


def build_trainer(
    spec: SFTSpec, model: Any, tok: Any, work: Path, cuda: bool = False, bf16: bool = False
) -> Any:
    """TRL's SFTTrainer for a spec: its train_dataset shows exactly which tokens carry loss."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    tok.padding_side = "right"
    marker_ids = add_marker_tokens(model, tok) if spec.marker_tokens else []
    examples = (
        to_solution_examples(tok, spec.data, spec.prompt)
        if spec.target == "solution"
        else to_conversations(spec.data, spec.prompt)
    )
    with warnings.catch_warnings():  # deprecation chatter from transformers, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        cfg = _sft_config(SFTConfig, spec, work, cuda, bf16)
    peft_cfg = (
        LoraConfig(
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        if spec.method == "lora"
        else None
    )
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(examples),
        processing_class=tok,
        peft_config=peft_cfg,
    )
    if marker_ids and spec.method == "lora":
        train_rows_only(trainer.model, marker_ids, spec.weight_decay)
    return trainer


def add_marker_tokens(model: Any, tok: Any) -> list[int]:
    """Make each format marker one token, starting from the mean of the pieces it replaces."""
    import torch

    from .formatting import MARKERS

    # The markers are plain text to a backbone's tokenizer (`<|end_of_thought|>` is nine pieces),
    # and a model trained on a few dozen demonstrations miscounts them (doubled markers, end of
    # turn after the thought). Added tokens are not "special", so decoding keeps them as text.
    pieces = [tok(m, add_special_tokens=False).input_ids for m in MARKERS]
    known = len(tok)
    tok.add_tokens(list(MARKERS))
    ids = tok.convert_tokens_to_ids(list(MARKERS))
    # Qwen's embedding has spare rows past its vocabulary: resize only when there are none.
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        for i, p in zip(ids, pieces, strict=True):
            if i >= known:  # new to the tokenizer; a marker it already had keeps its row
                emb[i] = emb[p].mean(0)
    return ids


def train_rows_only(model: Any, ids: list[int], weight_decay: float) -> None:
    """Under LoRA, let the optimizer move these rows of the frozen (tied) embedding, no other."""
    import torch

    # PEFT's own trainable-token rows wrap the tied LM head, which TRL's fused loss cannot read
    # (it takes `lm_head.bias`); and rows left at their start are never emitted (a dev-set
    # probe: 0% format, `|` over and over). A gradient mask keeps the rest of the embedding
    # as it was, which decoupled weight decay would not.
    if weight_decay > 0:
        raise ValueError(
            f"sft.marker_tokens with LoRA needs sft.weight_decay 0, found {weight_decay:g}: "
            "weight decay would shrink every row of the embedding"
        )
    weight = model.get_input_embeddings().weight
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[ids] = 1.0
    weight.requires_grad_(True)
    weight.register_hook(lambda grad: grad * mask)


def _sft_config(SFTConfig: Any, spec: SFTSpec, work: Path, cuda: bool, bf16: bool) -> Any:
    return SFTConfig(
        output_dir=str(work),
        learning_rate=spec.learning_rate,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.per_device_batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation,
        max_length=spec.max_length,
        warmup_steps=spec.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        weight_decay=spec.weight_decay,
        lr_scheduler_type=spec.lr_scheduler,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=spec.seed,
        use_cpu=not cuda,
        bf16=bf16,
        completion_only_loss=True,
        # Batches of similar lengths: padding was a large share of CPU training time.
        train_sampling_strategy="group_by_length",
        disable_tqdm=False,
        gradient_checkpointing=spec.method == "full" and cuda,
    )


def _loss_tokens(ds: Any) -> int | None:
    """How many training tokens carry loss (TRL marks the others -100 or masks them)."""
    if "labels" in ds.column_names:
        return sum(sum(t != -100 for t in row) for row in ds["labels"])
    if "completion_mask" in ds.column_names:
        return sum(int(sum(row)) for row in ds["completion_mask"])
    return None


def _finish(
    trainer: Any, spec: SFTSpec, tok: Any, out: Path, work: Path, cuda: bool, t0: float
) -> dict[str, Any]:
    import torch

    from .models import save_model

    result = trainer.train()
    trained = trainer.model
    if spec.method == "lora":
        trained = trained.merge_and_unload()
    trained = trained.to(torch.float32) if not cuda else trained
    if trainer.accelerator.is_main_process:
        tok.padding_side = "left"
        save_model(trained, tok, out)
        history = [h for h in trainer.state.log_history if "loss" in h]
        write_jsonl(out / "train_log.jsonl", history)
        n_tokens = _loss_tokens(trainer.train_dataset)
        summary = {
            "model": spec.model,
            "examples": len(spec.data),
            "method": spec.method,
            "steps": trainer.state.global_step,
            "train_loss": result.training_loss,
            "seconds": round(time.time() - t0, 1),
            "completion_tokens": n_tokens,
            "data_ids": [r.get("id") for r in spec.data],
            "target": spec.target,
            "spec": spec_key(spec),
        }
        write_json(out / "train_summary.json", summary)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        log.info("saved %s", rel(out))
        return summary
    return {}


if __name__ == "__main__":  # the multi-GPU entry point that accelerate launches
    logging.basicConfig(level=logging.INFO)
    _spec = SFTSpec(**json.loads(Path(sys.argv[1]).read_text()))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _train(_spec)
