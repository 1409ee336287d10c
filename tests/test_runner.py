"""The runner on small throwaway notebooks: skip, resume after a kill, failure, force, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.pipeline.execute import ExecutionFailed, execute_plan
from helpers.pipeline.plan import Execution, select


def make_nb(path: Path, body: str, params: str = "out = ''\nsleep = 0\nfail = False") -> Path:
    nb = new_notebook()
    p = new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, new_code_cell(textwrap.dedent(body))]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


BODY = """
import time, pathlib
# sleep while a flag file beside the output exists (tests remove it to let a rerun finish)
flag = pathlib.Path(out).parent.parent / "SLOW"
t0 = time.time()
while (sleep and flag.exists()) and time.time() - t0 < sleep:
    time.sleep(0.2)
if fail:
    raise ValueError("boom in the notebook")
p = pathlib.Path(out)
p.parent.mkdir(parents=True, exist_ok=True)
p.write_text(str(time.time()))
"""


def plan_in(tmp_path: Path, sleep2: float = 0, fail2: bool = False) -> tuple[list, Path]:
    nbs = tmp_path / "nbs"
    nbs.mkdir(exist_ok=True)
    rdir = tmp_path / "run"
    nb = make_nb(nbs / "stage.ipynb", BODY)
    plan = [
        Execution(
            "one",
            nb,
            {"out": str(rdir / "one/a.txt"), "sleep": 0, "fail": False},
            outputs=["one/a.txt"],
        ),
        Execution(
            "two",
            nb,
            {"out": str(rdir / "two/b.txt"), "sleep": sleep2, "fail": fail2},
            variant="v1",
            inputs=["one/a.txt"],
            outputs=["two/b.txt"],
        ),
    ]
    return plan, rdir


def run(plan, rdir, **kw):
    lines: list[str] = []
    outcomes = execute_plan(plan, rdir, profile=None, kernel="python3", log=lines.append, **kw)
    return outcomes, lines


def test_runs_then_skips_then_force(tmp_path):
    plan, rdir = plan_in(tmp_path)
    assert run(plan, rdir)[0] == ["ran", "ran"]
    manifest = json.loads((rdir / "manifests/two__v1.json").read_text())
    assert manifest["status"] == "done" and manifest["inputs"]["one/a.txt"]
    assert {"torch", "papermill", "python"} <= set(manifest["versions"])
    assert manifest["start"] and manifest["end"]
    assert (rdir / "notebooks/stage__two__v1.ipynb").exists()
    outcomes, lines = run(plan, rdir)
    assert outcomes == ["skip", "skip"] and "skip" in lines[0]
    assert run(plan, rdir, force=True)[0] == ["ran", "ran"]


def test_changed_input_reruns_only_downstream(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    plan[0].parameters["sleep"] = 0.01  # one reruns (new settings) and writes a new a.txt
    assert run(plan, rdir)[0] == ["ran", "ran"]
    assert run(plan, rdir)[0] == ["skip", "skip"]


def test_an_output_edited_by_hand_reruns_its_producer_then_downstream(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    (rdir / "one/a.txt").write_text("changed by hand")
    outcomes, lines = run(plan, rdir)
    assert outcomes == ["ran", "ran"]
    assert "output one/a.txt changed since this execution wrote it" in lines[0]
    assert (rdir / "one/a.txt").read_text() != "changed by hand"


def test_changed_parameters_rerun(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    plan[1].parameters["sleep"] = 0.01
    assert run(plan, rdir)[0] == ["skip", "ran"]


def test_reexecuted_notebook_skips_but_edited_code_reruns(tmp_path):
    plan, rdir = plan_in(tmp_path)
    run(plan, rdir)
    nb = nbformat.read(plan[0].notebook, as_version=4)
    # what re-executing a notebook to refresh its committed outputs changes
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="refreshed\n")]
    nb.cells[1].execution_count = 7
    nbformat.write(nb, plan[0].notebook)
    assert run(plan, rdir)[0] == ["skip", "skip"]
    nb.cells[1].source += "\n# an edit to the code"
    nbformat.write(nb, plan[0].notebook)
    assert run(plan, rdir)[0] == ["ran", "ran"]


def test_dry_run_prints_plan_and_runs_nothing(tmp_path):
    plan, rdir = plan_in(tmp_path)
    outcomes, lines = run(plan, rdir, dry_run=True)
    assert outcomes == ["would run", "would run"] and not (rdir / "one/a.txt").exists()
    assert "one" in lines[0] and "two:v1" in lines[1] and all(" run (" in ln for ln in lines)
    run(plan, rdir)
    assert run(plan, rdir, dry_run=True)[0] == ["skip", "skip"]


def test_failure_names_cell_error_and_executed_notebook(tmp_path):
    plan, rdir = plan_in(tmp_path, fail2=True)
    with pytest.raises(ExecutionFailed) as exc:
        run(plan, rdir)
    msg = str(exc.value)
    assert "two:v1 failed" in msg and "ValueError: boom in the notebook" in msg
    assert "stage__two__v1.ipynb" in msg
    manifest = json.loads((rdir / "manifests/two__v1.json").read_text())
    assert manifest["status"] == "failed"
    # what finished before the failure is kept and skipped next time
    plan[1].parameters["fail"] = False
    assert run(plan, rdir)[0] == ["skip", "ran"]


def test_select_only_and_from(tmp_path):
    plan, _ = plan_in(tmp_path)
    assert [e.key for e in select(plan, "two:v1", None)] == ["two:v1"]
    assert [e.key for e in select(plan, None, "two")] == ["two:v1"]
    with pytest.raises(Exception, match="expected a stage or stage:variant"):
        select(plan, "three", None)


def test_interrupted_run_resumes_unfinished_work(tmp_path):
    plan, rdir = plan_in(tmp_path, sleep2=60)
    rdir.mkdir(parents=True)
    (rdir / "SLOW").write_text("")
    script = tmp_path / "go.py"
    script.write_text(
        textwrap.dedent(f"""
        import pickle, sys
        from helpers.pipeline.execute import execute_plan
        plan = pickle.load(open({str(tmp_path / "plan.pkl")!r}, 'rb'))
        execute_plan(plan, __import__('pathlib').Path({str(rdir)!r}), profile=None,
                     kernel='python3')
    """)
    )
    import pickle

    (tmp_path / "plan.pkl").write_bytes(pickle.dumps(plan))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    manifest = rdir / "manifests/two__v1.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["status"] == "running":
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("stage two never started")
    time.sleep(3)  # inside the notebook's sleep now
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(manifest.read_text())["status"] == "running"
    assert not (rdir / "two/b.txt").exists()
    (rdir / "SLOW").unlink()  # same parameters: it reruns only because it never finished
    outcomes, _ = run(plan, rdir)
    assert outcomes == ["skip", "ran"]
