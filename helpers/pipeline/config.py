"""Profiles: load a params/*.yaml file, validate it against the schema, explain what is wrong."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .artifacts import settings_hash
from .paths import rel, repo_root
from .schema import Profile, ProfileError, VariantCfg, guard_sections

# The runner sets this to the sections a stage's record lists (helpers.pipeline.stages); a profile loaded
# while it is set refuses to hand out any other section.
SECTIONS_ENV = "STILL_STAGE_SECTIONS"


# The runner sets this for an execution it forces: resumable partial outputs (an exploration's
# pool, an evaluation's finished responses) are set aside and the work starts afresh.
FORCE_ENV = "STILL_FORCE"


def forced() -> bool:
    """Whether the runner forces the execution this process runs (see FORCE_ENV)."""
    return os.environ.get(FORCE_ENV) == "1"


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

    A hub dataset is named explicitly, `hub:owner/name`; anything else is a local file, so a
    bare `owner/name` is checked as a file at validation instead of failing minutes into a run
    on a machine without network.
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
    data.append(("unify.release_file", profile.unify.release_file))
    if profile.explore is not None:
        data += [
            (f"explore.sources.{i}.path", src.path) for i, src in enumerate(profile.explore.sources)
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


def profile_hash(profile: Profile) -> str:
    """A stable short hash of a validated profile."""
    return settings_hash(profile.model_dump(mode="json"))
