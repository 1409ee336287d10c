"""The runner as an adversary meets it: races, damaged or foreign artifacts, Ctrl-C, leaks."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.pipeline.config import load_profile
from helpers.pipeline.execute import ExecutionFailed, execute_plan
from helpers.pipeline.lock import RunLocked, run_lock
from helpers.pipeline.paths import cache_root, outputs_root, repo_root
from helpers.pipeline.plan import Execution, build_plan, execution_fingerprint, stage_config
from helpers.pipeline.progress import ProgressLine, parse_progress

from .test_runner import BODY, make_nb, plan_in, run

PY = sys.executable


def runner(*args, timeout=600, **kw):
    return subprocess.run(
        [PY, "-m", "helpers.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=repo_root(),
        **kw,
    )


# --------------------------------------------------------------------------- races


def test_a_second_run_on_the_same_folder_refuses_naming_the_holder(tmp_outputs):
    rdir = tmp_outputs / "smoke"
    with run_lock(rdir):
        out = runner("params/smoke.yaml", "--only", "collect")
    assert out.returncode == 2
    assert f"outputs/smoke is in use by another run (pid {os.getpid()}" in out.stderr
    assert "--wait" in out.stderr
    assert not (rdir / "manifests").exists()  # it touched nothing


def test_the_lock_is_free_again_once_its_holder_is_gone(tmp_path):
    holder = subprocess.Popen(
        [
            PY,
            "-c",
            "import sys, time\nfrom helpers.pipeline.lock import run_lock\n"
            f"with run_lock(__import__('pathlib').Path({str(tmp_path)!r})):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo_root(),
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=f"pid {holder.pid}"), run_lock(tmp_path):
        pass
    waited = []
    threading.Timer(1.0, holder.kill).start()  # killed: the kernel frees its lock
    with run_lock(tmp_path, wait=True, log=waited.append):
        pass
    assert waited and "waiting for" in waited[0]


def test_a_model_folder_is_swapped_in_whole(tmp_path):
    from helpers.infer.models import save_model

    class Fake:
        def __init__(self, name, tag):
            self.name, self.tag = name, tag

        def save_pretrained(self, path, **kw):
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / self.name).write_text(self.tag)

    dest = tmp_path / "models" / "m"
    save_model(Fake("weights", "old"), Fake("tokenizer", "t"), dest)
    stale = dest.with_name("m.tmp-99999")  # what a writer that was killed leaves behind
    stale.mkdir()
    (stale / "weights").write_text("half")
    save_model(Fake("weights", "new"), Fake("tokenizer", "t"), dest)
    assert (dest / "weights").read_text() == "new" and (dest / "tokenizer").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m"]


# --------------------------------------------------------------------------- damaged inputs


def test_a_truncated_output_is_redone_before_anything_downstream_uses_it(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    good = (rdir / "one/a.txt").read_text()
    (rdir / "one/a.txt").write_text(good[: len(good) // 2])  # cut in half
    outcomes, lines = run(plan, rdir)
    assert outcomes == ["ran", "ran"] and "changed since this execution wrote it" in lines[0]


def test_a_selection_is_refused_an_input_its_producer_did_not_write(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    (rdir / "one/a.txt").write_text('{"half": ')  # a half line
    with pytest.raises(ExecutionFailed) as exc:
        execute_plan(
            [plan[1]],
            rdir,
            profile=None,
            kernel="python3",
            log=lambda s: None,
            force=True,
            full_plan=plan,
        )
    assert "two:v1 needs one/a.txt, which changed after one wrote it" in str(exc.value)
    assert "--only one" in str(exc.value)


def test_a_damaged_model_file_reruns_the_training(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = make_nb(
        nbs / "m.ipynb",
        "import pathlib\np = pathlib.Path(out)\np.mkdir(parents=True, "
        "exist_ok=True)\n(p / 'model.safetensors').write_bytes(b'w' * 4096)\n",
    )
    rdir = tmp_path / "run"
    plan = [Execution("sft", nb, {"out": str(rdir / "models/m")}, "m", outputs=["models/m"])]
    run(plan, rdir)
    weights = rdir / "models/m/model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(100)
    outcomes, lines = run(plan, rdir)
    assert outcomes == ["ran"] and "output models/m changed" in lines[0]
    assert weights.stat().st_size == 4096


# --------------------------------------------------------------------------- test isolation


def test_tests_write_outside_the_repository():
    repo_outputs = (repo_root() / "outputs").resolve()
    assert not str(outputs_root()).startswith(str(repo_outputs))
    assert not str(cache_root()).startswith(str(repo_root().resolve()))


# --------------------------------------------------------------------------- by hand


def _papermill(notebook, out, *params):
    args = [PY, "-m", "papermill", notebook, str(out), "-k", "python3"]
    for k, v in params:
        args += ["-p", k, v]
    return subprocess.run(args, capture_output=True, text=True, cwd=repo_root(), timeout=300)


def test_a_notebook_by_hand_refuses_an_unknown_parameter(tmp_path):
    out = _papermill("notebooks/03_mix_data.ipynb", tmp_path / "o.ipynb", ("nonexistent", "1"))
    assert out.returncode != 0
    assert "unknown notebook parameter(s) ['nonexistent']: this notebook takes ['profile']" in (
        out.stderr + out.stdout
    )


def test_a_notebook_by_hand_explains_a_wrongly_typed_parameter(tmp_path):
    out = _papermill(
        "notebooks/07_evaluate.ipynb", tmp_path / "o.ipynb", ("max_new_tokens", "many")
    )
    assert out.returncode != 0
    text = out.stderr + out.stdout
    assert "notebook parameter for 'generation.max_new_tokens'" in text
    assert "expected a value of type int, found str 'many'" in text
    assert "pydantic" not in text.lower().split("notebook parameter")[-1][:200]


# --------------------------------------------------------------------------- interrupts


SLOW = """
import os, time, pathlib
pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(out + ".started").write_text(str(os.getpid()))
time.sleep(60)
pathlib.Path(out).write_text("done")
"""


def interruptible() -> None:
    """In the child: Ctrl-C's default again (a shell's background job starts with SIGINT
    ignored, and Python then never turns it into KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gone(pid: int, within: float = 30.0) -> bool:
    """Whether process `pid` ends (or is a zombie) within `within` seconds."""
    import psutil

    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


