"""SFT with TRL's SFTTrainer: loss on the response only, LoRA or full, one GPU or many.

Every variant trains from the backbone. With more than one GPU configured, training runs under
`accelerate launch` with the profile's DeepSpeed config: `python -m helpers.train.sft SPEC.json`
(helpers.train.trainer).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..grading.formatting import chat_messages
from ..pipeline.artifacts import settings_hash
from ..pipeline.paths import rel
from ..pipeline.schema import Profile, TrainCfg
from .trainer import (
    autocast,
    completion_loss,
    count_tokens,
    lora_config,
    loss_tokens,
    run,
    text_progress,
    train,
    trl_args,
)

log = logging.getLogger(__name__)


@dataclass
class SFTSpec:
    """Everything one SFT run needs; serialisable so a multi-GPU launch can read it."""

    model: str
    data: list[dict[str, Any]]  # records with question and combined_text
    out_dir: str
    prompt: str
    train: TrainCfg = field(default_factory=TrainCfg)  # the profile's `sft` section
    seed: int = 0
    # "response": learn the whole thought/solution response; "solution": the prompt carries the
    # question and the thought, and the loss is on the solution only (the QwQ completer).
    target: str = "response"

    def settings(self) -> dict[str, Any]:
        """Everything but the data and where it goes, as plain JSON values."""
        return {
            "model": self.model,
            "prompt": self.prompt,
            "train": self.train.model_dump(mode="json"),
            "seed": self.seed,
            "target": self.target,
        }

    def to_json(self) -> dict[str, Any]:
        """The whole spec as plain JSON values (for `python -m helpers.train.sft SPEC.json`)."""
        return {**self.settings(), "data": self.data, "out_dir": self.out_dir}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SFTSpec:
        """Read a spec written by to_json."""
        return cls(**{**d, "train": TrainCfg.model_validate(d["train"])})


def spec_from_profile(
    profile: Profile,
    model: str,
    data: list[dict[str, Any]],
    out_dir: Path,
    prompt: str,
    seed: int | None = None,
) -> SFTSpec:
    """Build an SFTSpec from a profile's sft section (seed: a variant's own training seed)."""
    seed = profile.seed if seed is None else seed
    return SFTSpec(model, data, str(out_dir), prompt, train=profile.sft, seed=seed)


def spec_key(spec: SFTSpec) -> str:
    """A hash of a spec's settings (not its data), to tell whether a saved run can be reused."""
    return settings_hash(spec.settings())


def to_conversations(data: list[dict[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """Turn demonstrations into TRL prompt/completion conversations (the instruction in the user
    turn: the spec's, or a row's own `prompt`)."""
    return [
        {
            "prompt": chat_messages(r["question"], r.get("prompt", prompt)),
            "completion": [{"role": "assistant", "content": r["combined_text"]}],
        }
        for r in data
    ]


def to_solution_examples(
    tokenizer: Any, data: list[dict[str, Any]], prompt: str
) -> list[dict[str, Any]]:
    """Plain-text prompt/completion pairs: question and thought in, solution out."""
    from ..grading.formatting import END_SOLUTION, parse_response, render_prompt, solution_prefix

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
    return train(spec, build_trainer, summary, "helpers.train.sft")


def summary(spec: SFTSpec, trained: Any) -> dict[str, Any]:
    """What an SFT run's train_summary.json records besides the trainer's own counts."""
    return {
        # a folder shown as the report shows paths; a hub id or alias as it is
        "model": rel(spec.model) if Path(spec.model).exists() else spec.model,
        "examples": len(spec.data),
        "completion_tokens": loss_tokens(trained.train_dataset),
        "data_ids": [r.get("id") for r in spec.data],
        "target": spec.target,
        "spec": spec_key(spec),
    }


def build_trainer(
    spec: SFTSpec, model: Any, tok: Any, work: Path, cuda: bool = False, bf16: bool = False
) -> Any:
    """TRL's SFTTrainer for a spec: its train_dataset shows exactly which tokens carry loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tok.padding_side = "right"
    examples = (
        to_solution_examples(tok, spec.data, spec.prompt)
        if spec.target == "solution"
        else to_conversations(spec.data, spec.prompt)
    )
    args = trl_args(
        spec.train,
        work,
        spec.seed,
        cuda,
        bf16,
        completion_only_loss=True,
        padding_free=spec.train.padding_free,
    )
    if spec.train.padding_free:  # TRL does not cut packed rows: truncate() does, below
        args["max_length"] = None
    with warnings.catch_warnings():  # deprecation chatter from transformers, not ours to fix
        warnings.simplefilter("ignore", FutureWarning)
        cfg = SFTConfig(**args)

    class CompletionLossSFT(SFTTrainer):
        def compute_loss(
            self,
            model: Any,
            inputs: dict,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            with autocast(self.args):
                loss = completion_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # Divided by the tokens of every process's rows, and DDP averages the processes'
                # gradients: scaled back as the Trainer's own compute_loss does.
                loss = loss * self.accelerator.num_processes
            return loss

    trainer = CompletionLossSFT(
        model=model,
        args=cfg,
        train_dataset=Dataset.from_list(examples),
        processing_class=tok,
        peft_config=lora_config(spec.train),
    )
    if spec.train.padding_free:
        trainer.train_dataset = truncate(trainer.train_dataset, spec.train.max_length)
    count_tokens(trainer)
    text_progress(trainer)
    return trainer


def truncate(ds: Any, max_length: int) -> Any:
    """Cut every tokenized row to max_length tokens, as TRL does for unpacked rows."""
    columns = [
        c for c in ("input_ids", "completion_mask", "assistant_masks") if c in ds.column_names
    ]

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        return {c: row[c][:max_length] for c in columns}

    if all(len(ids) <= max_length for ids in ds["input_ids"]):
        return ds
    return ds.map(cut)


if __name__ == "__main__":  # the multi-GPU entry point that accelerate launches
    logging.basicConfig(level=logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(SFTSpec.from_json(json.loads(Path(sys.argv[1]).read_text())), build_trainer, summary)
