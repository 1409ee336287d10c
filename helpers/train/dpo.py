"""Self-improvement by DPO (stage 06): pairs from the exploration pool, TRL's DPOTrainer.

A pair is a problem's correct trajectory with the highest perplexity under the model DPO starts
from (the chosen one) and its incorrect trajectory with the lowest (the rejected one): the
paper's rule, which makes the two hardest to tell apart. DPO starts from the first-round SFT
model, optionally adds an SFT term on the chosen response (TRL's `loss_type=["sigmoid",
"sft"]`), and aligns the whole response or the thought only.

    python -m helpers.train.dpo SPEC.json      # the multi-GPU entry point accelerate launches
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..grading.formatting import END_THOUGHT
from ..pipeline.artifacts import cached_jsonl, settings_hash
from ..pipeline.paths import rel
from ..pipeline.schema import DPOCfg

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pairs


def pair_rows(pool: list[dict[str, Any]], perplexity: dict[str, float]) -> list[dict[str, Any]]:
    """One row per problem of the pool: its pair, or why it has none.

    Chosen: the correct trajectory with the highest perplexity; rejected: the incorrect one
    with the lowest. A trajectory without a perplexity (not scored) is not a candidate.
    """
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pool:
        by_problem[r["problem_id"]].append(r)
    rows = []
    for pid in sorted(by_problem):
        rs = [r for r in by_problem[pid] if r["id"] in perplexity]
        # Both sides well formed: the pair teaches which thought to prefer, not the format.
        good = [r for r in rs if r["correct"] and r.get("well_formed", True)]
        bad = [r for r in rs if not r["correct"] and r.get("well_formed", True)]
        row: dict[str, Any] = {"problem_id": pid, "correct": len(good), "incorrect": len(bad)}
        if not good or not bad:
            row["why"] = (
                "no well-formed correct one" if not good else "no well-formed incorrect one"
            )
            rows.append(row)
            continue
        chosen = max(good, key=lambda r: (perplexity[r["id"]], r["id"]))
        rejected = min(bad, key=lambda r: (perplexity[r["id"]], r["id"]))
        ties = sum(perplexity[r["id"]] == perplexity[chosen["id"]] for r in good) > 1
        row.update(
            question=chosen["question"],
            chosen_id=chosen["id"],
            rejected_id=rejected["id"],
            chosen=chosen["response"],
            rejected=rejected["response"],
            chosen_perplexity=perplexity[chosen["id"]],
            rejected_perplexity=perplexity[rejected["id"]],
            why=(
                f"highest-perplexity correct of {len(good)} against lowest-perplexity incorrect"
                f" of {len(bad)}" + (" (a tie, broken by id)" if ties else "")
            ),
        )
        rows.append(row)
    return rows


def build_pairs(
    profile: Any,
    rdir: Path,
    init_model: Any,
    tok: Any,
    init_name: str,
    prompt: str,
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every problem's pair from the global pool, under the DPO start model (computed once).

    The start model's own rollouts (the first exploration iteration's) carry their
    log-probabilities from generation; the later iterations' are scored here.
    """
    from ..method.explore import global_pool, perplexities, pool_path
    from ..pipeline.artifacts import Digests
    from ..pipeline.config import resolve_path

    iterations = sorted({v.explore_iteration for v in profile.variants if v.explore_iteration})

    files = [resolve_path(f) for f in profile.explore.pool_files] + [
        pool_path(rdir, i) for i in iterations
    ]
    digests = Digests()
    settings = {
        "pools": [digests.path(f) for f in files],
        "model": digests.path(Path(rdir) / "models" / init_name),
        "prompt": prompt,
    }

    def build() -> list[dict[str, Any]]:
        pool = global_pool(profile, rdir, max(iterations, default=0), problems)
        perplexity = perplexities(
            init_model, tok, pool, prompt, init_name, keep=lambda r: r.get("well_formed", True)
        )
        return pair_rows(pool, perplexity)

    return cached_jsonl(Path(rdir) / "dpo" / "pairs.jsonl", settings, build)