# A cell that ignores the interrupt: its kernel must end all the same when the run is stopped.
STUBBORN = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + SLOW


@pytest.mark.parametrize("how", ["ctrl-c", "kill", "hangup", "kill a stubborn cell"])
def test_a_stopped_run_says_one_line_and_leaves_an_interrupted_mark(tmp_path, how):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    body = STUBBORN if how == "kill a stubborn cell" else SLOW
    nb = make_nb(nbs / "slow.ipynb", body, params="out = ''")
    rdir = tmp_path / "run"
    plan = [Execution("slow", nb, {"out": str(rdir / "slow/x.txt")}, outputs=["slow/x.txt"])]
    import pickle

    (tmp_path / "plan.pkl").write_bytes(pickle.dumps(plan))
    script = tmp_path / "go.py"
    script.write_text(
        textwrap.dedent(f"""
        import pickle, pathlib, sys
        from helpers.pipeline.execute import Interrupted, execute_plan
        from helpers.pipeline.kernels import stop_as_ctrl_c
        plan = pickle.load(open({str(tmp_path / "plan.pkl")!r}, "rb"))
        stop_as_ctrl_c()
        try:
            execute_plan(plan, pathlib.Path({str(rdir)!r}), profile=None, kernel="python3",
                         log=lambda s: None)
        except Interrupted as exc:
            print(f"interrupted during {{exc}}", file=sys.stderr)
            sys.exit(130)
    """)
    )
    proc = subprocess.Popen(
        [PY, str(script)],
        cwd=repo_root(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    deadline = time.time() + 120
    while not (rdir / "slow/x.txt.started").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the whole foreground group
    else:  # `kill PID`, a scheduler's preemption, a closed terminal: the runner alone
        os.kill(proc.pid, signal.SIGHUP if how == "hangup" else signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert gone(int((rdir / "slow/x.txt.started").read_text()))  # no kernel left running
    assert err.strip().splitlines() == ["interrupted during slow"], err
    manifest = json.loads((rdir / "manifests/slow.json").read_text())
    assert manifest["status"] == "interrupted"
    executed = json.loads((rdir / "notebooks/slow__slow.ipynb").read_text())
    assert executed["metadata"]["papermill"]["status"] == "interrupted"
    assert "Interrupted" in "".join(executed["cells"][0]["source"])
    outcomes, lines = run(plan, rdir, dry_run=True)
    assert outcomes == ["would run"] and "last run interrupted" in lines[0]


def test_a_kernel_that_dies_fails_its_execution_in_one_line(tmp_path, caplog):
    nb = make_nb(tmp_path / "dies.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    rdir = tmp_path / "run"
    plan = [Execution("dies", nb, {"out": str(rdir / "dies/x.txt")}, outputs=["dies/x.txt"])]
    with pytest.raises(ExecutionFailed, match="dies failed: its kernel died") as info:
        execute_plan(plan, rdir, profile=None, kernel="python3", log=lambda s: None)
    assert "notebooks/dies__dies.kernel.log" in str(info.value)
    assert json.loads((rdir / "manifests/dies.json").read_text())["status"] == "failed"
    assert not [r for r in caplog.records if "Kernel died" in r.getMessage()]  # the runner says it
    assert "Kernel died" in (rdir / "notebooks/dies__dies.kernel.log").read_text()


def test_a_stops_orphaned_poll_reports_to_the_kernel_log_not_the_terminal(tmp_path, caplog):
    import logging

    from nbclient.exceptions import DeadKernelError

    from helpers.pipeline.kernels import KERNEL_DIED, kernel_deaths_to

    log = tmp_path / "k.log"
    died = DeadKernelError("Kernel died")
    kernel_deaths_to(log)
    logging.getLogger("papermill").error(KERNEL_DIED)
    logging.getLogger("papermill").error("a cell's own error")
    logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=died)
    assert [r.getMessage() for r in caplog.records] == ["a cell's own error"]  # others pass
    assert log.read_text().count("[runner]") == 2


def test_the_runner_turns_ctrl_c_into_one_line(tmp_outputs):
    sockets_before = set(repo_root().glob("kernel*"))
    proc = subprocess.Popen(
        [PY, "-m", "helpers.run", "params/smoke.yaml", "--only", "collect"],
        cwd=repo_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    manifest = tmp_outputs / "smoke/manifests/collect.json"
    deadline = time.time() + 120
    while not manifest.exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted during collect"), err
    assert "run the same command again" in lines[0]
    assert json.loads(manifest.read_text())["status"] == "interrupted"
    # the killed kernel's sockets are not left in the repository
    assert set(repo_root().glob("kernel*")) == sockets_before


# --------------------------------------------------------------------------- secrets

SECRET = "sk-test-ECHOED-BY-A-PROXY-0123456789"


def _echoing_server():
    from tools.serve import make_handler

    base = make_handler(None, "echo")

    class Handler(base):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # what some proxies do: the request's credentials, echoed in an error body
            self._send(400, {"error": f"bad request with {self.headers.get('Authorization')}"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_an_echoed_key_is_masked_in_errors_manifests_and_notebooks(
    tmp_outputs, tmp_path, monkeypatch
):
    server, url = _echoing_server()
    monkeypatch.setenv("STILL_TEST_KEY", SECRET)
    prof = tmp_path / "leak.yaml"
    prof.write_text(
        textwrap.dedent(f"""\
        run: leak
        stages: [collect]
        benchmarks: {{normal: {{kind: normal, size: 2}}}}
        pools: {{normal_math: {{size: 2}}}}
        teachers:
          - {{name: remote, style: r1, kind: openai, base_url: "{url}", api_model: echo,
              api_key_env: STILL_TEST_KEY}}
        variants: [{{name: backbone, kind: backbone}}]
    """)
    )
    out = runner(str(prof))
    server.shutdown()
    assert out.returncode == 2 and "HTTP 400" in out.stderr
    assert SECRET not in out.stderr + out.stdout
    files = [p for p in (tmp_outputs / "leak").rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files)
    for p in files:
        assert SECRET not in p.read_text(errors="ignore"), p


# --------------------------------------------------------------------------- needless reruns


def test_the_same_profile_elsewhere_is_the_same_work(tmp_path):
    copy = tmp_path / "elsewhere.yaml"
    copy.write_text((repo_root() / "params/tiny.yaml").read_text())
    a, b = load_profile("params/tiny.yaml"), load_profile(copy)
    pa, _ = build_plan(a, "params/tiny.yaml")
    pb, _ = build_plan(b, str(copy))
    fa = [execution_fingerprint(e, stage_config(a, e)) for e in pa]
    fb = [execution_fingerprint(e, stage_config(b, e)) for e in pb]
    assert fa == fb


def test_checkpoint_frequency_changes_no_fingerprint():
    prof = load_profile("params/tiny.yaml")
    data = prof.model_dump()
    for section in ("warmup", "sft", "dpo"):
        data[section]["checkpoint_minutes"] = 0.5
    other = type(prof).model_validate(data)
    plan, _ = build_plan(prof, "params/tiny.yaml")
    assert plan
    for ex in plan:
        config = stage_config(prof, ex)
        assert "checkpoint_minutes" not in json.dumps(config)
        assert execution_fingerprint(ex, config) == execution_fingerprint(
            ex, stage_config(other, ex)
        )


def test_summaries_carry_no_timings(tmp_path):
    from helpers.infer.interface import Completion
    from helpers.method.evaluation import evaluate_model

    class Fixed:
        def generate(self, prompts, cfg, on_result=None):
            return [[Completion("\\boxed{5}", 3, "end_of_turn")] for _ in prompts]

    bench = {"b": [{"id": "q", "question": "2+3?", "answer": "5", "answer_type": "math"}]}
    evaluate_model(Fixed(), bench, "p", 8, tmp_path / "a", "v", "m")
    time.sleep(1.1)
    evaluate_model(Fixed(), bench, "p", 8, tmp_path / "b", "v", "m")
    for name in ("summary.json", "b.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


# --------------------------------------------------------------------------- progress


def test_progress_updates_one_line_on_a_terminal_and_logs_now_and_then_elsewhere():
    assert parse_progress("\rgenerate:  40%|####      | 40/100 [00:10<00:15,  4.0seq/s]") == (
        "generate 40% 40/100 [00:10<00:15,  4.0seq/s]"
    )
    assert parse_progress("just a print\n") is None

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = iter(range(0, 1000, 5)).__next__
    tty = Tty()
    line = ProgressLine("[2/7] unify", tty, clock=clock)
    for k in range(1, 4):
        line.write(f"\r 5{k}%|#####     | {k}/9 [00:0{k}<00:05, 1.0it/s]")
    line.close()
    shown = tty.getvalue()
    assert shown.count("\r[2/7] unify running") == 3 and "\n" not in shown
    log = io.StringIO()
    line = ProgressLine("[2/7] unify", log, every=30, clock=clock)
    for k in range(1, 20):
        line.write(f"\r{k}%|#         | {k}/100 [00:01<00:05, 1.0it/s]")
    assert 2 <= len(log.getvalue().splitlines()) <= 5  # every 30 s of a 5 s clock, not 19


def test_a_notebooks_progress_reaches_the_runner(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    body = BODY.replace(
        "if fail:",
        "from tqdm import tqdm\nfor _ in tqdm(range(3), desc='work'): time.sleep(0.2)\nif fail:",
    )
    nb = make_nb(nbs / "p.ipynb", body)
    rdir = tmp_path / "run"
    plan = [Execution("p", nb, {"out": str(rdir / "p/a.txt")}, outputs=["p/a.txt"])]
    shown = io.StringIO()
    execute_plan(plan, rdir, profile=None, kernel="python3", log=lambda s: None, progress_out=shown)
    assert "[1/1] p" in shown.getvalue() and "work 100% 3/3" in shown.getvalue()
