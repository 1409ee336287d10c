"""The profile's schema: every section and key, its type, its bounds and its cross-references."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .stages import ALWAYS_READABLE
from .stages import NAMES as STAGES

PosInt = Annotated[int, Field(ge=1)]


def Upto(bound: int) -> Any:
    """A positive int with an upper bound that protects memory (a typo of 10**12 stops here)."""
    return Annotated[int, Field(ge=1, le=bound)]


# Bounds: far above the paper's sizes, far below what would exhaust a machine.
MAX_PROBLEMS = 1_000_000  # a pool or mixture (the paper: 20k normal-math problems)
MAX_BENCHMARK = 100_000
MAX_TOKENS = 262_144  # per response (the paper: 32k)
MAX_BATCH = 65_536
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
Dtype = Literal["auto", "bf16", "fp16", "fp32"]


class ProfileError(ValueError):
    """A profile that cannot run; the message names file, key, expected and found."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GenerationCfg(Strict):
    backend: Literal["hf", "vllm", "openai"] = "hf"
    batch_size: Upto(MAX_BATCH) = 32
    max_new_tokens: Upto(MAX_TOKENS) = 512
    dtype: Dtype = "auto"
    tensor_parallel_size: PosInt = 1
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    stop_loops: bool = False  # hf backend: stop a row once it repeats one block (see generation)
    # vllm: the longest prompt + response an engine holds and its CPU KV cache (None: from the
    # profile's limits and what is free; infer.generation.context_length, vllm_backend.kv_budget)
    max_model_len: PosInt | None = None
    kv_cache_gib: PosFloat | None = None

    @model_validator(mode="after")
    def _loops_need_hf(self) -> GenerationCfg:
        if self.stop_loops and self.backend != "hf":
            raise ValueError(f"stop_loops works with the hf backend only, not '{self.backend}'")
        return self


class BenchmarkCfg(Strict):
    source: Literal["embedded", "math500", "aime2024", "gpqa_diamond"] = "embedded"
    kind: Literal["normal", "hard", "other"] = "normal"
    size: Upto(MAX_BENCHMARK) = 30
    path: str | None = None  # a local file in the published schema, or a hub id on an online box


RELEASE_GROUPS = {"normal_math", "hard_math", "other"}  # the groups a release's demos land in
PoolSource = Literal["numina_math", "aime", "camel_science", "riddlesense", "leetcode"]


class PoolSourceCfg(Strict):
    source: PoolSource
    path: str | None = None  # a local file in the published schema, or a hub id on an online box
    size: Upto(MAX_PROBLEMS) | None = None  # default: an equal share of the group's size
    subsets: list[str] | None = None  # NuminaMath's `source` values (default: math, olympiads)
    years: tuple[int, int] | None = None  # AIME: first and last year kept (default 1983-2023)
    difficulty: str | None = None  # LeetCode: which difficulty label to keep (default Hard)


class PoolCfg(Strict):
    size: Upto(MAX_PROBLEMS) = 40
    # Real datasets (the paper profile); without any, reasoning-gym's embedded families.
    sources: list[PoolSourceCfg] = []

    @model_validator(mode="after")
    def _sizes_fit(self) -> PoolCfg:
        fixed = sum(s.size or 0 for s in self.sources)
        if fixed > self.size:
            raise ValueError(f"the sources' sizes add up to {fixed}, more than size {self.size}")
        return self


class DefectRates(Strict):
    """How often an embedded teacher's response has each defect seen in real distilled data."""

    wrong_answer: Rate = 0.0
    repetition: Rate = 0.0
    language_mixing: Rate = 0.0
    truncation: Rate = 0.0
    short_thought: Rate = 0.0


class TeacherCfg(Strict):
    name: str
    style: Literal["r1", "qwq"]
    kind: Literal["embedded", "openai"] = "embedded"
    rollouts: Upto(1024) = 1
    defects: DefectRates = DefectRates()
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    reasoning_field: str | None = None
    max_new_tokens: Upto(MAX_TOKENS) = 4096

    @model_validator(mode="after")
    def _endpoint(self) -> TeacherCfg:
        if self.kind == "openai" and not (self.base_url and self.api_model):
            raise ValueError("an openai teacher needs base_url and api_model")
        return self


