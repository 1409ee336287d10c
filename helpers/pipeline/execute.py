"""The Papermill runner: turn a profile into notebook executions, skip finished work, resume.

Usage: python -m helpers.run PARAMS [--only STAGE[:VARIANT]] [--from STAGE] [--force] [--dry-run]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from .artifacts import Digests, atomic_write_text, read_json, write_json
from .budget import plan_bounds, spend
from .config import load_profile, profile_hash, resolve_path
from .kernels import kernel_deaths_to, kernel_env, kernel_manager, pick_kernel, stop_as_ctrl_c
from .lock import RunLocked, run_lock
from .machine import describe, summary_line
from .paths import rel, repo_root, run_dir
from .plan import Execution, build_plan, covers, execution_fingerprint, select, stage_config
from .progress import ProgressLine, fmt_seconds
from .schema import Profile, ProfileError
from .secrets import redact, secret_values
from .stages import locate

TRACKED_PACKAGES = (
    *("torch", "transformers", "trl", "peft", "datasets", "papermill", "reasoning-gym"),
    *("math-verify", "vllm"),
)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _manifest(rdir: Path, ex: Execution) -> dict[str, Any] | None:
    path = rdir / "manifests" / f"{ex.slug}.json"
    if not path.exists():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def why_run(
    ex: Execution, rdir: Path, fingerprint: str, digests: Digests, manifest: dict | None
) -> str | None:
    """Why an execution must run, or None when its recorded result is still good to use.

    Its outputs must be byte for byte what it wrote: an output changed behind the runner's
    back (damaged, truncated, or rewritten by a notebook run by hand) means it runs again.
    """
    if manifest is None:
        return "never ran"
    status = manifest.get("status")
    if status == "running":  # the lock says no runner holds the folder: its runner died
        return "last run was killed or crashed before it finished"
    if status != "done":
        return f"last run {status}" if status else "never finished"
    if manifest.get("fingerprint") != fingerprint:
        return "settings or notebook code changed"
    for i in ex.inputs:
        if digests.path(rdir / i) != manifest.get("inputs", {}).get(i):
            return f"input {i} changed"
    recorded = manifest.get("outputs", {})
    for o in ex.outputs:
        now = digests.path(rdir / o)
        if now is None:
            return f"output {o} is missing"
        if now != recorded.get(o):
            return f"output {o} changed since this execution wrote it"
    return None


def check_inputs(ex: Execution, rdir: Path, producers: list[Execution], digests: Digests) -> None:
    """Refuse to run on an input that is not, byte for byte, what its producer wrote.

    Every byte of every input is read here (inputs are small next to the work an execution
    does), so damage that kept a file's size and time is caught before anything uses it; the
    digest cache is corrected on the way, so the next run redoes the producer.
    """
    for i in ex.inputs:
        producer = next((p for p in producers if any(covers(o, i) for o in p.outputs)), None)
        if producer is None or producer is ex:
            continue
        m = _manifest(rdir, producer) or {}
        out = next(o for o in producer.outputs if covers(o, i))
        if m.get("status") != "done" or out not in m.get("outputs", {}):
            continue
        if digests.path(rdir / out, trust_stat=False) != m["outputs"][out]:
            digests.save()
            raise ExecutionFailed(
                f"{ex.key} needs {i}, which changed after {producer.key} wrote it (damaged or "
                f"edited); run the same command again to redo {producer.key} first (or "
                f"--only {producer.key} --force)"
            )


class ExecutionFailed(RuntimeError):
    """A notebook failed; the message holds the cell's error and the executed notebook's path."""


class Interrupted(RuntimeError):
    """The user interrupted an execution (Ctrl-C); what finished before it is kept."""


def _scrub_notebook(path: Path, secrets: list[str], interrupted: bool = False) -> None:
    """Mask secrets in an executed notebook; mark one that was interrupted as such."""
    if not path.exists() or not (secrets or interrupted):
        return
    text = path.read_text()
    nb = json.loads(redact(text, secrets))
    if interrupted:
        meta = nb.setdefault("metadata", {}).setdefault("papermill", {})
        meta["exception"] = True
        meta["status"] = "interrupted"
        nb["cells"].insert(
            0,
            {
                "cell_type": "markdown",
                "id": "interrupted",
                "metadata": {},
                "source": ["**Interrupted** (Ctrl-C): this notebook did not finish."],
            },
        )
    atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute_plan(
    plan: list[Execution],
    rdir: Path,
    *,
    profile: Profile | None,
    force: bool = False,
    dry_run: bool = False,
    kernel: str | None = None,
    log=print,
    progress_out: Any = None,
    full_plan: list[Execution] | None = None,
) -> list[str]:
    """Run (or show) the plan; return each execution's outcome ('ran', 'skip', 'would run').

    `full_plan` (default: the plan) is where inputs' producers are looked up, so that a
    selection (--only) is still refused an input its producer did not write.
    """
    # Papermill's import takes a second: done before any manifest says "running", so a Ctrl-C
    # during it is not an interrupted execution.
    import papermill  # noqa: F401

    digests = Digests(rdir / "manifests" / ".digests.json")
    runner = _Runner(rdir, profile, kernel or pick_kernel(), digests, log, progress_out)
    outcomes: list[str] = []
    producers = list(full_plan or plan)
    redone: list[str] = []  # outputs a dry run's earlier executions would rewrite
    for i, ex in enumerate(plan, 1):
        # Decided at the execution's turn: an upstream execution that just ran may have
        # changed its inputs (or rewritten them byte for byte, which changes nothing).
        fp = execution_fingerprint(ex, stage_config(profile, ex) if profile else {})
        why = "forced" if force else why_run(ex, rdir, fp, digests, _manifest(rdir, ex))
        tag = f"[{i}/{len(plan)}] {ex.key:<28}"
        if dry_run:
            upstream = next((p for p in ex.inputs if any(covers(o, p) for o in redone)), None)
            why = why or (f"input {upstream} is redone upstream" if upstream else None)
            if why:
                redone += ex.outputs
            outcomes.append("would run" if why else "skip")
            log(
                f"{tag} {'run (' + why + ')' if why else 'skip (done, unchanged)'}{spend(profile, ex)}"
            )
        elif not why:
            outcomes.append("skip")
            log(f"{tag} skip (done, unchanged)")
        else:
            check_inputs(ex, rdir, producers, digests)
            runner.run(ex, tag, fp, why, forced=force or why == "forced")
            outcomes.append("ran")
    digests.save()
    return outcomes


class _Runner:
    """Executes one notebook at a time, with its manifest, progress line and masking."""

    def __init__(
        self, rdir: Path, profile: Profile | None, kernel: str, digests: Digests, log, out
    ) -> None:
        self.rdir, self.profile, self.kernel, self.digests = rdir, profile, kernel, digests
        self.log, self.out = log, out
        self.secrets = secret_values(profile) if profile else []
        self.t_run = time.time()
        self.machine = describe(profile)

    def manifest(self, ex: Execution, out_nb: Path, fp: str) -> dict[str, Any]:
        """The record of an execution as it starts."""
        return {
            "stage": ex.stage,
            "variant": ex.variant,
            "notebook": rel(ex.notebook),
            "executed_notebook": rel(out_nb),
            "parameters": ex.parameters,
            "fingerprint": fp,
            "profile_hash": profile_hash(self.profile) if self.profile else None,
            "inputs": {p: self.digests.path(self.rdir / p) for p in ex.inputs},
            "versions": _versions(),
            "machine": self.machine,
            "start": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": "running",
        }

    def run(self, ex: Execution, tag: str, fp: str, why: str, forced: bool) -> None:
        """Execute one notebook; its manifest says done, failed or interrupted at the end."""
        out_nb = self.rdir / "notebooks" / f"{ex.notebook.stem}__{ex.slug}.ipynb"
        out_nb.parent.mkdir(parents=True, exist_ok=True)
        path = self.rdir / "manifests" / f"{ex.slug}.json"
        manifest = self.manifest(ex, out_nb, fp)
        write_json(path, manifest)
        self.log(f"{tag} running ({why}; elapsed {fmt_seconds(time.time() - self.t_run)})")
        t0 = time.time()

        def end(status: str, **fields: Any) -> None:
            manifest.update(status=status, end=time.strftime("%Y-%m-%dT%H:%M:%S"), **fields)
            write_json(path, manifest)

        self.execute(ex, out_nb, tag, forced, end)
        missing = [o for o in ex.outputs if not (self.rdir / o).exists()]
        if missing:
            end("failed", error=f"outputs missing: {missing}")
            raise ExecutionFailed(
                f"{ex.key} finished without writing {missing}\n  executed notebook: {rel(out_nb)}"
            )
        outputs = {o: self.digests.path(self.rdir / o) for o in ex.outputs}
        end("done", seconds=round(time.time() - t0, 1), outputs=outputs)
        self.digests.save()
        self.log(f"{tag} done in {fmt_seconds(time.time() - t0)}")

    def execute(self, ex: Execution, out_nb: Path, tag: str, forced: bool, end: Any) -> None:
        """Papermill on the notebook; a failure or Ctrl-C ends the manifest and raises."""
        import papermill as pm
        from nbclient.exceptions import DeadKernelError

        kernel_log = out_nb.with_suffix(".kernel.log")
        line = ProgressLine(tag, self.out, heartbeat=True)
        try:
            kernel_deaths_to(kernel_log)
            with kernel_env(ex, forced):
                pm.execute_notebook(
                    str(ex.notebook),
                    str(out_nb),
                    parameters=ex.parameters,
                    kernel_name=self.kernel,
                    cwd=str(repo_root()),
                    progress_bar=False,
                    log_output=False,
                    stdout_file=line,
                    stderr_file=line,
                    kernel_manager_class=kernel_manager(kernel_log),
                )
        except (pm.PapermillExecutionError, KeyboardInterrupt, DeadKernelError) as exc:
            line.close()
            stopped = isinstance(exc, KeyboardInterrupt) or (
                getattr(exc, "ename", None) == "KeyboardInterrupt"  # the cell's own interrupt
            )
            _scrub_notebook(out_nb, self.secrets, interrupted=stopped)
            if stopped:
                end("interrupted", error="interrupted by the user")
                raise Interrupted(ex.key) from None
            if isinstance(exc, DeadKernelError):
                end("failed", error="the kernel died")
                raise ExecutionFailed(
                    f"{ex.key} failed: its kernel died (out of memory?); "
                    f"its log: {rel(kernel_log)}\n  executed notebook: {rel(out_nb)}"
                ) from None
            error = redact(f"{exc.ename}: {exc.evalue}", self.secrets)
            end("failed", error=error, failed_cell=exc.exec_count)
            raise ExecutionFailed(
                f"{ex.key} failed in cell {exc.exec_count}: {error}\n"
                f"  executed notebook: {rel(out_nb)}"
            ) from None
        line.close()
        _scrub_notebook(out_nb, self.secrets)


def closing_line(rdir: Path, outcomes: list[str], seconds: float, dry_run: bool) -> str:
    """What the run did, how long it took, and where its report is."""
    counts = {k: outcomes.count(k) for k in ("ran", "skip", "would run")}
    if dry_run:
        return f"dry run: {counts['would run']} would run, {counts['skip']} would be skipped"
    stage = sum(
        float(m.get("seconds") or 0)
        for p in sorted((rdir / "manifests").glob("*.json"))
        if (m := _read_manifest(p)) and m.get("status") == "done"
    )
    line = (
        f"finished: {counts['ran']} ran, {counts['skip']} skipped, in {fmt_seconds(seconds)} "
        f"(stage time of the whole run so far: {fmt_seconds(stage)})"
    )
    report = locate(rdir, "analyse", "report")
    return line + (f"; report: {rel(report)}" if report.exists() else "")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        m = read_json(path)
    except (ValueError, OSError):
        return None
    return m if isinstance(m, dict) and "stage" in m else None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__.splitlines()[0])
    ap.add_argument("params", help="profile YAML, e.g. params/tiny.yaml")
    ap.add_argument("--only", help="run one stage, or one stage:variant")
    ap.add_argument("--from", dest="start", help="start from this stage")
    ap.add_argument("--force", action="store_true", help="rerun even finished executions")
    ap.add_argument("--dry-run", action="store_true", help="print the plan with run/skip")
    ap.add_argument("--wait", action="store_true", help="queue behind a run on the same folder")
    ap.add_argument("--kernel", help="Jupyter kernel name (default: the project's)")
    args = ap.parse_args(argv)
    stop_as_ctrl_c()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    profile = None
    try:
        profile = load_profile(args.params)
        ppath = rel(resolve_path(args.params))
        full, left_out = build_plan(profile, ppath)
        plan = select(full, args.only, args.start)
        rdir = run_dir(profile.run)
        print(f"run '{profile.run}' -> {rel(rdir)}  ({len(plan)} executions)", flush=True)
        print(summary_line(describe(profile)), flush=True)
        for key, why in left_out:
            print(f"  left out {key}: {why}", flush=True)
        lock = (
            contextlib.nullcontext()
            if args.dry_run  # a dry run reads and changes nothing
            else run_lock(rdir, wait=args.wait, log=lambda s: print(s, flush=True))
        )
        t0 = time.time()
        with lock:
            outcomes = execute_plan(
                plan,
                rdir,
                profile=profile,
                force=args.force,
                dry_run=args.dry_run,
                kernel=args.kernel,
                log=lambda s: print(s, flush=True),
                full_plan=full,
            )
        print(closing_line(rdir, outcomes, time.time() - t0, args.dry_run), flush=True)
        if args.dry_run:
            print(f"the plan may spend {plan_bounds(profile, plan)}", flush=True)
    except Interrupted as exc:
        print(
            f"\ninterrupted during {exc}; finished work is kept: run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (ProfileError, ExecutionFailed, RunLocked) as exc:
        msg = redact(str(exc), secret_values(profile)) if profile else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
