"""The public release of the paper's data: a file of question, combined_text and domain.

Imported as demonstrations beside (or instead of) the teachers' (`unify.release_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pipeline.paths import rel

# The public release's domains, the only ones its importer accepts.
RELEASE_DOMAINS = ("math", "physics", "chemistry", "biology", "code", "puzzle")
RELEASE_FIELDS = ("question", "combined_text", "domain")


def _release_row_problem(r: Any) -> str | None:
    """What is wrong with one row of the public release, or None."""
    from ..grading.formatting import parse_response

    if not isinstance(r, dict):
        return f"expected a JSON object, found {type(r).__name__}"
    missing = [k for k in RELEASE_FIELDS if k not in r]
    if missing:
        return f"expected the fields {missing}"
    for k in RELEASE_FIELDS:
        v = r[k]
        if not isinstance(v, str):
            return (
                f"field '{k}': expected a string, found {'null' if v is None else type(v).__name__}"
            )
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return f"field '{k}': not valid UTF-8 text (a lone surrogate)"
    if not r["question"].strip():
        return "field 'question' is blank"
    if r["domain"].strip().lower() not in RELEASE_DOMAINS:
        return f"field 'domain': expected one of {list(RELEASE_DOMAINS)}, found {r['domain']!r}"
    parsed = parse_response(r["combined_text"])
    if not parsed.well_formed:
        return f"combined_text is not in the thought/solution format ({', '.join(parsed.problems)})"
    return None


def _file_rows(path: Path) -> tuple[list[tuple[int, Any]], list[str]]:
    """A JSON-lines file's rows with their line numbers, and what is wrong with the others."""
    import json

    rows, bad = [], []
    with path.open("rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rows.append((i, json.loads(raw.decode("utf-8"))))
            except UnicodeDecodeError as exc:
                bad.append(f"line {i}: not UTF-8 text (byte {exc.start}: {raw[exc.start]:#04x})")
            except json.JSONDecodeError as exc:
                bad.append(f"line {i}: not valid JSON ({exc.msg})")
    return rows, bad


def _demo(i: int, r: dict[str, Any], hard_words: int | None) -> dict[str, Any]:
    from ..grading.formatting import parse_response

    domain = r["domain"].strip().lower()
    words = len((parse_response(r["combined_text"]).thought or "").split())
    hard = domain == "math" and hard_words is not None and words >= hard_words
    return {
        "question": r["question"],
        "combined_text": r["combined_text"],
        "domain": domain,
        "id": f"release-{i}",
        "problem_id": f"release-{i}",
        "group": ("hard_math" if hard else "normal_math") if domain == "math" else "other",
        "difficulty": "hard" if hard else "unknown",
        "family": domain,
        "teacher": "release",
        "thought_words": words,
    }


def import_release(path: str | Path, hard_words: int | None = None) -> list[dict[str, Any]]:
    """Read the public release (question, combined_text, domain) into demos: a local JSON-lines
    file, or `hub:owner/name` on a box with network.

    Every row is checked; any bad row stops the import with one error that names each bad
    line and what is wrong with it, so nothing is imported as a silently different record.
    The release says nothing of difficulty: with `hard_words`, a math demonstration whose
    thought has at least that many words counts as hard math (a proxy: the paper's hard
    problems have longer thoughts), else every math one is normal math.
    """
    from ..pipeline.config import data_location
    from ..world.sources import load_rows

    kind, where = data_location(str(path))
    if kind == "hub":
        rows, bad = list(enumerate(load_rows(str(path), "train"), 1)), []
    else:
        rows, bad = _file_rows(Path(where))
    path = Path(where)
    demos = []
    for i, r in rows:
        problem = _release_row_problem(r)
        if problem:
            bad.append(f"line {i}: {problem}")
        else:
            demos.append(_demo(i, r, hard_words))
    if bad:
        shown = "\n  ".join(bad[:20]) + (
            f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        )
        raise ValueError(f"{rel(path)}: {len(bad)} bad row(s), nothing imported:\n  {shown}")
    return demos


def release_demos(unify_cfg: Any) -> list[dict[str, Any]]:
    """The demonstrations of the release the unify section names (none when it names none)."""
    if unify_cfg.release_file is None:
        return []
    return import_release(unify_cfg.release_file, unify_cfg.release_hard_words)
