"""The Papermill runner: turn a profile into notebook executions, skip finished work, resume.

Usage: python -m helpers.run PARAMS [--only STAGE[:VARIANT]] [--from STAGE] [--force] [--dry-run]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import Digests, atomic_write_text, read_json, write_json
from .config import (
    FORCE_ENV,
    SECTIONS_ENV,
    Profile,
    ProfileError,
    load_profile,
    profile_hash,
    redact,
    resolve_path,
    secret_values,
)
from .lock import RunLocked, run_lock
from .paths import rel, repo_root, run_dir
from .progress import ProgressLine, fmt_seconds
from .stages import ALWAYS_READABLE
from .stages import STAGES as STAGE_TABLE

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "papermill",
    "reasoning-gym",
    "math-verify",
    "vllm",
)
DEFAULT_KERNEL = "slow-thinking"


@dataclass
class Execution:
    """One notebook execution: a stage, maybe a variant, its parameters, inputs and outputs."""

    stage: str
    notebook: Path
    parameters: dict[str, Any]
    variant: str | None = None
    inputs: list[str] = field(default_factory=list)  # relative to the run folder
    outputs: list[str] = field(default_factory=list)
    sections: tuple[str, ...] | None = None  # profile sections it depends on (None: all)

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.variant}" if self.variant else self.stage

    @property
    def slug(self) -> str:
        return self.key.replace(":", "__")


def _covers(output: str, path: str) -> bool:
    """Does writing `output` produce `path` (the same path, or one inside the other)?"""
    o, p = output.rstrip("/"), path.rstrip("/")
    return o == p or p.startswith(o + "/") or o.startswith(p + "/")


def build_plan(
    profile: Profile, profile_path: str, notebooks_dir: Path | None = None
) -> tuple[list[Execution], list[tuple[str, str]]]:
    """Expand the stage table for a profile into executions in dependency order.

    Returns (plan, left out): each execution left out comes with the reason, so nothing is
    dropped without a word.
    """
    nb_dir = notebooks_dir or repo_root() / "notebooks"
    base = {"profile": profile_path}
    candidates: list[Execution] = []
    left_out: list[tuple[str, str]] = []
    for st in STAGE_TABLE:
        variants = (
            [None] if st.per_variant is None else [v for v in profile.variants if st.per_variant(v)]
        )
        for v in variants:
            ex = Execution(
                st.name,
                nb_dir / st.notebook,
                {**base, "variant": v.name} if v else dict(base),
                v.name if v else None,
                inputs=st.reads(profile, v),
                outputs=st.writes(profile, v),
                sections=None if st.sections is None else (*ALWAYS_READABLE, *st.sections),
            )
            if st.name not in profile.stages:
                left_out.append((ex.key, "the profile's `stages` leaves this stage out"))
            elif not ex.notebook.exists():
                left_out.append((ex.key, f"its notebook {rel(ex.notebook)} is not built yet"))
            else:
                candidates.append(ex)
    # Dependency order, ties broken by the table's order: an execution runs as soon as every
    # input has been written by one before it.
    plan: list[Execution] = []
    pending = list(candidates)
    while pending:
        written = [o for ex in plan for o in ex.outputs]
        ready = next(
            (ex for ex in pending if all(any(_covers(o, i) for o in written) for i in ex.inputs)),
            None,
        )
        if ready is None:
            break
        plan.append(ready)
        pending.remove(ready)
    everything = [o for ex in candidates for o in ex.outputs]
    for ex in pending:
        missing = [i for i in ex.inputs if not any(_covers(o, i) for o in everything)]
        why = (
            f"nothing in the plan writes its input {missing[0]}"
            if missing
            else "its inputs come from executions that are left out"
        )
        left_out.append((ex.key, why))
    return plan, left_out


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def stage_config(profile: Profile, ex: Execution) -> dict[str, Any]:
    """Return the part of the profile an execution depends on (its stage record's sections)."""
    data = profile.model_dump(mode="json")
    if ex.sections is None:
        return data
    out = {k: data.get(k) for k in ex.sections if k not in ALWAYS_READABLE}
    if ex.variant:
        out["variant"] = next(v for v in data["variants"] if v["name"] == ex.variant)
    return out


def notebook_code(path: Path) -> str:
    """The code cells' sources of a notebook: what it does, without outputs or counts."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (ValueError, KeyError) as e:
        raise ProfileError(f"{path}: not a readable notebook ({e})") from e
    return "\n# %% cell\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c.get("cell_type") == "code"
    )


def execution_fingerprint(ex: Execution, config: dict[str, Any]) -> str:
    """Hash what decides an execution's result apart from its inputs: settings and code.

    The profile's path is not part of it (the same profile copied elsewhere is the same work);
    the sections the stage reads are.
    """
    h = hashlib.sha256()
    params = {k: v for k, v in ex.parameters.items() if k != "profile"}
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    # Code only: re-executing a notebook to refresh its committed outputs changes nothing it
    # computes, and used to make the runner redo every stage of every run.
    h.update(notebook_code(ex.notebook).encode())
    return h.hexdigest()[:16]


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
        producer = next((p for p in producers if any(_covers(o, i) for o in p.outputs)), None)
        if producer is None or producer is ex:
            continue
        m = _manifest(rdir, producer) or {}
        out = next(o for o in producer.outputs if _covers(o, i))
        if m.get("status") != "done" or out not in m.get("outputs", {}):
            continue
        if digests.path(rdir / out, trust_stat=False) != m["outputs"][out]:
            digests.save()
            raise ExecutionFailed(
                f"{ex.key} needs {i}, which changed after {producer.key} wrote it (damaged or "
                f"edited); run the same command again to redo {producer.key} first (or "
                f"--only {producer.key} --force)"
            )


def select(plan: list[Execution], only: str | None, start: str | None) -> list[Execution]:
    """Keep the executions --only and --from ask for; name the choices when nothing matches."""
    keys = [e.key for e in plan]
    if start:
        stages = [e.stage for e in plan]
        if start not in stages:
            raise ProfileError(
                f"--from {start}: expected a stage in this plan, one of {sorted(set(stages))}"
            )
        plan = plan[stages.index(start) :]
    if only:
        stage, _, variant = only.partition(":")
        chosen = [e for e in plan if e.stage == stage and (not variant or e.variant == variant)]
        if not chosen:
            raise ProfileError(f"--only {only}: expected a stage or stage:variant, one of {keys}")
        plan = chosen
    return plan


class ExecutionFailed(RuntimeError):
    """A notebook failed; the message holds the cell's error and the executed notebook's path."""


class Interrupted(RuntimeError):
    """The user interrupted an execution (Ctrl-C); what finished before it is kept."""


@contextlib.contextmanager
def _kernel_env(ex: Execution, forced: bool) -> Iterator[None]:
    """What the kernel inherits: the sections its profile may hand out (the execution's record
    lists them) and whether the run is forced (resumable partial outputs start afresh)."""
    values = {
        SECTIONS_ENV: None if ex.sections is None else ",".join(ex.sections),
        FORCE_ENV: "1" if forced else None,
    }
    old = {k: os.environ.get(k) for k in values}

    def put(items: dict[str, str | None]) -> None:
        for k, v in items.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    put(values)
    try:
        yield
    finally:
        put(old)


def _kernel_manager(log_path: Path) -> type:
    """Kernels over IPC sockets, their process output kept in a log file of the run.

    IPC: no TCP port, and no "running over TCP without encryption" warning for every stage.
    The log: a kernel's own messages (a traceback while it is shut down after Ctrl-C, say)
    belong beside its executed notebook, not in the runner's terminal.
    """
    import atexit
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    # The sockets are files named after `ip`, relative to the kernel's working directory (the
    # repository) by default: a killed run left them there. A private folder instead.
    sockets = Path(tempfile.mkdtemp(prefix="still-kernels-"))
    atexit.register(shutil.rmtree, sockets, ignore_errors=True)

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(sockets / "kernel"))
            super().__init__(**kwargs)

        async def start_kernel(self, **kw: Any) -> None:
            log = open(log_path, "a")  # noqa: SIM115 (the kernel process owns it from here)
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            try:
                await super().start_kernel(**kw)
            finally:
                log.close()  # the child keeps its own copy of the descriptor

    return IPCKernelManager


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
    import papermill as pm

    kernel = kernel or pick_kernel()
    secrets = secret_values(profile) if profile else []
    digests = Digests(rdir / "manifests" / ".digests.json")
    outcomes: list[str] = []
    t_run = time.time()
    producers = list(full_plan or plan)
    redone: list[str] = []  # outputs a dry run's earlier executions would rewrite
    for i, ex in enumerate(plan, 1):
        # Decided at the execution's turn: an upstream execution that just ran may have
        # changed its inputs (or rewritten them byte for byte, which changes nothing).
        fp = execution_fingerprint(ex, stage_config(profile, ex) if profile else {})
        why = "forced" if force else why_run(ex, rdir, fp, digests, _manifest(rdir, ex))
        tag = f"[{i}/{len(plan)}] {ex.key:<28}"
        if dry_run:
            upstream = next((p for p in ex.inputs if any(_covers(o, p) for o in redone)), None)
            why = why or (f"input {upstream} is redone upstream" if upstream else None)
            if why:
                redone += ex.outputs
            outcomes.append("would run" if why else "skip")
            log(f"{tag} {'run (' + why + ')' if why else 'skip (done, unchanged)'}")
            continue
        if not why:
            outcomes.append("skip")
            log(f"{tag} skip (done, unchanged)")
            continue
        check_inputs(ex, rdir, producers, digests)
        out_nb = rdir / "notebooks" / f"{ex.notebook.stem}__{ex.slug}.ipynb"
        out_nb.parent.mkdir(parents=True, exist_ok=True)
        manifest_path = rdir / "manifests" / f"{ex.slug}.json"
        manifest = {
            "stage": ex.stage,
            "variant": ex.variant,
            "notebook": rel(ex.notebook),
            "executed_notebook": rel(out_nb),
            "parameters": ex.parameters,
            "fingerprint": fp,
            "profile_hash": profile_hash(profile) if profile else None,
            "inputs": {p: digests.path(rdir / p) for p in ex.inputs},
            "versions": _versions(),
            "start": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": "running",
        }
        write_json(manifest_path, manifest)
        log(f"{tag} running ({why}; elapsed {fmt_seconds(time.time() - t_run)})")
        t0 = time.time()
        line = ProgressLine(tag, progress_out, heartbeat=True)

        def fail(status: str, error: str, manifest=manifest, path=manifest_path) -> None:
            manifest.update(status=status, end=time.strftime("%Y-%m-%dT%H:%M:%S"), error=error)
            write_json(path, manifest)

        try:
            with _kernel_env(ex, forced=force or why == "forced"):
                pm.execute_notebook(
                    str(ex.notebook),
                    str(out_nb),
                    parameters=ex.parameters,
                    kernel_name=kernel,
                    cwd=str(repo_root()),
                    progress_bar=False,
                    log_output=False,
                    stdout_file=line,
                    stderr_file=line,
                    kernel_manager_class=_kernel_manager(out_nb.with_suffix(".kernel.log")),
                )
        except pm.PapermillExecutionError as exc:
            line.close()
            _scrub_notebook(out_nb, secrets, interrupted=exc.ename == "KeyboardInterrupt")
            if exc.ename == "KeyboardInterrupt":
                fail("interrupted", "interrupted by the user")
                raise Interrupted(ex.key) from None
            error = redact(f"{exc.ename}: {exc.evalue}", secrets)
            fail("failed", error)
            manifest.update(failed_cell=exc.exec_count)
            write_json(manifest_path, manifest)
            raise ExecutionFailed(
                f"{ex.key} failed in cell {exc.exec_count}: {error}\n"
                f"  executed notebook: {rel(out_nb)}"
            ) from None
        except KeyboardInterrupt:
            line.close()
            _scrub_notebook(out_nb, secrets, interrupted=True)
            fail("interrupted", "interrupted by the user")
            raise Interrupted(ex.key) from None
        line.close()
        _scrub_notebook(out_nb, secrets)
        missing = [o for o in ex.outputs if not (rdir / o).exists()]
        if missing:
            fail("failed", f"outputs missing: {missing}")
            raise ExecutionFailed(
                f"{ex.key} finished without writing {missing}\n  executed notebook: {rel(out_nb)}"
            )
        manifest.update(
            status="done",
            end=time.strftime("%Y-%m-%dT%H:%M:%S"),
            seconds=round(time.time() - t0, 1),
            outputs={o: digests.path(rdir / o) for o in ex.outputs},
        )
        write_json(manifest_path, manifest)
        digests.save()
        outcomes.append("ran")
        log(f"{tag} done in {fmt_seconds(time.time() - t0)}")
    digests.save()
    return outcomes


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
    report = rdir / "REPORT.md"
    return line + (f"; report: {rel(report)}" if report.exists() else "")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        m = read_json(path)
    except (ValueError, OSError):
        return None
    return m if isinstance(m, dict) and "stage" in m else None


def pick_kernel() -> str:
    """Use the project's registered kernel when present, else the default python3 kernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return DEFAULT_KERNEL if DEFAULT_KERNEL in specs else "python3"


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
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    profile = None
    try:
        profile = load_profile(args.params)
        ppath = rel(resolve_path(args.params))
        full, left_out = build_plan(profile, ppath)
        plan = select(full, args.only, args.start)
        rdir = run_dir(profile.run)
        print(f"run '{profile.run}' -> {rel(rdir)}  ({len(plan)} executions)", flush=True)
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