def take_pairs(rows: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """The pairs a variant trains on: n of them in a seeded order (all when n is None)."""
    pairs = [r for r in rows if "chosen_id" in r]
    random.Random(seed).shuffle(pairs)
    return pairs if n is None else pairs[:n]


def pairs_table(rows: list[dict[str, Any]]) -> Any:
    """Problems with a pair, and why the others have none."""
    import pandas as pd

    why = [("pair" if "chosen_id" in r else r["why"]) for r in rows]
    return pd.Series(why).value_counts().rename_axis("problem").to_frame("problems")


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
    profile: Any, rdir: Path, variant: Any, pairs: list[dict[str, Any]], prompt: str
) -> DPOSpec:
    """The DPO spec of a variant: its start model, pairs and alignment, the profile's dpo section."""
    return DPOSpec(
        model=str(Path(rdir) / "models" / variant.init),
        pairs=take_pairs(pairs, variant.pairs, profile.seed),
        out_dir=str(Path(rdir) / "models" / variant.name),
        prompt=prompt,
        train=profile.dpo,
        align=variant.align,
        sft_loss=variant.sft_loss,
        seed=profile.seed,
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
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .sft import count_tokens, lora_config, text_progress, trl_args

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
        train_dataset=Dataset.from_list(tokenized_pairs(spec, tok)),
        processing_class=tok,
        peft_config=lora_config(spec.train),
    )
    count_tokens(trainer)
    text_progress(trainer)
    return trainer


def train_dpo(spec: DPOSpec) -> dict[str, Any]:
    """Train and save a DPO checkpoint (merged when LoRA) with its log; return a summary."""
    from .sft import launch_distributed

    if not spec.pairs:
        raise ValueError(
            f"DPO for {rel(spec.out_dir)}: no pairs (the pool has no problem with both a "
            "well-formed correct and a well-formed incorrect trajectory)"
        )
    if spec.train.num_gpus > 1:
        return launch_distributed("helpers.train.dpo", spec.to_json(), Path(spec.out_dir), spec.train)
    return _train(spec)


def _train(spec: DPOSpec) -> dict[str, Any]:
    from .sft import check_schedule, load_for_training, save_trained, work_dir

    model, tok, cuda, bf16 = load_for_training(spec.model, spec.train)
    out = Path(spec.out_dir)
    work = work_dir(out)
    trainer = build_trainer(spec, model, tok, work, cuda, bf16)
    check_schedule(trainer)
    result = trainer.train()
    return save_trained(
        trainer,
        tok,
        out,
        work,
        cuda,
        spec.train.method,
        {
            "model": rel(spec.model),
            "pairs": len(spec.pairs),
            "pair_problems": [p["problem_id"] for p in spec.pairs],
            "align": spec.align,
            "sft_loss": spec.sft_loss,
            "train_loss": result.training_loss,
            "spec": settings_hash({k: v for k, v in spec.to_json().items() if k != "pairs"}),
        },
    )


def as_trained(response: str, align: str) -> str:
    """The part of a response a variant aligns: the whole of it, or its thought."""
    return thought_part(response) if align == "thought" else response


def trained_text(trainer: Any, row: int = 0) -> tuple[str, str]:
    """Decode what DPO trains on for one pair: (chosen completion, rejected completion)."""
    ex = trainer.train_dataset[row]
    dec = trainer.processing_class.decode
    return dec(ex["chosen_ids"]), dec(ex["rejected_ids"])


def margins(history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """The reward margin (chosen minus rejected) at each logged step."""
    return [
        (h.get("step", i + 1), h["rewards/margins"])
        for i, h in enumerate(history)
        if "rewards/margins" in h
    ]


if __name__ == "__main__":  # the multi-GPU entry point that accelerate launches
    logging.basicConfig(level=logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _train(DPOSpec.from_json(json.loads(Path(sys.argv[1]).read_text())))
