"""Calibrate an exercise's thresholds: the reference solution over many training seeds.

Each seed runs the reference solution through both stages exactly as grading does (sandbox,
the profile's parameters with SEED replaced) and collects what the hidden checks measured
(`measure(...)` in the checks, e.g. test_accuracy). Prints one line per seed and, per
measurement, min / median / max and the threshold `min - margin` rounded down, to be written
into spec.toml and the exercise's README.
With --sample, a flawed sample of samples.toml instead: how far its measurements sit from the
thresholds over the seeds (a sample within the noise would flip its checks).
Usage: .venv/bin/python bench/calibrate.py --exercise signs_cnn [--seeds 10] [--margin 0.05]
       .venv/bin/python bench/calibrate.py --exercise fashion_vgg --sample horizontal_flip
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from deepgrade.batch import batch_settings
from deepgrade.grade import grade_submission
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project
from deepgrade.results import Verdict
from deepgrade.samples import apply_edits, load_samples
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="signs_cnn")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", help="a flawed sample of samples.toml instead (its margin)")
    args = parser.parse_args()
    project = Project(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        base = batch_settings(project, args.exercise, args.profile, Path(tmp), unsafe=False)
        solution = project.solutions / base.spec.name / base.spec.notebook
        if args.sample:
            chosen = [s for s in load_samples(base.spec.directory) if s.name == args.sample]
            if not chosen:
                raise SystemExit(f"{args.exercise} has no sample {args.sample!r}")
            solution = apply_edits(solution, chosen[0], Path(tmp) / f"{args.sample}.ipynb")

        def one_seed(seed: int) -> tuple[int, float, float, float, dict[str, float]]:
            # Exactly as grading does (both stages, grade-time cells, hidden hand-over); only
            # SEED differs, and each seed gets its own folder.
            profile = resolve_profile(base.spec, args.profile, {"SEED": seed})
            settings = replace(base, profile=profile, workdir=Path(tmp) / f"seed{seed}")
            result = grade_submission(Submission(f"seed{seed}", solution), settings)
            if result.verdict is not Verdict.GRADED:
                print(f"seed {seed}: {result.verdict}: {result.detail}", flush=True)
            return (
                seed,
                result.points,
                result.max_points,
                result.stage1_seconds,
                result.measurements,
            )

        with ThreadPoolExecutor(args.workers) as pool:
            rows = list(pool.map(one_seed, range(args.seeds)))
    by_name: dict[str, list[float]] = {}
    for seed, points, max_points, seconds, measured in rows:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(measured.items()))
        print(f"seed {seed}: {points:g}/{max_points:g} points, stage 1 {seconds:.1f} s, {shown}")
        for name, value in measured.items():
            by_name.setdefault(name, []).append(value)
    label = f"{args.exercise}/{args.sample}" if args.sample else args.exercise
    print(f"{label} ({args.profile}), {args.seeds} seeds, margin {args.margin}:")
    for name, values in sorted(by_name.items()):
        low = min(values)
        suggested = math.floor((low - args.margin) * 100) / 100
        print(
            f"  {name}: min {low:.4f}, median {statistics.median(values):.4f}, "
            f"max {max(values):.4f} -> threshold {suggested:.2f}"
        )


if __name__ == "__main__":
    main()
