"""Profiles: load a params/*.yaml file, validate it against one schema, explain what is wrong."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .paths import rel, repo_root
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
# The runner sets this to the sections a stage's record lists (helpers.pipeline.stages); a profile loaded
# while it is set refuses to hand out any other section.
SECTIONS_ENV = "STILL_STAGE_SECTIONS"


# The runner sets this for an execution it forces: resumable partial outputs (an exploration's
# pool, an evaluation's finished responses) are set aside and the work starts afresh.
FORCE_ENV = "STILL_FORCE"


def forced() -> bool:
    """Whether the runner forces the execution this process runs (see FORCE_ENV)."""
    return os.environ.get(FORCE_ENV) == "1"


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
    completer_examples: Upto(MAX_PROBLEMS) = 32
    completer_epochs: PosFloat = 2.0
    solution_max_tokens: Upto(MAX_TOKENS) = 128
    # Problems without a checkable answer (camel-ai science, LeetCode) get the label
    # "unverified"; keep them only when the profile says so.
    keep_unverified: bool = False


class TrainCfg(Strict):
    method: Literal["lora", "full"] = "lora"
    learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    epochs: Annotated[float, Field(gt=0)] = 1.0
    per_device_batch_size: Upto(MAX_BATCH) = 4
    gradient_accumulation: PosInt = 1
    max_length: Upto(MAX_TOKENS) = 1024
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
    # Training precision. "auto" takes bf16 on a GPU or a CPU with native bf16 (AMX) and fp32
    # elsewhere, so the same profile trains differently on different CPUs: a profile meant to
    # reproduce on any machine pins it.
    dtype: Dtype = "auto"


class DPOCfg(TrainCfg):
    """DPO's training settings: the SFT section's fields, plus DPO's own."""

    beta: PosFloat = 0.1
    sft_weight: PosFloat = 1.0  # weight of the SFT term in variants that add it


class SelectCfg(Strict):
    per_problem: Upto(1024) = 1  # correct trajectories kept per problem (highest perplexity)
    min_thought_words: PosInt = 10


