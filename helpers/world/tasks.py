"""Problem pools and benchmarks: embedded reasoning-gym families, real datasets via `sources`.

Every problem has one schema: id, domain, difficulty, group, question, answer, answer_type
('gym' for reasoning-gym's verifier, 'math' for math-verify, 'choice' for a letter, 'open' for
an answer no grader can check), choices, source, and for gym problems the (dataset, config,
seed, index) that regenerates its entry.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..grading.problem import choice_question, freeze, gym_dataset, stable_hash
from ..grading.verifiers import expression_value
from ..pipeline.artifacts import cached_jsonl, read_jsonl
from ..pipeline.schema import Profile
from ..pipeline.stages import locate
from .seeds import FAMILY_SPREAD, seed_base
from .sources import load_aime2024, load_gpqa_diamond, load_math500, load_pool


def _countdown_question(entry: dict[str, Any]) -> str:
    m = entry["metadata"]
    numbers = ", ".join(map(str, m["numbers"]))
    return f"Make {m['target']} from {numbers} using + and -, each number once."


def _legs_question(entry: dict[str, Any]) -> str:
    items = " and ".join(
        f"{n} {animal}{'s' if n > 1 else ''}" for animal, n in entry["metadata"]["animals"].items()
    )
    return f"How many legs do {items} have in total?"


def _arithmetic_gold(entry: dict[str, Any]) -> str:
    # reasoning-gym's basic_arithmetic without parentheses computes its answer left to right
    # ("8 + 5 * 6" -> 78): the gold is the expression's value with the usual precedence.
    return str(expression_value(entry["metadata"]["expression"]))  # + - * only: an integer


@dataclass(frozen=True)
class Family:
    """A reasoning-gym generator with the settings that place it in one of the paper's groups.

    `ask` words the question from the generator's entry when its own wording is long (the
    countdown generator's format instructions cost every prompt 70 tokens and say nothing the
    grader needs); `gold` computes the answer where the generator's own is wrong.
    """

    dataset: str
    config: dict[str, Any] = field(default_factory=dict)
    domain: str = "math"
    difficulty: str = "normal"  # normal | hard
    choice: bool = False  # shown as 4-option multiple choice
    ask: Callable[[dict[str, Any]], str] | None = None
    gold: Callable[[dict[str, Any]], str] | None = None  # where the generator's answer is wrong


# The embedded world, sized to the backbone (tools/calibrate_world.py measured it, on pool
# problems only): every step of every thought is one operation on small numbers, which the
# warm-up teaches (helpers.world.warmup_data).
FAMILIES: dict[str, Family] = {
    # normal math (MATH-like): a short thought of one-digit steps solves them
    "arithmetic": Family(
        "basic_arithmetic",
        dict(
            min_terms=2,
            max_terms=3,
            min_digits=1,
            max_digits=1,
            allow_parentheses=False,
            operators=("+", "-", "*"),
        ),
        gold=_arithmetic_gold,
    ),
    "equations": Family(
        "simple_equations",
        dict(
            min_terms=2,
            max_terms=2,
            max_value=20,
            operators=("+", "-"),
            operators_weights=[0.5, 0.5],
        ),
    ),
    "word_problems": Family(
        "leg_counting", dict(min_animals=2, max_animals=2, max_instances=3), ask=_legs_question
    ),
    # hard math (AIME-like): a search over expressions, and a long chain of steps; pass@1 is
    # low, pass@k high
    "countdown": Family(
        "countdown",
        dict(
            min_numbers=3,
            max_numbers=3,
            max_value=9,
            min_target=5,
            max_target=25,
            operators=("+", "-"),
        ),
        difficulty="hard",
        ask=_countdown_question,
    ),
    "long_chain": Family(
        "chain_sum", dict(min_terms=5, max_terms=5, min_digits=1, max_digits=1), difficulty="hard"
    ),
    # other domains (GPQA-like): logic and puzzles
    "knights_knaves": Family("knights_knaves", dict(n_people=2), "logic", "normal", True),
    "family": Family("family_relationships", dict(max_family_size=6), "puzzle", "normal", True),
    "siblings": Family("aiw", dict(max_entities=5), "puzzle", "normal", True),
    "syllogism": Family("syllogism", {}, "logic", "normal", False),
}

# Which families make each benchmark kind and each embedded pool group.
BENCHMARK_FAMILIES = {
    "normal": ["arithmetic", "equations", "word_problems"],
    "hard": ["countdown", "long_chain"],
    "other": ["knights_knaves", "family", "siblings"],
}
POOL_FAMILIES = {
    "normal_math": BENCHMARK_FAMILIES["normal"],
    "hard_math": BENCHMARK_FAMILIES["hard"],
    "other": ["knights_knaves", "family", "siblings", "syllogism"],
}
GROUP_OF_KIND = {"normal": "normal_math", "hard": "hard_math", "other": "other"}

RELATIONS = [
    "mother",
    "father",
    "son",
    "daughter",
    "husband",
    "wife",
    "grandfather",
    "grandmother",
    "grandson",
    "granddaughter",
    "father-in-law",
    "mother-in-law",
    "son-in-law",
    "daughter-in-law",
    "brother",
    "sister",
    "uncle",
    "aunt",
]
_FORMAT_NOISE = [
    r"\s*\(Format your answer like:.*?\)\s*$",
    r"\s*Respond only with the word that describes their relationship\.\s*$",
]


def _choice_options(fam: Family, entry: dict[str, Any], rng: random.Random) -> list[str]:
    """Build three wrong options beside the right one, each plausible for the family."""
    gold = str(entry["answer"]).strip()
    if fam.dataset == "knights_knaves":
        names = [str(n) for n in entry["metadata"]["names"]]
        terms = entry["metadata"]["knight_knave_terms"]
        options = set()
        for mask in range(2 ** len(names)):
            roles = [
                terms["a_knight"] if mask >> i & 1 else terms["a_knave"] for i in range(len(names))
            ]
            options.add(
                ", and ".join(f"{n} is {r}" for n, r in zip(names, roles, strict=True)) + "."
            )
        wrong = sorted(options - {gold})
    elif fam.dataset == "family_relationships":
        wrong = [r for r in RELATIONS if r != gold]
    else:  # numeric answers: nearby numbers
        n = int(gold)
        wrong = sorted(
            {str(x) for x in (n - 2, n - 1, n + 1, n + 2, n * 2, n + 3) if x >= 0} - {gold}
        )
    return rng.sample(wrong, 3)


def _clean_question(text: str) -> str:
    for pat in _FORMAT_NOISE:
        text = re.sub(pat, "", text, flags=re.S)
    return text.strip()


def make_example(
    family: str,
    seed: int,
    size: int,
    index: int,
    group: str,
    pid: str,
    as_choice: bool | None = None,
) -> dict[str, Any]:
    """Build one problem record from a reasoning-gym family."""
    fam = FAMILIES[family]
    ds = gym_dataset(fam.dataset, freeze(fam.config), seed, size)
    entry = ds[index]
    record: dict[str, Any] = {
        "id": pid,
        "group": group,
        "family": family,
        "domain": fam.domain,
        "difficulty": fam.difficulty,
        "source": f"reasoning_gym/{fam.dataset}",
        "gym": {
            "dataset": fam.dataset,
            "config": fam.config,
            "seed": seed,
            "size": size,
            "index": index,
        },
    }
    choice = fam.choice if as_choice is None else as_choice
    if choice:
        rng = random.Random(stable_hash(pid, "choices"))
        options = [str(entry["answer"]).strip(), *_choice_options(fam, entry, rng)]
        rng.shuffle(options)
        letter = "ABCD"[options.index(str(entry["answer"]).strip())]
        record.update(
            question=choice_question(_clean_question(entry["question"]), options),
            answer=letter,
            answer_type="choice",
            choices=options,
        )
    else:
        record.update(
            question=(fam.ask(entry) if fam.ask else entry["question"]).strip(),
            answer=(fam.gold(entry) if fam.gold else str(entry["answer"])).strip(),
            answer_type="gym",
            choices=None,
        )
    return record


def build_embedded(
    kind_families: list[str],
    size: int,
    base: int,
    group: str,
    prefix: str,
    mixed_choice: bool = False,
) -> list[dict[str, Any]]:
    """Draw size problems round-robin across families, each family from its own seed."""
    per = [
        size // len(kind_families) + (i < size % len(kind_families))
        for i in range(len(kind_families))
    ]
    out = []
    for fam, n in zip(kind_families, per, strict=True):
        seed = base + stable_hash(fam) % FAMILY_SPREAD
        for i in range(n):
            # In training pools, half the choice-capable problems appear in open form too.
            as_choice = (i % 2 == 0) if (mixed_choice and FAMILIES[fam].choice) else None
            out.append(
                make_example(fam, seed, max(n, 1), i, group, f"{prefix}-{fam}-{i:04d}", as_choice)
            )
    order = sorted(range(len(out)), key=lambda j: (j % max(per), j))
    return [out[j] for j in order]


# --------------------------------------------------------------------------- benchmarks


def build_benchmark(name: str, cfg: Any, seed: int = 0) -> list[dict[str, Any]]:
    """Build one benchmark from its profile entry (embedded or a real loader)."""
    if cfg.source == "embedded":
        rows = build_embedded(
            BENCHMARK_FAMILIES[cfg.kind],
            cfg.size,
            seed_base("benchmarks"),
            GROUP_OF_KIND[cfg.kind],
            f"bench-{name}",
        )
    elif cfg.source == "math500":
        rows = load_math500(cfg.path or "hub:HuggingFaceH4/MATH-500", cfg.size)
    elif cfg.source == "aime2024":
        rows = load_aime2024(cfg.path or "hub:Maxwell-Jia/AIME_2024", cfg.size)
    else:
        rows = load_gpqa_diamond(cfg.path or "hub:Idavidrein/gpqa", cfg.size, seed)
    for r in rows:
        r["benchmark"] = name
    return rows


def load_benchmarks(profile: Profile, rdir: Path) -> dict[str, list[dict[str, Any]]]:
    """Build (once) and read every benchmark the profile names, as {name: examples}.

    Each file remembers the settings it was built from and is rebuilt when any of them
    changes (a benchmark whose kind changed keeps its size, so the size alone cannot tell).
    """
    out = {}
    for name, cfg in profile.benchmarks.items():
        settings = {"benchmark": name, "seed": profile.seed, **cfg.model_dump(mode="json")}
        out[name] = cached_jsonl(
            locate(rdir, "collect", "benchmark", benchmark=name),
            settings,
            lambda name=name, cfg=cfg: build_benchmark(name, cfg, profile.seed),
        )
    return out


# --------------------------------------------------------------------------- overlap


def _norm_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Return the word n-grams of a text (lower-cased, punctuation dropped)."""
    w = _norm_words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def overlapping(
    candidates: list[dict[str, Any]],
    references: list[dict[str, Any]],
    n: int = 8,
    threshold: float = 0.5,
) -> set[str]:
    """Ids of candidates that match a reference exactly or share most instance-specific n-grams.

    N-grams that many questions share are template text, not content, so they are ignored.
    """
    all_qs = [c["question"] for c in candidates] + [r["question"] for r in references]
    df: Counter = Counter()
    for q in all_qs:
        df.update(ngrams(q, n))
    common = {g for g, c in df.items() if c > max(5, len(all_qs) // 50)}
    exact = {" ".join(_norm_words(r["question"])) for r in references}
    ref_grams = [ngrams(r["question"], n) - common for r in references]
    index: dict[tuple[str, ...], list[int]] = {}
    for j, grams in enumerate(ref_grams):
        for g in grams:
            index.setdefault(g, []).append(j)
    flagged = set()
    for c in candidates:
        if " ".join(_norm_words(c["question"])) in exact:
            flagged.add(c["id"])
            continue
        grams = ngrams(c["question"], n) - common
        hits = Counter(j for g in grams for j in index.get(g, ()))
        if any(
            k / max(1, min(len(grams), len(ref_grams[j]))) >= threshold for j, k in hits.items()
        ):
            flagged.add(c["id"])
    return flagged


def build_pools(
    profile: Profile, benchmarks: dict[str, list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], int]:
    """Build the training pools, dropping any problem that overlaps a benchmark.

    Returns (problems, how many were dropped as overlapping).
    """
    rows: list[dict[str, Any]] = []
    for group, cfg in profile.pools.items():
        if cfg.sources:
            rows += load_pool(group, cfg, profile.seed)
            continue
        rows += build_embedded(
            POOL_FAMILIES[group],
            cfg.size,
            seed_base("pools", profile.seed),
            group,
            f"pool-{group}",
            mixed_choice=True,
        )
    refs = [r for rs in benchmarks.values() for r in rs]
    flagged = overlapping(rows, refs)
    return [r for r in rows if r["id"] not in flagged], len(flagged)


def dev_problems(profile: Profile, rdir: Path, group: str, n: int) -> list[dict[str, Any]]:
    """n fresh problems of a pool group's families from the dev seed range, for choosing
    settings (tools/calibrate_world.py, tools/sft_probe.py): none is a benchmark, a pool or an
    explore problem (those overlapping one are dropped)."""
    rows = build_embedded(
        POOL_FAMILIES[group], n, seed_base("dev", profile.seed), group, f"dev-{group}"
    )
    benches = load_benchmarks(profile, rdir)
    refs = [r for rs in benches.values() for r in rs] + build_pools(profile, benches)[0]
    explore = locate(rdir, "explore", "problems")
    if explore.exists():
        refs += read_jsonl(explore)
    flagged = overlapping(rows, refs)
    return [r for r in rows if r["id"] not in flagged]
