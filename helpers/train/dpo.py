"""DPO training with TRL's DPOTrainer, on pairs from the exploration pool (method.pairs).

DPO starts from the first-round SFT model, optionally adds an SFT term on the chosen response
(TRL's `loss_type=["sigmoid", "sft"]`), and aligns the whole response or the thought only.

    python -m helpers.train.dpo SPEC.json      # the multi-GPU entry point accelerate launches
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..grading.formatting import END_THOUGHT
from ..pipeline.artifacts import settings_hash
from ..pipeline.paths import rel
from ..pipeline.schema import DPOCfg, Profile
from ..pipeline.stages import locate
from .trainer import count_tokens, lora_config, run, text_progress, train, trl_args

log = logging.getLogger(__name__)


def take_pairs(rows: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """The pairs a variant trains on: n of them in a seeded order (all when n is None)."""
    pairs = [r for r in rows if "chosen_id" in r]
    random.Random(seed).shuffle(pairs)
    return pairs if n is None else pairs[:n]


# --------------------------------------------------------------------------- training


@dataclass
class DPOSpec:
    """Everything one DPO run needs; serialisable so a multi-GPU launch can read it."""

    model: str  # the checkpoint DPO starts from (and the reference)
    pairs: list[dict[str, Any]]  # rows of pair_rows with a pair
    out_dir: str
    prompt: str
    train: DPOCfg = field(default_factory=DPOCfg)
    align: str = "thought_solution"  # or "thought"
    sft_loss: bool = False
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        """The spec as plain JSON values (for `python -m helpers.train.dpo SPEC.json`)."""
        return {
            "model": self.model,
            "pairs": self.pairs,
            "out_dir": self.out_dir,
            "prompt": self.prompt,
            "train": self.train.model_dump(mode="json"),
            "align": self.align,
            "sft_loss": self.sft_loss,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DPOSpec:
        """Read a spec written by to_json."""
        return cls(**{**d, "train": DPOCfg.model_validate(d["train"])})


def spec_from_profile(
    profile: Profile, rdir: Path, variant: Any, pairs: list[dict[str, Any]], prompt: str
) -> DPOSpec:
    """The DPO spec of a variant: its start model, pairs and alignment, the profile's dpo section."""
    return DPOSpec(
        model=str(locate(rdir, "sft", "model", variant=variant.init)),
        pairs=take_pairs(pairs, variant.pairs, profile.seed),
        out_dir=str(locate(rdir, "dpo", "model", variant=variant.name)),
        prompt=prompt,
        train=profile.dpo,
        align=variant.align,
        sft_loss=variant.sft_loss,
        seed=profile.seed if variant.seed is None else variant.seed,
    )


def turn_end(tok: Any) -> str:
    """What the chat template writes after an assistant message (SmolLM2: "<|im_end|>\\n")."""
    user = [{"role": "user", "content": "q"}]
    marker = "\x00ANSWER\x00"
    full = tok.apply_chat_template(
        [*user, {"role": "assistant", "content": marker}], tokenize=False
    )
    return full.split(marker, 1)[1]


def thought_part(response: str) -> str:
    """A response up to and including its end-of-thought marker."""
    cut = response.find(END_THOUGHT)
    if cut < 0:
        raise ValueError("a thought-only pair needs a closed thought (<|end_of_thought|>)")
    return response[: cut + len(END_THOUGHT)]


