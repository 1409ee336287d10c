"""What an adversary tries in a day: hostile profiles, damaged pools, leaky error bodies.

Each test here failed before its fix (see the note of the issue that added them).
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.pipeline.artifacts import DamagedFile, read_jsonl, resume_jsonl
from helpers.pipeline.config import FORCE_ENV, load_profile
from helpers.pipeline.schema import ProfileError

from .test_config import GOOD, error_of, write
from .test_runner import plan_in, run

# --------------------------------------------------------------------------- profiles

BOMB = textwrap.dedent("""\
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
""")


@pytest.mark.parametrize("where", ["unknown key", "paper_rows"])
def test_an_alias_bomb_is_refused_at_once(tmp_path, where):
    if where == "unknown key":
        text = GOOD + "laughs:\n" + textwrap.indent(BOMB, "  ")
    else:
        text = BOMB + GOOD.replace("kind: backbone}", "kind: backbone, paper_rows: *i}")
    t0 = time.monotonic()
    msg = error_of(tmp_path, text)
    assert time.monotonic() - t0 < 2
    assert "aliases expand to more than" in msg and "p.yaml" in msg


def test_a_huge_profile_is_refused_before_it_is_parsed(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text(GOOD + "data:\n" + "  - 12345678901234567890\n" * 850_000)  # ~20 MB
    t0 = time.monotonic()
    with pytest.raises(ProfileError, match="expected a profile of at most"):
        load_profile(p)
    assert time.monotonic() - t0 < 2


DPO = GOOD + textwrap.dedent("""\
    explore: {start: sft_small}
    dpo: {}
