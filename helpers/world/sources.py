"""Loaders for real datasets in their published schemas: the benchmarks and the paper's pools.

Each loader reads a local file (jsonl, json, csv, parquet) or, on a box with network, a hub id,
and returns problems in the schema of `helpers.tasks`. Problems whose answer cannot be checked
by a grader (camel-ai science answers are prose, LeetCode answers are programs) get
`answer_type: "open"`, and their responses are labelled "unverified" rather than right or wrong.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ..grading.answers import last_boxed
from ..grading.problem import LETTERS, choice_question, stable_hash
from ..pipeline.paths import rel


def load_rows(path: str, split: str) -> list[dict[str, Any]]:
    """Read a local file (jsonl, json, csv, parquet) or a `hub:owner/name` dataset into rows."""
    from datasets import load_dataset

    from ..pipeline.config import data_location

    kind, where = data_location(path)
    if kind == "hub":
        ds = load_dataset(where, split=split)  # hub access: only on an online box
        return [dict(r) for r in ds]
    p = Path(where)
    if not p.is_file():
        raise FileNotFoundError(f"{rel(p)}: no such file (write hub:<owner>/<name> for the hub)")
    fmt = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(p.suffix)
    if fmt is None:
        raise ValueError(f"{rel(p)}: expected a .jsonl, .json, .csv or .parquet file")
    ds = load_dataset(fmt, data_files=str(p), split="train")
    return [dict(r) for r in ds]


def need(row: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Raise one clear error naming the fields a row lacks."""
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{where}: expected the field(s) {missing}, found {sorted(row)}")


def _problem(**fields: Any) -> dict[str, Any]:
    base = {"answer_type": "math", "choices": None}
    return {**base, **fields}


# --------------------------------------------------------------------------- benchmarks


def load_math500(path: str, size: int | None = None) -> list[dict[str, Any]]:
    """Load MATH-500 (fields problem, answer, subject, level, unique_id)."""
    rows = load_rows(path, "test")[:size]
    out = []
    for i, r in enumerate(rows):
        need(r, ("problem", "answer"), f"{path}, row {i}")
        out.append(
            _problem(
                id=f"math500-{r.get('unique_id', i)}",
                group="normal_math",
                family=str(r.get("subject", "math")),
                domain="math",
                difficulty=f"level{r.get('level', '?')}",
                source="MATH-500",
                question=r["problem"],
                answer=str(r["answer"]),
            )
        )
    return out


def load_aime2024(path: str, size: int | None = None) -> list[dict[str, Any]]:
    """Load AIME 2024 (fields Problem, Answer, ID; lower-case names accepted)."""
    rows = load_rows(path, "train")[:size]
    out = []
    for i, r in enumerate(rows):
        r = {k.lower(): v for k, v in r.items()}
        need(r, ("problem", "answer"), f"{path}, row {i}")
        out.append(
            _problem(
                id=f"aime2024-{r.get('id', i)}",
                group="hard_math",
                family="aime",
                domain="math",
                difficulty="hard",
                source="AIME 2024",
                question=r["problem"],
                answer=str(r["answer"]).strip(),
            )
        )
    return out


