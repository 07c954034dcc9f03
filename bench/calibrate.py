"""Calibrate an exercise's thresholds: the reference solution over many training seeds.

Each seed runs the reference solution through both stages exactly as grading does (sandbox,
the profile's parameters with SEED replaced) and collects what the hidden checks measured
(`measure(...)` in the checks, e.g. test_accuracy). Prints one line per seed and, per
measurement, min / median / max and the threshold `min - margin` rounded down, to be written
into spec.toml and the exercise's README.
Usage: .venv/bin/python bench/calibrate.py --exercise signs_cnn [--seeds 10] [--margin 0.05]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deepgrade.batch import batch_settings
from deepgrade.checks.runner import run_checks
from deepgrade.execute import execute_notebook
from deepgrade.grade import prepare_notebook
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="signs_cnn")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    project = Project(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        settings = batch_settings(project, args.exercise, args.profile, Path(tmp), unsafe=False)
        profile = settings.spec.profile(args.profile)
        prepared = Path(tmp) / "prepared.ipynb"
        solution = project.solutions / settings.spec.name / settings.spec.notebook
        assert not prepare_notebook(solution, settings, prepared)

        def one_seed(seed: int) -> tuple[int, float, float, float, dict[str, float]]:
            work = Path(tmp) / f"seed{seed}"
            stage1 = execute_notebook(
                prepared,
                parameters=dict(profile.parameters, SEED=seed, PROFILE=profile.name),
                data_files=settings.data_files,
                workdir=work,
                cell_timeout_s=profile.cell_timeout_s,
                notebook_timeout_s=profile.notebook_timeout_s,
                memory_mb=profile.memory_mb,
                artifact_cap_mb=profile.artifact_cap_mb,
            )
            report = run_checks(
                settings.spec,
                args.profile,
                stage1.artifacts_dir,
                settings.data_files,
                workdir=work,
                stage1_usage=stage1.cell_usage,
            )
            return seed, report.points, report.max_points, stage1.seconds, report.measurements

        with ThreadPoolExecutor(args.workers) as pool:
            rows = list(pool.map(one_seed, range(args.seeds)))
    by_name: dict[str, list[float]] = {}
    for seed, points, max_points, seconds, measured in rows:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(measured.items()))
        print(f"seed {seed}: {points:g}/{max_points:g} points, stage 1 {seconds:.1f} s, {shown}")
        for name, value in measured.items():
            by_name.setdefault(name, []).append(value)
    print(f"{args.exercise} ({args.profile}), {args.seeds} seeds, margin {args.margin}:")
    for name, values in sorted(by_name.items()):
        low = min(values)
        suggested = math.floor((low - args.margin) * 100) / 100
        print(
            f"  {name}: min {low:.4f}, median {statistics.median(values):.4f}, "
            f"max {max(values):.4f} -> threshold {suggested:.2f}"
        )


if __name__ == "__main__":
    main()
