"""The Papermill runner: turn a profile into notebook executions, skip finished work, resume.

Usage: python -m helpers.run PARAMS [--only STAGE[:VARIANT]] [--from STAGE] [--force] [--dry-run]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import hash_path, read_json, write_json
from .config import STAGES, Profile, ProfileError, load_profile, profile_hash, resolve_path
from .paths import rel, repo_root, run_dir

NOTEBOOKS = {
    "collect": "01_collect.ipynb",
    "unify": "02_unify_format.ipynb",
    "mix": "03_mix_data.ipynb",
    "sft": "04_sft.ipynb",
    "explore": "05_explore.ipynb",
    "dpo": "06_dpo.ipynb",
    "evaluate": "07_evaluate.ipynb",
    "analyse": "08_analyse_tables.ipynb",
}
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

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.variant}" if self.variant else self.stage

    @property
    def slug(self) -> str:
        return self.key.replace(":", "__")


def _variant_model_inputs(profile: Profile, name: str) -> list[str]:
    kind = next(v.kind for v in profile.variants if v.name == name)
    return [] if kind == "backbone" else [f"models/{name}"]


def build_plan(
    profile: Profile, profile_path: str, notebooks_dir: Path | None = None
) -> list[Execution]:
    """Expand a profile's stages and variants into executions, in order; skip unbuilt stages."""
    nb_dir = notebooks_dir or repo_root() / "notebooks"
    base = {"profile": profile_path}
    plan: list[Execution] = []
    for stage in STAGES:
        if stage not in profile.stages:
            continue
        nb = nb_dir / NOTEBOOKS[stage]
        if stage == "collect":
            plan.append(Execution(stage, nb, dict(base), outputs=["collect/responses.jsonl"]))
        elif stage == "unify":
            plan.append(
                Execution(
                    stage,
                    nb,
                    dict(base),
                    inputs=["collect/responses.jsonl"],
                    outputs=["unify/demos.jsonl"],
                )
            )
        elif stage == "mix":
            plan.append(
                Execution(
                    stage,
                    nb,
                    dict(base),
                    inputs=["unify/demos.jsonl"],
                    outputs=[f"mix/{m}.jsonl" for m in profile.mixtures],
                )
            )
        elif stage == "sft":
            for v in profile.variants:
                if v.kind == "sft" and v.explore_iterations == 0:
                    plan.append(
                        Execution(
                            stage,
                            nb,
                            {**base, "variant": v.name},
                            v.name,
                            inputs=[f"mix/{v.mixture}.jsonl"],
                            outputs=[f"models/{v.name}"],
                        )
                    )
        elif stage == "evaluate":
            for v in profile.variants:
                plan.append(
                    Execution(
                        stage,
                        nb,
                        {**base, "variant": v.name},
                        v.name,
                        inputs=_variant_model_inputs(profile, v.name),
                        outputs=[f"eval/{v.name}/summary.json"],
                    )
                )
        elif stage == "analyse":
            plan.append(
                Execution(
                    stage,
                    nb,
                    dict(base),
                    inputs=[f"eval/{v.name}/summary.json" for v in profile.variants],
                    outputs=["REPORT.md"],
                )
            )
        # explore and dpo join the plan when their notebooks are built (later issues)
    # Keep what can run: its notebook exists and an earlier execution produces each input.
    kept: list[Execution] = []
    for ex in plan:
        produced = {o for k in kept for o in k.outputs}
        if ex.notebook.exists() and all(
            any(
                i == o or i.startswith(o.rstrip("/") + "/") or o.startswith(i.rstrip("/") + "/")
                for o in produced
            )
            for i in ex.inputs
        ):
            kept.append(ex)
    return kept


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# The profile sections each stage reads: editing another section (adding a variant, say)
# must not make finished stages run again.
STAGE_SECTIONS = {
    "collect": ("seed", "pools", "teachers", "benchmarks", "prompt_file"),
    "unify": ("seed", "teachers", "benchmarks", "unify", "backbone", "sft", "prompt_file"),
    "mix": ("seed", "pools", "mixtures"),
    "sft": ("seed", "backbone", "sft", "prompt_file"),
    "evaluate": ("seed", "backbone", "generation", "benchmarks", "prompt_file"),
}


