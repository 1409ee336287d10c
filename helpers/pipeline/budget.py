"""What an execution may spend, read off the profile alone: tokens generated and trained.

Upper bounds: every response at its token limit, every training row at `max_length`. A dry run
prints them beside the plan, so a profile's cost is seen before a GPU is booked; the report's
"Where the time goes" gives what a run really spent.
"""

from __future__ import annotations

from typing import Any

from .schema import Profile


def _pool_size(profile: Profile) -> int:
    return sum(p.size for p in profile.pools.values())


def _warmup(profile: Profile, v: Any) -> tuple[int, int]:
    cfg = profile.warmup
    return 0, int(cfg.examples * cfg.epochs) * cfg.max_length


def _collect(profile: Profile, v: Any) -> tuple[int, int]:
    # Embedded teachers are programs: they generate nothing a model pays for.
    gen = sum(
        t.rollouts * _pool_size(profile) * t.max_new_tokens
        for t in profile.teachers
        if t.kind == "openai"
    )
    return gen, 0


def _unify(profile: Profile, v: Any) -> tuple[int, int]:
    # Only QwQ-style responses need the completer: trained on R1-style ones, it writes their
    # solutions.
    qwq = sum(t.rollouts for t in profile.teachers if t.style == "qwq") * _pool_size(profile)
    if not qwq:
        return 0, 0
    train = int(profile.unify.completer_examples * profile.unify.completer_epochs)
    return qwq * profile.unify.solution_max_tokens, train * profile.sft.max_length


def _sft(profile: Profile, v: Any) -> tuple[int, int]:
    rows = profile.mixtures[v.mixture].size
    if v.explore_iteration and profile.explore is not None:
        rows += profile.explore.problems * profile.explore.select.per_problem
    return 0, int(rows * profile.sft.epochs) * profile.sft.max_length


def _explore(profile: Profile, v: Any) -> tuple[int, int]:
    cfg = profile.explore
    return cfg.problems * cfg.max_rollouts * cfg.max_new_tokens, 0


def _dpo(profile: Profile, v: Any) -> tuple[int, int]:
    pairs = v.pairs or profile.explore.problems
    # each pair trains its chosen and its rejected response
    return 0, int(pairs * 2 * profile.dpo.epochs) * profile.dpo.max_length


def _evaluate(profile: Profile, v: Any) -> tuple[int, int]:
    n = sum(b.size for b in profile.benchmarks.values())
    return n * profile.generation.max_new_tokens, 0


BOUNDS = {
    "warmup": _warmup,
    "collect": _collect,
    "unify": _unify,
    "sft": _sft,
    "explore": _explore,
    "dpo": _dpo,
    "evaluate": _evaluate,
}


def bound(profile: Profile, stage: str, variant: str | None) -> tuple[int, int]:
    """(tokens generated, tokens trained) an execution of a stage may spend at most."""
    fn = BOUNDS.get(stage)
    if fn is None:
        return 0, 0
    v = next((u for u in profile.variants if u.name == variant), None)
    return fn(profile, v)


def tokens_shown(n: int) -> str:
    """A token count in words people read at a glance: 950, 12.5k, 3.4M, 1.2B."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def spend(profile: Profile, ex: Any) -> str:
    """What an execution may spend, as a dry run shows it ("" when nothing)."""
    if profile is None:
        return ""
    gen, train = bound(profile, ex.stage, ex.variant)
    parts = [f"<= {tokens_shown(gen)} generated"] * bool(gen) + [
        f"<= {tokens_shown(train)} trained"
    ] * bool(train)
    return f"  [{', '.join(parts)}]" if parts else ""


def plan_bounds(profile: Profile, plan: list[Any]) -> str:
    """The whole plan's token bounds, in one line."""
    gen = sum(bound(profile, ex.stage, ex.variant)[0] for ex in plan)
    train = sum(bound(profile, ex.stage, ex.variant)[1] for ex in plan)
    return f"at most {tokens_shown(gen)} tokens generated and {tokens_shown(train)} trained"