def load_gpqa_diamond(path: str, size: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Load GPQA Diamond (Question, Correct Answer, Incorrect Answer 1-3), shuffled choices."""
    rows = load_rows(path, "train")[:size]
    keys = (
        "Question",
        "Correct Answer",
        "Incorrect Answer 1",
        "Incorrect Answer 2",
        "Incorrect Answer 3",
    )
    out = []
    for i, r in enumerate(rows):
        need(r, keys, f"{path}, row {i}")
        options = [str(r[k]).strip() for k in keys[1:]]
        gold = options[0]
        rid = r.get("Record ID", i)
        random.Random(stable_hash(seed, rid)).shuffle(options)
        out.append(
            _problem(
                id=f"gpqa-{rid}",
                group="other",
                family=str(r.get("Subdomain", "science")),
                domain=str(r.get("High-level domain", "science")).lower(),
                difficulty="hard",
                source="GPQA Diamond",
                question=choice_question(r["Question"], options),
                answer=LETTERS[options.index(gold)],
                answer_type="choice",
                choices=options,
            )
        )
    return out


# --------------------------------------------------------------------------- training pools


def load_numina(path: str, subsets: list[str] | None = None) -> list[dict[str, Any]]:
    """NuminaMath-CoT (source, problem, solution): the MATH and olympiad subsets by default.

    The ground truth is the last boxed expression of the reference solution; rows without one
    cannot be auto-labelled and are skipped.
    """
    keep = set(subsets or ["math", "olympiads"])
    out = []
    for i, r in enumerate(load_rows(path, "train")):
        need(r, ("source", "problem", "solution"), f"{path}, row {i}")
        if r["source"] not in keep:
            continue
        answer = last_boxed(r["solution"])
        if not answer:
            continue
        out.append(
            _problem(
                id=f"numina-{r['source']}-{i}",
                family=f"numina_{r['source']}",
                domain="math",
                difficulty="hard" if r["source"] in ("olympiads", "amc_aime") else "normal",
                source=f"NuminaMath/{r['source']}",
                question=r["problem"].strip(),
                answer=answer,
            )
        )
    return out


def load_aime_history(path: str, years: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """AIME problems by year (ID, Year, Problem Number, Question, Answer, Part), 1983-2023."""
    first, last = years or (1983, 2023)  # 2024 is the benchmark
    out = []
    for i, r in enumerate(load_rows(path, "train")):
        need(r, ("Year", "Question", "Answer"), f"{path}, row {i}")
        if not first <= int(r["Year"]) <= last:
            continue
        out.append(
            _problem(
                id=f"aime-{r.get('ID', i)}",
                family="aime",
                domain="math",
                difficulty="hard",
                source=f"AIME {r['Year']}",
                question=str(r["Question"]).strip(),
                answer=str(r["Answer"]).strip(),
            )
        )
    return out


def load_camel_science(path: str) -> list[dict[str, Any]]:
    """camel-ai physics, chemistry or biology (role_1, topic;, sub_topic, message_1, message_2)."""
    out = []
    for i, r in enumerate(load_rows(path, "train")):
        need(r, ("role_1", "message_1", "message_2"), f"{path}, row {i}")
        role = str(r["role_1"]).split("_")[0].lower()  # "Physicist_RoleType.ASSISTANT"
        domain = {"physicist": "physics", "chemist": "chemistry", "biologist": "biology"}.get(
            role, role
        )
        topic = r.get("topic;", r.get("topic", ""))  # the published column name has the ';'
        out.append(
            _problem(
                id=f"camel-{domain}-{i}",
                family=f"camel_{domain}",
                domain=domain,
                difficulty="normal",
                source=f"camel-ai/{domain}: {topic}",
                question=str(r["message_1"]).strip(),
                answer=str(r["message_2"]).strip(),
                answer_type="open",
            )
        )
    return out


def load_riddlesense(path: str) -> list[dict[str, Any]]:
    """RiddleSense, five options: the hub layout (question, choices{label,text}, answerKey) or
    the original release's (question{stem, choices[{label,text}]}, answerKey)."""
    out = []
    for i, r in enumerate(load_rows(path, "train")):
        need(r, ("question", "answerKey"), f"{path}, row {i}")
        q = r["question"]
        if isinstance(q, dict):  # the original jsonl release
            need(q, ("stem", "choices"), f"{path}, row {i}, field question")
            stem = q["stem"]
            labels = [c["label"] for c in q["choices"]]
            texts = [c["text"] for c in q["choices"]]
        else:
            need(r, ("choices",), f"{path}, row {i}")
            stem, labels, texts = q, list(r["choices"]["label"]), list(r["choices"]["text"])
        if r["answerKey"] not in labels:
            raise ValueError(
                f"{path}, row {i}: answerKey '{r['answerKey']}' is not one of the labels {labels}"
            )
        out.append(
            _problem(
                id=f"riddlesense-{r.get('id', i)}",
                family="riddlesense",
                domain="puzzle",
                difficulty="normal",
                source="RiddleSense",
                question=choice_question(stem, texts),
                answer=LETTERS[labels.index(r["answerKey"])],
                answer_type="choice",
                choices=texts,
            )
        )
    return out


def load_leetcode(path: str, difficulty: str | None = None) -> list[dict[str, Any]]:
    """LeetCode problems (id, slug, title, difficulty, content, python, ...): "Hard" by default."""
    keep = (difficulty or "Hard").lower()
    out = []
    for i, r in enumerate(load_rows(path, "train")):
        need(r, ("difficulty", "content"), f"{path}, row {i}")
        if str(r["difficulty"]).lower() != keep:
            continue
        out.append(
            _problem(
                id=f"leetcode-{r.get('slug', r.get('id', i))}",
                family="leetcode",
                domain="code",
                difficulty="hard",
                source="LeetCode",
                question=str(r["content"]).strip(),
                answer=str(r.get("python", "")).strip(),
                answer_type="open",
            )
        )
    return out


POOL_LOADERS = {
    "numina_math": lambda cfg: load_numina(cfg.path or "hub:AI-MO/NuminaMath-CoT", cfg.subsets),
    "aime": lambda cfg: load_aime_history(cfg.path or "hub:gneubig/aime-1983-2024", cfg.years),
    "camel_science": lambda cfg: load_camel_science(cfg.path or "hub:camel-ai/physics"),
    "riddlesense": lambda cfg: load_riddlesense(cfg.path or "hub:INK-USC/riddle_sense"),
    "leetcode": lambda cfg: load_leetcode(cfg.path or "hub:greengerong/leetcode", cfg.difficulty),
}


def pool_sizes(total: int, fixed: list[int | None]) -> list[int]:
    """Split a group's size over its sources: fixed sizes first, the rest in equal shares."""
    free = [i for i, n in enumerate(fixed) if n is None]
    left = total - sum(n or 0 for n in fixed)
    out = [n or 0 for n in fixed]
    for k, i in enumerate(free):
        out[i] = left // len(free) + (k < left % len(free))
    return out


def load_pool(group: str, cfg: Any, seed: int) -> list[dict[str, Any]]:
    """Draw one group's problems from its real sources (a seeded sample of each)."""
    out: list[dict[str, Any]] = []
    sizes = pool_sizes(cfg.size, [s.size for s in cfg.sources])
    for src, n in zip(cfg.sources, sizes, strict=True):
        rows = POOL_LOADERS[src.source](src)
        if not rows:
            raise ValueError(
                f"pools.{group}: source {src.source} ({src.path}) gave no usable problems"
            )
        rng = random.Random(stable_hash(seed, group, src.source, src.path))
        picked = rng.sample(rows, min(n, len(rows)))
        out += [{**r, "group": group} for r in picked]
    return out