def stage_config(profile: Profile, ex: Execution) -> dict[str, Any]:
    """Return the part of the profile an execution depends on."""
    data = profile.model_dump(mode="json")
    sections = STAGE_SECTIONS.get(ex.stage)
    if sections is None:
        return data
    out = {k: data[k] for k in sections}
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
    """Hash what decides an execution's result apart from its inputs: settings and code."""
    h = hashlib.sha256()
    h.update(json.dumps(ex.parameters, sort_keys=True).encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    # Code only: re-executing a notebook to refresh its committed outputs changes nothing it
    # computes, and used to make the runner redo every stage of every run.
    h.update(notebook_code(ex.notebook).encode())
    return h.hexdigest()[:16]


def _is_current(ex: Execution, rdir: Path, fingerprint: str) -> bool:
    manifest = rdir / "manifests" / f"{ex.slug}.json"
    if not manifest.exists():
        return False
    try:
        m = read_json(manifest)
    except ValueError:
        return False
    if m.get("status") != "done" or m.get("fingerprint") != fingerprint:
        return False
    if any(hash_path(rdir / i) != m.get("inputs", {}).get(i) for i in ex.inputs):
        return False
    return all((rdir / o).exists() for o in ex.outputs)


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


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def execute_plan(
    plan: list[Execution],
    rdir: Path,
    *,
    profile: Profile | None,
    force: bool = False,
    dry_run: bool = False,
    kernel: str | None = None,
    log=print,
) -> list[str]:
    """Run (or show) the plan; return each execution's outcome ('ran', 'skip', 'would run')."""
    import papermill as pm

    kernel = kernel or pick_kernel()
    outcomes = []
    t_run = time.time()
    for i, ex in enumerate(plan, 1):
        fp = execution_fingerprint(ex, stage_config(profile, ex) if profile else {})
        current = not force and _is_current(ex, rdir, fp)
        tag = f"[{i}/{len(plan)}] {ex.key:<28}"
        if dry_run:
            outcomes.append("skip" if current else "would run")
            log(
                f"{tag} {'skip (done, inputs unchanged)' if current else 'run'}"
                f"  <- {ex.notebook.name}"
            )
            continue
        if current:
            outcomes.append("skip")
            log(f"{tag} skip (done, inputs unchanged)")
            continue
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
            "inputs": {p: hash_path(rdir / p) for p in ex.inputs},
            "versions": _versions(),
            "start": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": "running",
        }
        write_json(manifest_path, manifest)
        log(f"{tag} running  (elapsed {_fmt(time.time() - t_run)})")
        t0 = time.time()
        try:
            pm.execute_notebook(
                str(ex.notebook),
                str(out_nb),
                parameters=ex.parameters,
                kernel_name=kernel,
                cwd=str(repo_root()),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
            )
        except pm.PapermillExecutionError as exc:
            manifest.update(
                status="failed",
                end=time.strftime("%Y-%m-%dT%H:%M:%S"),
                error=f"{exc.ename}: {exc.evalue}",
                failed_cell=exc.exec_count,
            )
            write_json(manifest_path, manifest)
            raise ExecutionFailed(
                f"{ex.key} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                f"  executed notebook: {rel(out_nb)}"
            ) from None
        missing = [o for o in ex.outputs if not (rdir / o).exists()]
        if missing:
            manifest.update(status="failed", error=f"outputs missing: {missing}")
            write_json(manifest_path, manifest)
            raise ExecutionFailed(
                f"{ex.key} finished without writing {missing}\n  executed notebook: {rel(out_nb)}"
            )
        manifest.update(
            status="done",
            end=time.strftime("%Y-%m-%dT%H:%M:%S"),
            seconds=round(time.time() - t0, 1),
            outputs={o: hash_path(rdir / o) for o in ex.outputs},
        )
        write_json(manifest_path, manifest)
        outcomes.append("ran")
        log(f"{tag} done in {_fmt(time.time() - t0)}")
    return outcomes


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
    ap.add_argument("--kernel", help="Jupyter kernel name (default: the project's)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        profile = load_profile(args.params)
        ppath = rel(resolve_path(args.params))
        plan = select(build_plan(profile, ppath), args.only, args.start)
        rdir = run_dir(profile.run)
        print(f"run '{profile.run}' -> {rel(rdir)}  ({len(plan)} executions)", flush=True)
        execute_plan(
            plan,
            rdir,
            profile=profile,
            force=args.force,
            dry_run=args.dry_run,
            kernel=args.kernel,
            log=lambda s: print(s, flush=True),
        )
    except (ProfileError, ExecutionFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
