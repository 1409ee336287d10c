"""The plan: a profile's stage records expanded into notebook executions, in dependency order.

Each execution's fingerprint is what decides its result apart from its inputs: the profile
sections its stage reads, its parameters and its notebook's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import settings_hash
from .paths import rel, repo_root
from .schema import Profile, ProfileError
from .stages import ALWAYS_READABLE
from .stages import STAGES as STAGE_TABLE


@dataclass
class Execution:
    """One notebook execution: a stage, maybe a variant, its parameters, inputs and outputs."""

    stage: str
    notebook: Path
    parameters: dict[str, Any]
    variant: str | None = None
    inputs: list[str] = field(default_factory=list)  # relative to the run folder
    outputs: list[str] = field(default_factory=list)
    sections: tuple[str, ...] | None = None  # profile sections it depends on (None: all)

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.variant}" if self.variant else self.stage

    @property
    def slug(self) -> str:
        return self.key.replace(":", "__")


def covers(output: str, path: str) -> bool:
    """Does writing `output` produce `path` (the same path, or one inside the other)?"""
    o, p = output.rstrip("/"), path.rstrip("/")
    return o == p or p.startswith(o + "/") or o.startswith(p + "/")


def build_plan(
    profile: Profile, profile_path: str, notebooks_dir: Path | None = None
) -> tuple[list[Execution], list[tuple[str, str]]]:
    """Expand the stage table for a profile into executions in dependency order.

    Returns (plan, left out): each execution left out comes with the reason, so nothing is
    dropped without a word.
    """
    nb_dir = notebooks_dir or repo_root() / "notebooks"
    base = {"profile": profile_path}
    candidates: list[Execution] = []
    left_out: list[tuple[str, str]] = []
    for st in STAGE_TABLE:
        variants = (
            [None] if st.per_variant is None else [v for v in profile.variants if st.per_variant(v)]
        )
        for v in variants:
            ex = Execution(
                st.name,
                nb_dir / st.notebook,
                {**base, "variant": v.name} if v else dict(base),
                v.name if v else None,
                inputs=st.inputs(profile, v),
                outputs=st.outputs(profile, v),
                sections=None if st.sections is None else (*ALWAYS_READABLE, *st.sections),
            )
            if not st.applies(profile):  # a stage this profile has no use for (a warm-up)
                continue
            if st.name not in profile.stages:
                left_out.append((ex.key, "the profile's `stages` leaves this stage out"))
            elif not ex.notebook.exists():
                left_out.append((ex.key, f"its notebook {rel(ex.notebook)} is not built yet"))
            else:
                candidates.append(ex)
    # Dependency order, ties broken by the table's order: an execution runs as soon as every
    # input has been written by one before it.
    plan: list[Execution] = []
    pending = list(candidates)
    while pending:
        written = [o for ex in plan for o in ex.outputs]
        ready = next(
            (ex for ex in pending if all(any(covers(o, i) for o in written) for i in ex.inputs)),
            None,
        )
        if ready is None:
            break
        plan.append(ready)
        pending.remove(ready)
    everything = [o for ex in candidates for o in ex.outputs]
    for ex in pending:
        missing = [i for i in ex.inputs if not any(covers(o, i) for o in everything)]
        why = (
            f"nothing in the plan writes its input {missing[0]}"
            if missing
            else "its inputs come from executions that are left out"
        )
        left_out.append((ex.key, why))
    return plan, left_out


# Settings that change how a stage runs, never what it makes: left out of every fingerprint,
# so changing one (or a new one arriving with its default) redoes no finished work.
RESULT_NEUTRAL = frozenset({"checkpoint_minutes"})


def without_neutral(value: Any) -> Any:
    """A dumped profile value with the RESULT_NEUTRAL keys removed at any depth."""
    if isinstance(value, dict):
        return {k: without_neutral(v) for k, v in value.items() if k not in RESULT_NEUTRAL}
    if isinstance(value, list):
        return [without_neutral(v) for v in value]
    return value


def stage_config(profile: Profile, ex: Execution) -> dict[str, Any]:
    """Return the part of the profile an execution depends on (its stage record's sections),
    without the settings that cannot change a result."""
    data = without_neutral(profile.model_dump(mode="json"))
    if ex.sections is None:
        return data
    out = {k: data.get(k) for k in ex.sections if k not in ALWAYS_READABLE}
    if ex.variant:
        out["variant"] = next(v for v in data["variants"] if v["name"] == ex.variant)
    return out


def notebook_code(path: Path) -> str:
    """The code cells' sources of a notebook: what it does, without outputs or counts."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (ValueError, KeyError) as e:
        raise ProfileError(f"{path}: not a readable notebook ({e})") from e
    return "\n# %% cell\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c.get("cell_type") == "code"
    )


def execution_fingerprint(ex: Execution, config: dict[str, Any]) -> str:
    """Hash what decides an execution's result apart from its inputs: settings and code.

    The profile's path is not part of it (the same profile copied elsewhere is the same work);
    the sections the stage reads are. Of the notebook only the code counts, not its outputs, so
    re-executing a notebook to refresh its committed copy redoes nothing.
    """
    params = {k: v for k, v in ex.parameters.items() if k != "profile"}
    return settings_hash([params, config, notebook_code(ex.notebook)])


def select(plan: list[Execution], only: str | None, start: str | None) -> list[Execution]:
    """Keep the executions --only and --from ask for; name the choices when nothing matches."""
    keys = [e.key for e in plan]
    if start:
        stages = [e.stage for e in plan]
        if start not in stages:
            raise ProfileError(
                f"--from {start}: expected a stage in this plan, one of {sorted(set(stages))}"
            )
        plan = plan[stages.index(start) :]
    if only:
        stage, _, variant = only.partition(":")
        chosen = [e for e in plan if e.stage == stage and (not variant or e.variant == variant)]
        if not chosen:
            raise ProfileError(f"--only {only}: expected a stage or stage:variant, one of {keys}")
        plan = chosen
    return plan
