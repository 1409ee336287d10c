"""The thought/solution format: round trips and parsing of broken responses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helpers.grading.formatting import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    MARKERS,
    format_response,
    parse_response,
    split_r1,
    user_turn,
)

text = st.text(min_size=1, max_size=200).filter(
    lambda s: s.strip() and not any(m in s for m in MARKERS)
)


@given(text, text)
def test_round_trip(thought, solution):
    parsed = parse_response(format_response(thought, solution))
    assert parsed.well_formed
    assert parsed.thought == thought.strip() and parsed.solution == solution.strip()


@given(text)
def test_missing_solution_is_reported(thought):
    resp = format_response(thought, "x").split(BEGIN_SOLUTION)[0]
    parsed = parse_response(resp)
    assert "no solution start" in parsed.problems and parsed.thought == thought.strip()


def test_unclosed_parts():
    p = parse_response("<|begin_of_thought|>\n\nstep\n\n<|begin_of_solution|> x")
    assert "thought not closed" in p.problems and "solution not closed" in p.problems
    assert p.thought == "step"


def test_no_markers_at_all():
    p = parse_response("The answer is 4.")
    assert p.thought is None and p.solution is None
    assert {"no thought start", "no solution start"} <= set(p.problems)


def test_repeated_marker_is_malformed():
    resp = format_response("a", "b") + END_SOLUTION
    assert not parse_response(resp).well_formed


def test_split_r1():
    assert split_r1("<think>\nwork\n</think>\n\nso \\boxed{3}") == ("work", "so \\boxed{3}")
    assert split_r1("no think tags") is None


def test_steps_and_prompt_placement():
    turn = user_turn("What is 2+2?", "INSTR")
    assert turn.startswith("INSTR") and turn.endswith("What is 2+2?")
