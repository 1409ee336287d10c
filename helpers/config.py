"""Profiles: load a params/*.yaml file, validate it against one schema, explain what is wrong."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .paths import rel, repo_root

PosInt = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
STAGES = ("collect", "unify", "mix", "sft", "explore", "dpo", "evaluate", "analyse")


class ProfileError(ValueError):
    """A profile that cannot run; the message names file, key, expected and found."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GenerationCfg(Strict):
    backend: Literal["hf", "vllm", "openai"] = "hf"
    batch_size: PosInt = 32
    max_new_tokens: PosInt = 512
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    tensor_parallel_size: PosInt = 1
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    concurrency: PosInt = 8
    stop_loops: bool = False  # hf backend: stop a row once it repeats one block (see generation)

    @model_validator(mode="after")
    def _loops_need_hf(self) -> GenerationCfg:
        if self.stop_loops and self.backend != "hf":
            raise ValueError(f"stop_loops works with the hf backend only, not '{self.backend}'")
        return self


class BenchmarkCfg(Strict):
    source: Literal["embedded", "math500", "aime2024", "gpqa_diamond"] = "embedded"
    kind: Literal["normal", "hard", "other"] = "normal"
    size: PosInt = 30
    path: str | None = None  # a local file in the published schema, or a hub id on an online box


PoolSource = Literal["numina_math", "aime", "camel_science", "riddlesense", "leetcode"]


class PoolSourceCfg(Strict):
    source: PoolSource
    path: str | None = None  # a local file in the published schema, or a hub id on an online box
    size: PosInt | None = None  # default: an equal share of what the group's size leaves
    subsets: list[str] | None = None  # NuminaMath's `source` values (default: math, olympiads)
    years: tuple[int, int] | None = None  # AIME: first and last year kept (default 1983-2023)
    difficulty: str | None = None  # LeetCode: which difficulty label to keep (default Hard)


class PoolCfg(Strict):
    size: PosInt = 40
    # Real datasets (the paper profile); without any, reasoning-gym's embedded families.
    sources: list[PoolSourceCfg] = []

    @model_validator(mode="after")
    def _sizes_fit(self) -> PoolCfg:
        fixed = sum(s.size or 0 for s in self.sources)
        if fixed > self.size:
            raise ValueError(f"the sources' sizes add up to {fixed}, more than size {self.size}")
        return self


class DefectRates(Strict):
    wrong_answer: Rate = 0.0
    repetition: Rate = 0.0
    language_mixing: Rate = 0.0
    truncation: Rate = 0.0
    short_thought: Rate = 0.0


class TeacherCfg(Strict):
    name: str
    style: Literal["r1", "qwq"]
    kind: Literal["embedded", "openai"] = "embedded"
    rollouts: PosInt = 1
    defects: DefectRates = DefectRates()
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    reasoning_field: str | None = None
    max_new_tokens: PosInt = 4096

    @model_validator(mode="after")
    def _endpoint(self) -> TeacherCfg:
        if self.kind == "openai" and not (self.base_url and self.api_model):
            raise ValueError("an openai teacher needs base_url and api_model")
        return self


class MixtureCfg(Strict):
    size: PosInt
    ratios: dict[str, Rate]

    @model_validator(mode="after")
    def _ratios_sum(self) -> MixtureCfg:
        total = sum(self.ratios.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ratios must sum to 1, found {total:g}")
        return self


class UnifyCfg(Strict):
    min_thought_words: PosInt = 20
    repetition_ngram: PosInt = 6
    repetition_max_share: Rate = 0.3
    near_duplicate_jaccard: Rate = 0.9
    completer_examples: PosInt = 32
    completer_epochs: PosFloat = 2.0
    solution_max_tokens: PosInt = 128
    # Take the \boxed{} off answers inside thoughts (QwQ states its answer at the end of its
    # stream), so that only the solution boxes the answer and ends the response.
    unbox_thought: bool = False
    # Problems without a checkable answer (camel-ai science, LeetCode) get the label
    # "unverified"; keep them only when the profile says so.
    keep_unverified: bool = False


class TrainCfg(Strict):
    method: Literal["lora", "full"] = "lora"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    epochs: Annotated[float, Field(gt=0)] = 1.0
    per_device_batch_size: PosInt = 4
    gradient_accumulation: PosInt = 1
    max_length: PosInt = 1024
    lora_r: PosInt = 16
    lora_alpha: PosInt = 32
    warmup_ratio: Rate = 0.1
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    lr_scheduler: Literal[
        "linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"
    ] = "cosine"
    num_gpus: PosInt = 1
    deepspeed_config: str | None = None
    max_steps: int = -1
    # Add the four format markers to the tokenizer as single tokens before training (each
    # starts from the mean embedding of the pieces it replaces); the checkpoint keeps them.
    marker_tokens: bool = False


class VariantCfg(Strict):
    name: str
    kind: Literal["backbone", "sft", "dpo"]
    mixture: str | None = None
    explore_iterations: Annotated[int, Field(ge=0)] = 0
    init: str | None = None
    paper_rows: list[str] = []  # rows of the paper's tables this variant reproduces


class Profile(Strict):
    run: str
    seed: int = 0
    backbone: str = "smollm2-135m-instruct"
    prompt_file: str | None = None
    stages: list[Literal[STAGES]] = list(STAGES)  # type: ignore[valid-type]
    generation: GenerationCfg = GenerationCfg()
    benchmarks: dict[str, BenchmarkCfg]
    pools: dict[str, PoolCfg] = {}
    teachers: list[TeacherCfg] = []
    unify: UnifyCfg = UnifyCfg()
    mixtures: dict[str, MixtureCfg] = {}
    sft: TrainCfg = TrainCfg()
    variants: list[VariantCfg]

    @model_validator(mode="after")
    def _references(self) -> Profile:
        names = [v.name for v in self.variants]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"variant names must be unique, found {sorted(dup)} twice")
        for mix_name, mix in self.mixtures.items():
            for group in mix.ratios:
                if self.pools and group not in self.pools:
                    raise ValueError(
                        f"mixture '{mix_name}' names pool group '{group}', "
                        f"expected one of {sorted(self.pools)}"
                    )
        for v in self.variants:
            if v.kind in ("sft",) and v.mixture not in self.mixtures:
                raise ValueError(
                    f"variant '{v.name}' names mixture '{v.mixture}', "
                    f"expected one of {sorted(self.mixtures)}"
                )
            if v.init is not None and v.init not in names:
                raise ValueError(
                    f"variant '{v.name}' starts from '{v.init}', expected one of {names}"
                )
        return self


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to its 1-based line, for error messages."""
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[(*path, i)] = v.start_mark.line + 1
                walk(v, (*path, i))

    with contextlib.suppress(yaml.YAMLError):
        walk(yaml.compose(text), ())
    return lines


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """Find the schema model that owns the parent of a key path (for did-you-mean)."""
    model: Any = Profile
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None and args and isinstance(args[-1], type):
            # dict[str, Model] / list[Model]: the model is the last type argument
            last = args[-1]
            model = last if issubclass(last, BaseModel) else None
    return model


def _describe(err: dict[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (expected, found)."""
    kind = err["type"]
    found = err.get("input")
    ctx = err.get("ctx", {})
    if kind == "extra_forbidden":
        return "a known key", "an unknown key"
    if kind == "missing":
        return "this key to be set", "nothing"
    if kind in ("greater_than_equal", "greater_than"):
        op = ">=" if kind.endswith("equal") else ">"
        return f"a number {op} {ctx.get('ge', ctx.get('gt'))}", repr(found)
    if kind in ("less_than_equal", "less_than"):
        return f"a number <= {ctx.get('le', ctx.get('lt'))}", repr(found)
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}", repr(found)
    if kind.endswith("_type") or kind.endswith("_parsing"):
        want = kind.replace("_parsing", "").replace("_type", "")
        return f"a value of type {want}", f"{type(found).__name__} {found!r}"
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    return msg, repr(found) if found is not None else "see above"