class MixtureCfg(Strict):
    size: Upto(MAX_PROBLEMS)
    ratios: dict[str, Rate]

    @field_validator("ratios")
    @classmethod
    def _ratios_sum(cls, ratios: dict[str, float]) -> dict[str, float]:
        if abs(sum(ratios.values()) - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1, found {sum(ratios.values()):g}")
        return ratios


class UnifyCfg(Strict):
    """The cleaning chain's thresholds (demonstrations and explored trajectories alike) and the
    QwQ completer's settings."""

    min_thought_words: PosInt = 20
    repetition_ngram: PosInt = 6
    repetition_max_share: Rate = 0.3
    near_duplicate_jaccard: Rate = 0.9
    completer_examples: Upto(MAX_PROBLEMS) = 32
    completer_epochs: PosFloat = 2.0
    solution_max_tokens: Upto(MAX_TOKENS) = 128
    # Problems without a checkable answer (camel-ai science, LeetCode): label "unverified".
    keep_unverified: bool = False
    # The paper's public release (question, combined_text, domain) as demonstrations beside
    # the teachers': a local JSON-lines file or hub:<owner>/<name>. The release has no
    # difficulty: a math demonstration with at least release_hard_words thought words counts
    # as hard math (without it, all math is normal math).
    release_file: str | None = None
    release_hard_words: PosInt | None = None


class TrainCfg(Strict):
    method: Literal["lora", "full"] = "lora"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    epochs: Annotated[float, Field(gt=0)] = 1.0
    per_device_batch_size: Upto(MAX_BATCH) = 4
    gradient_accumulation: PosInt = 1
    max_length: Upto(MAX_TOKENS) = 1024
    # SFT and warm-up: a batch's rows laid end to end in one row (TRL's padding_free), each
    # attending to its own tokens only, so a batch computes no padding. DPO does not pack.
    padding_free: bool = False
    lora_r: PosInt = 16
    lora_alpha: PosInt = 32
    warmup_ratio: Rate = 0.1
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    lr_scheduler: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"
    ] = "cosine"
    # Processes: one per GPU, or CPU processes over gloo; more than one runs `python -m
    # helpers.train.<sft|dpo> SPEC.json` under `accelerate launch` (DDP, or `deepspeed_config`).
    processes: PosInt = 1
    deepspeed_config: str | None = None
    max_steps: int = -1
    # A checkpoint every this many minutes of training, so an interrupted stage resumes; 0: none.
    checkpoint_minutes: Annotated[float, Field(ge=0)] = 10.0
    # Precision: "auto" is bf16 on a GPU or a CPU with native bf16, else fp32, so it differs
    # between CPUs: a profile meant to reproduce on any machine pins it.
    dtype: Dtype = "auto"


class WarmupCfg(TrainCfg):
    """The warm-up (stage 00): full fine-tuning of the backbone on short examples of the world's
    atomic steps, animal facts and normal problems (no thought), before the method starts."""

    examples: Upto(MAX_PROBLEMS) = 3000
    steps_share: Rate = 0.5  # atomic steps ("13 - 5 = 8."), as the teachers' thoughts take them
    facts_share: Rate = 0.1  # how many legs each animal has; the rest: normal problems, boxed
    # Normal problems asked with the profile's instruction as evaluation asks them (steps and
    # facts stay bare); answered boxed alone, or after one line (warmup_data.one_line).
    instruction: bool = False
    answers: Literal["boxed", "line"] = "boxed"
    method: Literal["lora", "full"] = "full"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    per_device_batch_size: Upto(MAX_BATCH) = 16
    max_length: Upto(MAX_TOKENS) = 128
    warmup_ratio: Rate = 0.05
    dtype: Dtype = "fp32"

    @model_validator(mode="after")
    def _shares_fit(self) -> WarmupCfg:
        if self.steps_share + self.facts_share > 1:
            raise ValueError("steps_share and facts_share add up to more than 1")
        return self


class DPOCfg(TrainCfg):
    """DPO's training settings: the SFT section's fields, plus DPO's own."""

    beta: PosFloat = 0.1
    sft_weight: PosFloat = 1.0  # weight of the SFT term in variants that add it

    @model_validator(mode="after")
    def _no_packing(self) -> DPOCfg:
        if self.padding_free:
            raise ValueError("padding_free packs SFT rows; DPO's pairs are not packed")
        return self


class SelectCfg(Strict):
    # Correct trajectories kept per problem (highest perplexity), after the cleaning chain with
    # the unify section's thresholds.
    per_problem: Upto(1024) = 1


