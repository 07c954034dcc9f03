"""Does a smoke training give the same result on a quiet and on a loaded machine?

Runs one notebook (an exercise's reference solution, or one of its flawed samples) through
both stages exactly as grading does, once per entry of --runs: `quiet`, or `hog` with one
busy-looping process per CPU competing for the cores the whole time. Prints, per run, a hash
of the saved training history (every loss and accuracy at full precision: equal hashes mean
bit-identical training), the last epoch's loss, what the hidden checks measured, the stage-1
seconds and the load average. --env KEY=VALUE adds to the kernel's environment (an experiment
on thread counts and flags). With --seeds, the same for each seed (the noise around a
threshold). One run at a time: the point is to compare like with like.
Usage: .venv/bin/python bench/reproducibility.py --exercise signs_cnn --runs quiet,hog,quiet
       .venv/bin/python bench/reproducibility.py --exercise fashion_vgg \
           --sample horizontal_flip --seeds 0,1,2 --runs quiet
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from deepgrade import execute
from deepgrade.batch import batch_settings
from deepgrade.exercise import load_exercise
from deepgrade.grade import grade_submission
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project
from deepgrade.samples import apply_edits, load_samples
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]
HOG = "while True: pass"
SHOWN = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
         "TF_DETERMINISTIC_OPS", "TF_ENABLE_ONEDNN_OPTS", "PYTHONHASHSEED")  # fmt: skip


@contextmanager
def hogging(enabled: bool) -> Iterator[None]:
    """One busy-looping process per CPU while the block runs."""
    procs = (
        [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(os.cpu_count() or 1)]
        if enabled
        else []
    )
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def notebook_for(project: Project, exercise: str, sample: str | None, out: Path) -> Path:
    spec = load_exercise(project.autograder, exercise)
    solution = project.solutions / spec.name / spec.notebook
    if sample is None:
        return solution
    chosen = [s for s in load_samples(spec.directory) if s.name == sample]
    if not chosen:
        raise SystemExit(f"{exercise} has no sample {sample!r}")
    return apply_edits(solution, chosen[0], out / f"{sample}.ipynb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="signs_cnn")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--sample", help="a sample from samples.toml (default: the solution)")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--runs", default="quiet,hog", help="comma-separated: quiet or hog")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE added to the kernel's environment"
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    if extra_env:  # an experiment: what the engine's kernel environment would be with these
        engine_env = execute.kernel_env
        execute.kernel_env = lambda home, gpu=None: {**engine_env(home, gpu), **extra_env}
    project = Project(ROOT)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = args.runs.split(",")
    if not set(runs) <= {"quiet", "hog"}:
        raise SystemExit("--runs takes quiet and hog")
    label = f"{args.exercise}/{args.sample or 'reference'} ({args.profile})"
    print(
        f"{label}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start, kernel env "
        f"{ {k: v for k, v in execute.kernel_env('/home', None).items() if k in SHOWN} }",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = batch_settings(project, args.exercise, args.profile, Path(tmp), unsafe=False)
        source = notebook_for(project, args.exercise, args.sample, Path(tmp))
        for seed in seeds:
            for index, run in enumerate(runs):
                # Exactly as grading does (both stages, grade-time cells); only SEED differs.
                work = Path(tmp) / f"seed{seed}-{index}"
                profile = resolve_profile(base.spec, args.profile, {"SEED": seed})
                settings = replace(base, profile=profile, workdir=work)
                submission = Submission(f"seed{seed}", source)
                load_before = os.getloadavg()[0]
                with hogging(run == "hog"):
                    result = grade_submission(submission, settings)
                    load_after = os.getloadavg()[0]
                artifacts = work / f"{submission.student}-{submission.content_hash[:12]}"
                history_path = artifacts / "artifacts" / "history.json"
                if history_path.is_file():
                    raw = history_path.read_bytes()
                    digest = hashlib.sha256(raw).hexdigest()[:12]
                    loss = json.loads(raw).get("loss", [float("nan")])[-1]
                else:
                    digest, loss = "no-history", float("nan")
                measured = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.measurements.items()))
                print(
                    f"seed {seed} {run:5s}: {result.verdict}, history {digest}, "
                    f"last loss {loss!r}, {result.points:g}/{result.max_points:g} points, "
                    f"{measured}; stage 1 {result.stage1_seconds:.1f} s, "
                    f"load {load_before:.1f}->{load_after:.1f}",
                    flush=True,
                )
                time.sleep(1)


if __name__ == "__main__":
    main()