def format_error(path: Path, text: str, exc: ValidationError) -> str:
    """Format a ValidationError as lines naming file, key, line, expected and found."""
    lines = _key_lines(text)
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        expected, found = _describe(err)
        where = f"{rel(path)}"
        line = lines.get(loc) or lines.get(loc[:-1])
        if line:
            where += f", line {line}"
        msg = f"{where}: key '{key}': expected {expected}, found {found}"
        if err["type"] == "extra_forbidden":
            owner = _model_at(loc)
            if owner is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1)
                if close:
                    msg += f" (did you mean '{close[0]}'?)"
        out.append(msg)
    return "\n".join(out)


def _check_files(profile: Profile, path: Path) -> None:
    """Check that every file the profile names exists."""
    files: list[tuple[str, str | None]] = [("prompt_file", profile.prompt_file)]
    files += [
        (f"benchmarks.{k}.path", b.path)
        for k, b in profile.benchmarks.items()
        if b.source != "embedded" and b.path and not _looks_like_hub_id(b.path)
    ]
    files += [
        (f"pools.{k}.sources.{i}.path", src.path)
        for k, p in profile.pools.items()
        for i, src in enumerate(p.sources)
        if src.path and not _looks_like_hub_id(src.path)
    ]
    files += [("sft.deepspeed_config", profile.sft.deepspeed_config)]
    for key, value in files:
        if value is None:
            continue
        if not resolve_path(value).exists():
            raise ProfileError(
                f"{rel(path)}: key '{key}': expected an existing file, found '{value}' (missing)"
            )


def _looks_like_hub_id(value: str) -> bool:
    return value.count("/") == 1 and not value.startswith((".", "/")) and "." not in value


def resolve_path(value: str) -> Path:
    """Resolve a path from a profile: absolute, or relative to the repo root."""
    p = Path(value)
    return p if p.is_absolute() else repo_root() / p


def load_profile(path: str | os.PathLike) -> Profile:
    """Load and validate a profile; raise ProfileError with one clear message when it is bad."""
    path = resolve_path(str(path))
    if not path.exists():
        raise ProfileError(f"{rel(path)}: no such profile file")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"{rel(path)}{line}: malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ProfileError(
            f"{rel(path)}: expected a mapping of keys at the top level, found {type(data).__name__}"
        )
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_error(path, text, exc)) from None
    _check_files(profile, path)
    return profile


def profile_hash(profile: Profile) -> str:
    """Return a stable short hash of a validated profile."""
    blob = json.dumps(profile.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def secret(env_name: str | None) -> str | None:
    """Read a secret from the environment variable a profile names (never from the profile)."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise ProfileError(f"the environment variable {env_name} is not set (a profile names it)")
    return value


def variant(profile: Profile, name: str) -> VariantCfg:
    """Return the variant a name picks, naming the choices when there is none."""
    for v in profile.variants:
        if v.name == name:
            return v
    raise ProfileError(f"variant '{name}': expected one of {[v.name for v in profile.variants]}")


def with_overrides(profile: Profile, **sections: dict[str, Any]) -> Profile:
    """Return a copy with notebook overrides applied (None values keep the profile's)."""
    data = profile.model_dump()
    for section, values in sections.items():
        for key, value in values.items():
            if value is not None:
                data[section][key] = value
    return Profile.model_validate(data)