def tokenized_pairs(spec: DPOSpec, tok: Any) -> list[dict[str, list[int]]]:
    """Pairs as the token ids TRL trains on (prompt, chosen, rejected), tokenized here.

    TRL appends an end-of-sequence token to plain-text completions and renders the chat
    template's end of turn after conversational ones. For the whole response that is right
    (the model learns to end its turn after the solution, as in SFT), so it gets the template's
    turn end. For the thought only it is not: the model would be taught to end its turn right
    after `<|end_of_thought|>`. A causal model's log-probability of the thought does not depend
    on what follows it, so aligning the thought only is exactly training on chosen and rejected
    cut after `<|end_of_thought|>`, with nothing appended. The SFT term, when added, covers the
    same chosen tokens: the whole response, or the chosen thought only.
    """
    from ..grading.formatting import render_prompt

    end = turn_end(tok) if spec.align == "thought_solution" else ""
    out = []
    for p in spec.pairs:
        chosen, rejected = p["chosen"], p["rejected"]
        if spec.align == "thought":
            chosen, rejected = thought_part(chosen), thought_part(rejected)
        out.append(
            {
                "prompt_ids": tok(
                    render_prompt(tok, p["question"], spec.prompt), add_special_tokens=False
                ).input_ids,
                "chosen_ids": tok(chosen + end, add_special_tokens=False).input_ids,
                "rejected_ids": tok(rejected + end, add_special_tokens=False).input_ids,
            }
        )
    return out


def build_trainer(spec: DPOSpec, model: Any, tok: Any, work: Path, cuda: bool, bf16: bool) -> Any:
    """TRL's DPOTrainer on pairs tokenized here (see tokenized_pairs); reference log-probs
    are computed once before training, not at every step."""
    from trl import DPOConfig, DPOTrainer

    class PairTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
            return dataset  # already prompt_ids / chosen_ids / rejected_ids

    losses = ["sigmoid", "sft"] if spec.sft_loss else ["sigmoid"]
    weights = [1.0, spec.train.sft_weight] if spec.sft_loss else [1.0]
    args = trl_args(
        spec.train,
        work,
        spec.seed,
        cuda,
        bf16,
        by_length=False,
        beta=spec.train.beta,
        loss_type=losses,
        loss_weights=weights,
        precompute_ref_log_probs=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cfg = DPOConfig(**args)
    tok.padding_side = "right"
    trainer = PairTrainer(
        model=model,
        args=cfg,
        train_dataset=shared_dataset(tokenized_pairs(spec, tok), work / "pairs"),
        processing_class=tok,
        peft_config=lora_config(spec.train),
    )
    count_tokens(trainer)
    text_progress(trainer)
    return trainer


def shared_dataset(rows: list[dict[str, Any]], where: Path) -> Any:
    """The pairs as a dataset stored in `where`, one copy for every process of a launch.

    TRL caches the reference log-probabilities beside the dataset's files; an in-memory dataset
    has none, so each process would look for rank 0's cache in a temporary folder of its own.
    """
    from accelerate import PartialState
    from datasets import Dataset, load_from_disk

    with PartialState().main_process_first():
        if PartialState().is_main_process:
            Dataset.from_list(rows).save_to_disk(str(where))
        return load_from_disk(str(where))


def train_dpo(spec: DPOSpec) -> dict[str, Any]:
    """Train and save a DPO checkpoint (merged when LoRA) with its log; return a summary."""
    if not spec.pairs:
        raise ValueError(
            f"DPO for {rel(spec.out_dir)}: no pairs (the pool has no problem with both a "
            "well-formed correct and a well-formed incorrect trajectory)"
        )
    return train(spec, build_trainer, summary, "helpers.train.dpo")


def summary(spec: DPOSpec, trained: Any) -> dict[str, Any]:
    """What a DPO run's train_summary.json records besides the trainer's own counts."""
    return {
        "model": rel(spec.model),
        "pairs": len(spec.pairs),
        "pair_problems": [p["problem_id"] for p in spec.pairs],
        "align": spec.align,
        "sft_loss": spec.sft_loss,
        "spec": settings_hash({k: v for k, v in spec.to_json().items() if k != "pairs"}),
    }


def as_trained(response: str, align: str) -> str:
    """The part of a response a variant aligns: the whole of it, or its thought."""
    return thought_part(response) if align == "thought" else response


if __name__ == "__main__":  # the multi-GPU entry point that accelerate launches
    logging.basicConfig(level=logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run(DPOSpec.from_json(json.loads(Path(sys.argv[1]).read_text())), build_trainer, summary)