class ExploreCfg(Strict):
    start: str  # the first-round model that explores first (an SFT variant)
    problems: Upto(MAX_PROBLEMS) = 24  # problems explored, held out from distillation
    # The pool groups explored, sharing `problems` out: the paper explores its hard problems;
    # a small model may need problems it can solve some of the time (see the tiny profile).
    groups: Annotated[list[Literal["normal_math", "hard_math"]], Field(min_length=1)] = [
        "hard_math"
    ]
    # Real hard problems held out for exploration (the paper profile: NuminaMath olympiad, AIME
    # before 2024); without any, the embedded families of `groups`.
    sources: list[PoolSourceCfg] = []
    # Pool files of earlier runs (their explore/iter<i>/pool.jsonl) that join this run's global
    # pool, as the paper kept one pool across runs; re-graded on loading.
    pool_files: list[str] = []
    # A pool file of which no record joins (its problems are none of this run's) stops the run,
    # or with `warn` is reported and left out.
    pool_files_unmatched: Literal["stop", "warn"] = "stop"
    max_rollouts: Upto(1024) = 20  # attempts per problem and iteration (the paper: 20)
    parallel: Upto(1024) = 4  # attempts of one problem running at once
    temperature: Annotated[float, Field(gt=0.0, le=2.0)] = 0.8
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    max_new_tokens: Upto(MAX_TOKENS) = 512
    batch_size: Upto(MAX_BATCH) = 64
    select: SelectCfg = SelectCfg()


class VariantCfg(Strict):
    name: str
    # backbone: the model the method starts from (warmed up, when the profile warms up);
    # raw: the backbone as shipped, to show beside it what the warm-up gave.
    kind: Literal["raw", "backbone", "sft", "dpo"]
    mixture: str | None = None
    # SFT on the mixture plus the data explored at this iteration (0: no explored data).
    explore_iteration: Annotated[int, Field(ge=0)] = 0
    init: str | None = None  # DPO: the SFT variant it starts from
    pairs: Upto(MAX_PROBLEMS) | None = None  # DPO: how many pairs from the pool (None: all)
    align: Literal["thought_solution", "thought"] = "thought_solution"  # DPO: what it aligns
    sft_loss: bool = False  # DPO: add an SFT term on the chosen response
    paper_rows: list[str] = []  # rows of the paper's tables this variant reproduces
    seed: int | None = None  # its training seed (default: the profile's)
    # The variant this one repeats with another training seed: the same data and settings,
    # evaluated beside it, so a comparison can be read on two seeds.
    replicate_of: str | None = None


class Profile(Strict):
    # A plain folder name under outputs/: no separators, no "..", not empty.
    run: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    seed: int = 0
    backbone: str = "smollm2-135m-instruct"
    prompt_file: str | None = None
    # A prompt_file outside the repository and the outputs folder is refused unless this is set:
    # its text goes into every prompt and every executed notebook.
    external_prompt_file: bool = False
    stages: list[Literal[STAGES]] = list(STAGES)  # type: ignore[valid-type]
    generation: GenerationCfg = GenerationCfg()
    benchmarks: dict[str, BenchmarkCfg]
    pools: dict[str, PoolCfg] = {}
    teachers: list[TeacherCfg] = []
    unify: UnifyCfg = UnifyCfg()
    mixtures: dict[str, MixtureCfg] = {}
    sft: TrainCfg = TrainCfg()
    # A warm-up before the method (the backbone the method starts from becomes the warmed-up
    # one); without it the method starts from the backbone as shipped.
    warmup: WarmupCfg | None = None
    explore: ExploreCfg | None = None
    dpo: DPOCfg | None = None
    variants: list[VariantCfg]
    _readable: frozenset[str] | None = PrivateAttr(default=None)

    def __getattribute__(self, name: str) -> Any:
        # Only sections are guarded; pydantic's own attributes and methods pass straight on.
        if name in _SECTIONS:
            readable = object.__getattribute__(self, "__pydantic_private__") or {}
            allowed = readable.get("_readable")
            if allowed is not None and name not in allowed:
                raise ProfileError(
                    f"this stage read the profile section '{name}', which its record in "
                    f"helpers/pipeline/stages.py does not list (it lists {sorted(allowed)}); add it "
                    "there so that a change to it reruns the stage"
                )
        return super().__getattribute__(name)

    @model_validator(mode="after")
    def _references(self) -> Profile:
        names = [v.name for v in self.variants]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise _at(("variants", i, "name"), f"variant name '{n}' is used twice")
        # The release's demonstrations come in every group; the teachers' in the pools'.
        groups = set(self.pools) | (RELEASE_GROUPS if self.unify.release_file else set())
        for mix_name, mix in self.mixtures.items():
            for group in mix.ratios:
                if groups and group not in groups:
                    raise _at(
                        ("mixtures", mix_name, "ratios", group),
                        f"mixture '{mix_name}' names pool group '{group}', "
                        f"expected one of {sorted(groups)}",
                    )
        for i, v in enumerate(self.variants):
            if v.kind == "sft" and v.mixture not in self.mixtures:
                raise _at(
                    ("variants", i, "mixture"),
                    f"variant '{v.name}' names mixture '{v.mixture}', "
                    f"expected one of {sorted(self.mixtures)}",
                )
            if v.init is not None and v.kind != "dpo":
                raise _at(
                    ("variants", i, "init"),
                    f"variant '{v.name}' sets init, which only a dpo variant reads (an sft "
                    "variant always trains from the backbone); remove it",
                )
            if v.kind == "dpo" and (self.dpo is None or self.explore is None):
                raise _at(
                    ("variants", i, "kind"),
                    f"DPO variant '{v.name}' needs the profile's dpo and explore sections "
                    "(its pairs come from the exploration pool)",
                )
            if v.explore_iteration and (v.kind != "sft" or self.explore is None):
                raise _at(
                    ("variants", i, "explore_iteration"),
                    f"variant '{v.name}' sets explore_iteration: it must be an sft variant "
                    "and the profile needs an explore section",
                )
        _check_inits(self.variants)
        sft_names = [v.name for v in self.variants if v.kind == "sft"]
        if self.explore is not None and self.explore.start not in sft_names:
            raise _at(
                ("explore", "start"),
                f"explore.start names '{self.explore.start}', expected an sft variant, "
                f"one of {sft_names}",
            )
        _check_replicates(self.variants)
        its = sorted(
            v.explore_iteration
            for v in self.variants
            if v.explore_iteration and v.replicate_of is None
        )
        if its != list(range(1, len(its) + 1)):
            raise _at(
                ("variants",),
                f"explore iterations must be 1, 2, ... once each, found {its} among the variants",
            )
        return self


