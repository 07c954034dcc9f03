"""What the sandbox and the second stage cost, measured side by side in one run.

For the reference solution of an exercise (smoke profile), each round times:
  bare    `papermill` on the same prepared notebook, no sandbox (what a naive grader does);
  stage1  deepgrade's execute stage: the same papermill run inside bubblewrap, with limits;
  stage2  deepgrade's hidden checks on the artifacts, in a fresh sandboxed process.
Rounds alternate the order so a warm disk cache favours neither. Prints each round and the
ratios of medians.
Usage: .venv/bin/python bench/grading_overhead.py [--exercise signs_cnn] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepgrade.batch import batch_settings
from deepgrade.checks.runner import run_checks
from deepgrade.execute import execute_notebook
from deepgrade.grade import prepare_notebook
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]


def bare_papermill(
    notebook: Path, data_dir: Path, work: Path, parameters: dict[str, object]
) -> float:
    """The `papermill` command line itself, in a fresh process like a CLI user would run it."""
    artifacts = work / "bare-artifacts"
    artifacts.mkdir(parents=True)
    args = [
        sys.executable,
        "-m",
        "papermill",
        str(notebook),
        str(work / "bare-out.ipynb"),
        "-p",
        "DATA_DIR",
        str(data_dir),
        "-p",
        "ARTIFACT_DIR",
        str(artifacts),
        "--no-progress-bar",
    ]
    for key, value in parameters.items():
        args += ["-p", key, str(value)]
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=work)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="signs_cnn")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    project = Project(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        settings = batch_settings(project, args.exercise, "smoke", Path(tmp) / "runs", unsafe=False)
        spec = settings.spec
        profile = settings.profile
        limits = profile.spec
        prepared = Path(tmp) / "prepared.ipynb"
        solution = project.solutions / spec.name / spec.notebook
        assert not prepare_notebook(solution, settings, prepared)
        data_dir = profile.files[0].parent
        parameters = dict(profile.parameters)
        times: dict[str, list[float]] = {"bare": [], "stage1": [], "stage2": []}
        for round_ in range(args.rounds):
            work = Path(tmp) / f"round{round_}"
            work.mkdir()

            def sandboxed(work: Path = work) -> None:
                result = execute_notebook(
                    prepared,
                    parameters=parameters,
                    data_files=profile.files,
                    workdir=work / "sandboxed",
                    cell_timeout_s=limits.cell_timeout_s,
                    notebook_timeout_s=limits.notebook_timeout_s,
                    memory_mb=limits.memory_mb,
                    artifact_cap_mb=limits.artifact_cap_mb,
                )
                assert result.verdict == "graded", result.detail
                times["stage1"].append(result.seconds)
                started = time.perf_counter()
                report = run_checks(spec, profile, result.artifacts_dir, workdir=work / "sandboxed")
                times["stage2"].append(time.perf_counter() - started)
                assert report.points == report.max_points, report

            if round_ % 2:
                sandboxed()
                times["bare"].append(bare_papermill(prepared, data_dir, work, parameters))
            else:
                times["bare"].append(bare_papermill(prepared, data_dir, work, parameters))
                sandboxed()
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"medians over {args.rounds} rounds: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in median.items())
    )
    print(f"stage1 / bare papermill = {median['stage1'] / median['bare']:.2f}x")
    both = median["stage1"] + median["stage2"]
    print(f"(stage1 + stage2) / bare papermill = {both / median['bare']:.2f}x")


if __name__ == "__main__":
    main()