class ExploreCfg(Strict):
    start: str  # the first-round model that explores first (an SFT variant)
    problems: Upto(MAX_PROBLEMS) = 24  # problems explored, held out from distillation
    # The pool groups explored, sharing `problems` out: the paper explores its hard problems;
    # a small model may need problems it can solve some of the time (see the tiny profile).
    groups: Annotated[list[Literal["normal_math", "hard_math"]], Field(min_length=1)] = [
        "hard_math"
    ]
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
    kind: Literal["backbone", "sft", "dpo"]
    mixture: str | None = None
    # SFT on the mixture plus the data explored at this iteration (0: no explored data).
    explore_iteration: Annotated[int, Field(ge=0)] = 0
    init: str | None = None  # DPO: the SFT variant it starts from
    pairs: Upto(MAX_PROBLEMS) | None = None  # DPO: how many pairs from the pool (None: all)
    align: Literal["thought_solution", "thought"] = "thought_solution"  # DPO: what it aligns
    sft_loss: bool = False  # DPO: add an SFT term on the chosen response
    paper_rows: list[str] = []  # rows of the paper's tables this variant reproduces


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
        for mix_name, mix in self.mixtures.items():
            for group in mix.ratios:
                if self.pools and group not in self.pools:
                    raise _at(
                        ("mixtures", mix_name, "ratios", group),
                        f"mixture '{mix_name}' names pool group '{group}', "
                        f"expected one of {sorted(self.pools)}",
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
        its = sorted(v.explore_iteration for v in self.variants if v.explore_iteration)
        if its != list(range(1, len(its) + 1)):
            raise _at(
                ("variants",),
                f"explore iterations must be 1, 2, ... once each, found {its} among the variants",
            )
        return self


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


def guard_sections(profile: Profile, sections: tuple[str, ...] | None) -> Profile:
    """Make a profile refuse any section outside `sections` (None: allow everything)."""
    profile._readable = None if sections is None else frozenset(sections)
    return profile


# A profile is settings, not data: far above the paper profile's size (about 6 KB, 500 nodes),
# far below what would take seconds to parse or validate.
MAX_PROFILE_BYTES = 256 * 1024
MAX_PROFILE_NODES = 20_000  # values once every alias is expanded


def expanded_nodes(root: yaml.Node, limit: int = MAX_PROFILE_NODES) -> int:
    """How many values a composed YAML document holds with its aliases expanded (up to limit+1).

    Each distinct node is sized once, so a "billion laughs" document costs its own length to
    measure, not its expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = limit + 1  # a node inside itself (a recursive alias) is unbounded
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, limit + 1)
        return sizes[id(node)]

    return size(root)


def _key_lines(root: yaml.Node | None) -> dict[tuple, int]:
    """Map each key path in a composed YAML document to its 1-based line, for error messages.

    A node reached again through an alias is not walked again: its keys keep the lines of
    their first path.
    """
    lines: dict[tuple, int] = {}
    seen: set[int] = set()

    def walk(node: Any, path: tuple) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[(*path, i)] = v.start_mark.line + 1
                walk(v, (*path, i))

    if root is not None:
        walk(root, ())
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
    if kind == "string_pattern_mismatch":
        return "a plain name (letters, digits, '_', '.', '-'; no '/', not '..')", repr(found)
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    return msg, repr(found) if found is not None else "see above"


def format_error(path: Path, root: yaml.Node | None, exc: ValidationError) -> str:
    """Format a ValidationError as lines naming file, key, line, expected and found."""
    lines = _key_lines(root)
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        text_msg = str(err.get("msg", "")).removeprefix("Value error, ")
        located = re.match(r"^@(\[.*?\])@(.*)$", text_msg, re.S)
        if located:  # a cross-reference error: name its key and line, not the whole profile
            loc = (*loc, *json.loads(located.group(1)))
            key = ".".join(str(p) for p in loc)
            line = lines.get(loc) or lines.get(loc[:-1])
            where = f"{rel(path)}" + (f", line {line}" if line else "")
            out.append(f"{where}: key '{key}': {located.group(2)}")
            continue
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


HUB_PREFIX, FILE_PREFIX = "hub:", "file:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def data_location(value: str) -> tuple[str, str]:
    """Where a profile's data path points: ("hub", id) or ("file", local path).

    A hub dataset is named explicitly, `hub:owner/name`; anything else is a local file. A bare
    `owner/name` that is not a local file used to be taken for a hub id and failed minutes
    into a run on a machine without network.
    """
    if value.startswith(HUB_PREFIX):
        return "hub", value[len(HUB_PREFIX) :]
    return "file", str(resolve_path(value.removeprefix(FILE_PREFIX)))


def _check_files(profile: Profile, path: Path) -> None:
    """Check that every file the profile names exists, and every hub id is spelled as one."""
    data: list[tuple[str, str | None]] = [
        (f"benchmarks.{k}.path", b.path)
        for k, b in profile.benchmarks.items()
        if b.source != "embedded"
    ]
    data += [
        (f"pools.{k}.sources.{i}.path", src.path)
        for k, p in profile.pools.items()
        for i, src in enumerate(p.sources)
    ]
    files = [
        ("prompt_file", profile.prompt_file),
        ("sft.deepspeed_config", profile.sft.deepspeed_config),
    ]
    if profile.explore is not None:
        files += [(f"explore.pool_files.{i}", f) for i, f in enumerate(profile.explore.pool_files)]
    for key, value in data:
        if value is None:
            continue
        kind, where = data_location(value)
        if kind == "hub" and not _HUB_ID.match(where):
            raise ProfileError(
                f"{rel(path)}: key '{key}': expected hub:<owner>/<name>, found '{value}'"
            )
        if kind == "file" and not Path(where).is_file():
            raise ProfileError(
                f"{rel(path)}: key '{key}': expected an existing local file, or "
                f"hub:<owner>/<name> for a dataset on the hub, found '{value}' (no such file)"
            )
    for key, value in files:
        if value is not None and not resolve_path(value).is_file():
            raise ProfileError(
                f"{rel(path)}: key '{key}': expected an existing file, found '{value}' (missing)"
            )
    if profile.prompt_file is not None:
        _check_prompt_file(profile, path)


MAX_PROMPT_BYTES = 16 * 1024  # an instruction, not a document (the paper's is under 1 KB)


def _check_prompt_file(profile: Profile, path: Path) -> None:
    """The prompt file lies inside the repository or the outputs folder (or the profile says
    it may not), and is small enough to be an instruction."""
    from .paths import outputs_root

    where = resolve_path(profile.prompt_file).resolve()
    inside = any(where.is_relative_to(base) for base in (repo_root(), outputs_root()))
    if not inside and not profile.external_prompt_file:
        raise ProfileError(
            f"{rel(path)}: key 'prompt_file': expected a file inside the repository or the "
            f"outputs folder, found '{profile.prompt_file}'; set external_prompt_file: true "
            "to read one from elsewhere"
        )
    size = where.stat().st_size
    if size > MAX_PROMPT_BYTES:
        raise ProfileError(
            f"{rel(path)}: key 'prompt_file': expected an instruction of at most "
            f"{MAX_PROMPT_BYTES:,} bytes, found {size:,} bytes in '{profile.prompt_file}'"
        )


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names one key twice (YAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(f"key '{key}' appears twice (lines {seen[key]} and {line})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def resolve_path(value: str) -> Path:
    """Resolve a path from a profile: absolute, or relative to the repo root."""
    p = Path(value)
    return p if p.is_absolute() else repo_root() / p


def _read_text(path: Path) -> str:
    """A profile's text, or one clear error saying why it cannot be read."""
    if not path.exists():
        raise ProfileError(f"{rel(path)}: no such profile file")
    if path.is_dir():
        raise ProfileError(f"{rel(path)}: is a folder, expected a profile (a YAML file)")
    size = path.stat().st_size
    if size > MAX_PROFILE_BYTES:
        raise ProfileError(
            f"{rel(path)}: {size:,} bytes, expected a profile of at most "
            f"{MAX_PROFILE_BYTES:,} (settings, not data: point a path key at data files)"
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{rel(path)}: not UTF-8 text (byte {exc.start}); save the profile as UTF-8"
        ) from None
    except OSError as exc:
        raise ProfileError(f"{rel(path)}: cannot be read ({exc.strerror})") from None


def load_profile(path: str | os.PathLike) -> Profile:
    """Load and validate a profile; raise ProfileError with one clear message when it is bad."""
    path = resolve_path(str(path))
    text = _read_text(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and expanded_nodes(root) > MAX_PROFILE_NODES:
            raise ProfileError(
                f"{rel(path)}: its aliases expand to more than {MAX_PROFILE_NODES:,} values; "
                "a profile needs a few hundred (write the values out, or alias less)"
            )
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ProfileError(f"{rel(path)}: {exc}; keep one of them") from None
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
        raise ProfileError(format_error(path, root, exc)) from None
    _check_files(profile, path)
    listed = os.environ.get(SECTIONS_ENV)
    if listed is not None:
        guard_sections(profile, tuple(x for x in listed.split(",") if x))
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


def secret_values(profile: Profile) -> list[str]:
    """The values of every environment variable a profile names as `api_key_env`."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "api_key_env" and isinstance(v, str):
                    names.add(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(profile.model_dump())
    return [os.environ[n] for n in sorted(names) if os.environ.get(n)]


def redact(text: str, values: list[str]) -> str:
    """Mask every secret value in a text (error bodies, tracebacks, notebook outputs)."""
    for v in sorted(values, key=len, reverse=True):
        if len(v) >= 4:
            text = text.replace(v, "***")
    return text


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
    try:
        out = Profile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            expected, found = _describe(err)
            key = ".".join(str(p) for p in err["loc"])
            problems.append(f"notebook parameter for '{key}': expected {expected}, found {found}")
        raise ProfileError("\n".join(problems)) from None
    out._readable = profile._readable
    return out


def _assigned(source: str) -> list[str]:
    """Names a cell assigns at its top level."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_parameters(history: list[str]) -> None:
    """Refuse parameters a notebook does not declare (Papermill only warns about them).

    `history` is the kernel's input history (IPython's `In`): Papermill runs the cell it
    injects ("# Parameters") right after the cell tagged `parameters`, so the two are
    neighbours there. A notebook opened interactively has no injected cell: nothing to check.
    """
    cells = list(history)
    injected = [i for i, c in enumerate(cells) if c.lstrip().startswith("# Parameters")]
    if not injected or injected[-1] == 0:
        return
    i = injected[-1]
    declared = set(_assigned(cells[i - 1]))
    unknown = [n for n in _assigned(cells[i]) if n not in declared]
    if unknown:
        raise ProfileError(
            f"unknown notebook parameter(s) {unknown}: this notebook takes {sorted(declared)}"
        )