""")


@pytest.mark.parametrize(
    "variants,found",
    [
        (["{name: a, kind: dpo, init: a}"], "cycle: a -> a"),
        (
            ["{name: a, kind: dpo, init: b}", "{name: b, kind: dpo, init: a}"],
            "cycle: a -> b -> a",
        ),
        (["{name: a, kind: dpo, init: backbone}"], "found 'backbone' (a backbone variant)"),
        (["{name: a, kind: dpo, init: nobody}"], "found 'nobody'"),
        (["{name: a, kind: dpo}"], "found nothing"),
    ],
)
def test_a_dpo_variant_must_start_from_an_sft_variant(tmp_path, variants, found):
    text = DPO + "".join(f"  - {v}\n" for v in variants)
    text = text.replace("variants:\n", "variants:\n", 1)
    text = DPO.replace(
        "  - {name: sft_small, kind: sft, mixture: small}\n",
        "  - {name: sft_small, kind: sft, mixture: small}\n"
        + "".join(f"  - {v}\n" for v in variants),
    )
    msg = error_of(tmp_path, text)
    assert "key 'variants." in msg and found in msg


def test_init_on_an_sft_variant_is_refused(tmp_path):
    text = GOOD.replace("mixture: small}", "mixture: small, init: backbone}")
    assert "only a dpo variant reads" in error_of(tmp_path, text)


def test_a_missing_pool_file_is_named_at_validation(tmp_path):
    text = DPO.replace(
        "explore: {start: sft_small}", "explore: {start: sft_small, pool_files: [nope.jsonl]}"
    )
    msg = error_of(tmp_path, text)
    assert "key 'explore.pool_files.0'" in msg and "nope.jsonl" in msg and "missing" in msg


def test_a_prompt_file_outside_the_repository_is_refused(tmp_path):
    msg = error_of(tmp_path, GOOD + "prompt_file: /etc/passwd\n")
    assert "key 'prompt_file'" in msg and "inside the repository" in msg
    assert "external_prompt_file: true" in msg
    outside = tmp_path / "prompt.txt"
    outside.write_text("Think slowly.")
    ok = load_profile(
        write(tmp_path, GOOD + f"prompt_file: {outside}\nexternal_prompt_file: true\n")
    )
    assert ok.prompt_file == str(outside)
    outside.write_text("x" * 100_000)
    msg = error_of(tmp_path, GOOD + f"prompt_file: {outside}\nexternal_prompt_file: true\n")
    assert "at most 16,384 bytes" in msg


# --------------------------------------------------------------------------- pools


def _problems(n=2):
    return [
        {"id": f"p{i}", "question": f"q{i}", "answer": "1", "answer_type": "math", "family": "f"}
        for i in range(n)
    ]


def _rollout(pid="p0", attempt=1, response="r", correct=False):
    return {
        "id": f"{pid}:it1:a{attempt}",
        "problem_id": pid,
        "attempt": attempt,
        "response": response,
        "correct": correct,
        "tokens": 3,
        "model": "m",
    }


def _write_lines(path: Path, rows: list, tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


SETTINGS = {"max_rollouts": 4, "max_new_tokens": 16}


def _resume(path: Path, **kw):
    from helpers.method.pool import resume_pool

    logged: list[str] = []
    rows = resume_pool(path, "fp", _problems(), SETTINGS, "m", log=logged.append, **kw)
    return rows, logged


def _meta(path: Path) -> None:
    path.with_name("pool.meta.json").write_text(json.dumps({"fingerprint": "fp"}))


def test_a_torn_last_line_is_dropped_with_a_message(tmp_path):
    pool = tmp_path / "iter1" / "pool.jsonl"
    _write_lines(pool, [_rollout(attempt=1), _rollout(attempt=2)], tail='{"id": "p0:it1:a3", "resp')
    _meta(pool)
    rows, logged = _resume(pool)
    assert [r["attempt"] for r in rows] == [1, 2]
    assert any("dropped a torn last line" in line for line in logged)
    assert pool.read_text().endswith("\n") and len(read_jsonl(pool)) == 2


def test_a_pool_whose_problems_changed_is_set_aside_and_one_that_grew_is_resumed(tmp_path):
    pool = tmp_path / "iter1" / "pool.jsonl"
    _write_lines(pool, [{**_rollout(pid="p0"), "question": "q0"}, _rollout(pid="p1")])
    _meta(pool)
    rows, _ = _resume(pool)  # the same questions (or none recorded): resumed
    assert [r["problem_id"] for r in rows] == ["p0", "p1"]
    _write_lines(pool, [{**_rollout(pid="p0"), "question": "q0 reworded"}])
    rows, logged = _resume(pool)
    assert rows == [] and not pool.exists()
    assert any("1 rollouts ask another question" in line for line in logged)
    assert len(list(pool.parent.glob("pool.stale-problems-*.jsonl"))) == 1


def test_damage_inside_a_pool_says_what_to_do_and_force_starts_afresh(tmp_path, monkeypatch):
    pool = tmp_path / "iter1" / "pool.jsonl"
    text = (
        json.dumps(_rollout(attempt=1))
        + "\n"
        + '{"id": "half\n'
        + json.dumps(_rollout(attempt=2))
        + "\n"
    )
    pool.parent.mkdir(parents=True)
    pool.write_text(text)
    _meta(pool)
    with pytest.raises(DamagedFile) as exc:
        _resume(pool)
    assert "line 2: not valid JSON" in str(exc.value) and "--force" in str(exc.value)
    assert pool.read_text() == text  # nothing lost
    monkeypatch.setenv(FORCE_ENV, "1")
    rows, _ = _resume(pool)
    assert rows == [] and not pool.exists()
    kept = list(pool.parent.glob("pool.replaced-*.jsonl"))
    assert len(kept) == 1 and kept[0].read_text() == text


@pytest.mark.parametrize(
    "row,why",
    [
        (_rollout(pid="elsewhere"), "not one of this run's explore problems"),
        (_rollout(attempt=9), "attempt 9: expected a whole number from 1 to 4"),
        (_rollout(response="x" * 5_000_000), "more than a rollout of this run can hold"),
    ],
)
def test_a_resumed_pool_refuses_records_a_rollout_cannot_be(tmp_path, row, why):
    pool = tmp_path / "iter1" / "pool.jsonl"
    _write_lines(pool, [_rollout(), row])
    _meta(pool)
    with pytest.raises(DamagedFile, match=why):
        _resume(pool)


def test_an_earlier_pool_joins_with_its_counts_or_stops_when_nothing_does(tmp_path):
    from helpers.method.pool import load_pool

    earlier = tmp_path / "earlier.jsonl"
    _write_lines(
        earlier,
        [_rollout(), _rollout(pid="elsewhere"), _rollout(attempt=2, response="x" * 5_000_000)],
    )
    logged: list[str] = []
    rows = load_pool(
        tmp_path / "run", 0, [str(earlier)], _problems(), max_new_tokens=16, log=logged.append
    )
    assert len(rows) == 1
    assert "1 records joined (1 other problems, 1 unfit records left out)" in logged[0]
    foreign = tmp_path / "foreign.jsonl"
    _write_lines(foreign, [_rollout(pid="elsewhere")])
    with pytest.raises(ValueError, match=r"nothing in .* joins this run's pool"):
        load_pool(tmp_path / "run", 0, [str(foreign)], _problems(), log=logged.append)
    rows = load_pool(
        tmp_path / "run", 0, [str(foreign)], _problems(), unmatched="warn", log=logged.append
    )
    assert rows == [] and logged[-1].startswith("warning: explore.pool_files: nothing in")


def test_resume_jsonl_refuses_bytes_that_are_not_utf8(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DamagedFile, match="line 2: not UTF-8"):
        resume_jsonl(p)


# --------------------------------------------------------------------------- digests


def test_same_size_damage_with_its_time_put_back_is_caught_before_use(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    f = rdir / "one/a.txt"
    st = f.stat()
    f.write_text("X" * st.st_size)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    plan[1].parameters["sleep"] = 0.01  # two must run now: its settings changed
    from helpers.pipeline.execute import ExecutionFailed

    with pytest.raises(ExecutionFailed, match=r"two:v1 needs one/a\.txt, which changed after one"):
        run(plan, rdir)
    outcomes, lines = run(plan, rdir)  # the same command again: one is redone first
    assert outcomes == ["ran", "ran"] and "output one/a.txt changed" in lines[0]


def test_a_byte_identical_restore_is_not_a_change(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    f = rdir / "one/a.txt"
    good = f.read_bytes()
    f.write_bytes(b"edited by hand")
    time.sleep(0.01)
    f.write_bytes(good)  # restored, with a new modification time
    outcomes, _ = run(plan, rdir)
    assert outcomes == ["skip", "skip"]


# --------------------------------------------------------------------------- evaluation


class Dying:
    """An hf-like backend that answers every prompt with its own question's number, and can be
    made to die after k results (as a killed kernel would)."""

    def __init__(self, die_after: int | None = None) -> None:
        self.die_after, self.generated = die_after, 0

    def generate(self, prompts, cfg, on_result=None):
        from helpers.infer.interface import Completion

        out = []
        for i, p in enumerate(prompts):
            if self.die_after is not None and self.generated >= self.die_after:
                raise KeyboardInterrupt
            text = "\\boxed{" + p.messages[-1]["content"].split()[-1] + "}"
            comps = [Completion(text, 3, "end_of_turn")]
            self.generated += 1
            if on_result:
                on_result(i, comps)
            out.append(comps)
        return out


def _bench(n):
    return {
        "b": [
            {"id": f"e{i}", "question": f"What is {i}", "answer": str(i), "answer_type": "math"}
            for i in range(n)
        ]
    }


def test_an_interrupted_evaluation_resumes_from_what_it_finished(tmp_path, monkeypatch):
    from helpers.method.evaluation import evaluate_model

    bench = _bench(10)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(Dying(die_after=7), bench, "", 8, tmp_path, "v", "m")
    assert len(read_jsonl(tmp_path / "partial.jsonl")) == 7
    again = Dying()
    summary = evaluate_model(again, bench, "", 8, tmp_path, "v", "m")
    assert again.generated == 3 and summary["benchmarks"]["b"]["accuracy"] == 100.0
    assert not (tmp_path / "partial.jsonl").exists()
    assert [r["id"] for r in read_jsonl(tmp_path / "b.jsonl")] == [f"e{i}" for i in range(10)]
    # forced: nothing is resumed
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(Dying(die_after=4), bench, "", 8, tmp_path, "v", "m")
    monkeypatch.setenv(FORCE_ENV, "1")
    fresh = Dying()
    evaluate_model(fresh, bench, "", 8, tmp_path, "v", "m")
    assert fresh.generated == 10


# --------------------------------------------------------------------------- secrets

KEY = "sk-test-STRADDLING-THE-CUT-0123456789"


def _server(status: int, body: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def _ask(url):
    from helpers.infer.interface import Prompt, SamplingCfg
    from helpers.infer.openai_backend import OpenAIBackend

    be = OpenAIBackend(url, "m", KEY, max_retries=0, progress=False)
    return be.generate([Prompt([{"role": "user", "content": "hi"}])], SamplingCfg(stop=()))


def test_a_key_straddling_the_cut_of_an_error_body_is_masked_whole():
    body = json.dumps({"error": "x" * (300 - 10 - len('{"error": "')) + KEY})
    assert body.index(KEY) < 300 < body.index(KEY) + len(KEY)
    server, url = _server(400, body)
    with pytest.raises(RuntimeError) as exc:
        _ask(url)
    server.shutdown()
    assert "HTTP 400" in str(exc.value) and KEY[:8] not in str(exc.value)


def test_a_key_written_with_unicode_escapes_is_masked_once_decoded():
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)
    body = (
        '{"choices": [{"message": {"content": "your key is '
        + escaped
        + '"}, "finish_reason": "stop"}], "usage": {}}'
    )
    server, url = _server(200, body)
    (comps,) = _ask(url)
    server.shutdown()
    assert KEY not in comps[0].text and "***" in comps[0].text


# --------------------------------------------------------------------------- small things


def test_the_run_closes_with_its_time_and_where_the_report_is(tmp_path):
    from helpers.pipeline.execute import closing_line

    plan, rdir = plan_in(tmp_path)
    outcomes, _ = run(plan, rdir)
    (rdir / "REPORT.md").write_text("# r")
    line = closing_line(rdir, outcomes, 65.0, dry_run=False)
    assert line.startswith("finished: 2 ran, 0 skipped, in 1m05s")
    assert "stage time of the whole run so far" in line and line.endswith("REPORT.md")
    outcomes, _ = run(plan, rdir)
    assert closing_line(rdir, outcomes, 1.0, False).startswith("finished: 0 ran, 2 skipped")


def test_a_killed_run_is_called_killed_not_running(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    m = rdir / "manifests" / "one.json"
    data = json.loads(m.read_text())
    data["status"] = "running"
    m.write_text(json.dumps(data))
    _, lines = run(plan, rdir)
    assert "last run was killed or crashed" in lines[0]


def test_the_status_line_ticks_without_output():
    from helpers.pipeline.progress import ProgressLine

    log = io.StringIO()
    line = ProgressLine("[3/9] sft:x", log, every=0.2, heartbeat=True)
    line.write("\rtrain steps:  10%|#         | 1/10 [01:40<15:00, 100s/it]")
    time.sleep(1.5)
    line.close()
    shown = [ln for ln in log.getvalue().splitlines() if "train steps 10%" in ln]
    assert len(shown) >= 2  # the elapsed time went on being shown while no step finished


def test_the_explore_table_names_the_profiles_rollouts_and_has_no_empty_cells():
    from helpers.analysis.display import problems_note, stats_table
    from helpers.method.pool import iteration_stats

    problems = [dict(p, family=f) for p, f in zip(_problems(3), ["a", "a", "b"], strict=True)]
    rows = [_rollout("p0", 1, correct=True), _rollout("p1", 1), _rollout("p1", 2)]
    st = iteration_stats(rows, problems, max_rollouts=7, asked=5)
    df = stats_table(st)
    assert "tokens at 7 rollouts each" in df.columns and not df.isna().any().any()
    assert df.loc["a", "rollouts"] == 3 and df.loc["all", "solved"] == 1
    assert problems_note(5, problems) == (
        "3 problems explored (2 of the 5 asked for dropped: they overlap a benchmark or a "
        "training pool problem)"
    )


def test_the_importer_refuses_latin1_bytes_with_the_line(tmp_path):
    from helpers.grading.formatting import format_response
    from helpers.method.release import import_release

    good = {"question": "q", "combined_text": format_response("t", "s"), "domain": "math"}
    p = tmp_path / "r.jsonl"
    p.write_bytes(
        (json.dumps(good) + "\n").encode()
        + json.dumps(dict(good, question="caf\u00e9"), ensure_ascii=False).encode("latin-1")
        + b"\n"
    )
    with pytest.raises(ValueError, match="line 2: not UTF-8 text"):
        import_release(p)


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Adding the legs: 28 + 45 = **73**", "73"),
        ("The answer is thus $73$.", "73"),
        ("The answer is not 72; it is 73.", "73"),
        ("The answer is not 72, but 73.", "73"),
        ("The answer is 73, since 7 * 9 + 10 = 73.", "73"),
        ("The answer is not known.", None),
    ],
)
def test_an_answer_phrase_yields_the_answer_not_the_words_after_it(text, answer):
    from helpers.grading.answers import read_answer

    assert read_answer(text).answer == answer