# What a replicate must share with the variant it repeats.
REPLICATED = ("kind", "mixture", "explore_iteration", "init", "pairs", "align", "sft_loss")


def _check_replicates(variants: list[VariantCfg]) -> None:
    """A replicate repeats a trained variant's data and settings with another seed."""
    by_name = {v.name: v for v in variants}
    for i, v in enumerate(variants):
        if v.replicate_of is None:
            continue
        base = by_name.get(v.replicate_of)
        if base is None or base.kind not in ("sft", "dpo") or base.replicate_of is not None:
            raise _at(
                ("variants", i, "replicate_of"),
                f"variant '{v.name}' repeats '{v.replicate_of}', expected a trained variant "
                "that is not itself a replicate",
            )
        differ = [k for k in REPLICATED if getattr(v, k) != getattr(base, k)]
        if differ or v.seed is None or v.seed == base.seed:
            raise _at(
                ("variants", i, "replicate_of"),
                f"variant '{v.name}' must repeat '{base.name}' with the same {differ or REPLICATED} "
                "and a seed of its own",
            )


def _check_inits(variants: list[VariantCfg]) -> None:
    """Refuse a cycle of `init`s (naming it) and a DPO variant that starts from no SFT variant."""
    by_name = {v.name: (i, v) for i, v in enumerate(variants)}
    for i, v in enumerate(variants):
        if v.kind != "dpo":
            continue
        chain, cur = [v.name], v
        while cur.init is not None and cur.init in by_name:
            if cur.init in chain:
                cycle = " -> ".join([*chain[chain.index(cur.init) :], cur.init])
                raise _at(
                    ("variants", i, "init"), f"the variants' init values form a cycle: {cycle}"
                )
            chain.append(cur.init)
            cur = by_name[cur.init][1]
        sft = [u.name for u in variants if u.kind == "sft"]
        start = by_name.get(v.init or "")
        if start is None or start[1].kind != "sft":
            found = f"'{v.init}'" if v.init else "nothing"
            if start is not None:
                found += f" (a {start[1].kind} variant)"
            raise _at(
                ("variants", i, "init"),
                f"DPO variant '{v.name}' must start from an sft variant, one of {sft}; "
                f"found {found}",
            )


def _at(loc: tuple, message: str) -> ValueError:
    """A cross-reference error that carries the key it is about (see format_error)."""
    return ValueError(f"@{json.dumps(list(loc))}@{message}")


_SECTIONS = frozenset(Profile.model_fields) - set(ALWAYS_READABLE)


def readable(profile: Profile, section: str) -> bool:
    """Whether the stage running now may read a section (always, outside the runner)."""
    allowed = getattr(profile, "_readable", None)
    return allowed is None or section in allowed


def guard_sections(profile: Profile, sections: tuple[str, ...] | None) -> Profile:
    """Make a profile refuse any section outside `sections` (None: allow everything)."""
    profile._readable = None if sections is None else frozenset(sections)
    return profile


# A profile is settings, not data: far above the paper profile's size (about 6 KB, 500 nodes),
# far below what would take seconds to parse or validate.
