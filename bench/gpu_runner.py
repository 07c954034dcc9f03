"""Packing on one GPU, measured side by side: the same batch with K runs per GPU.

Grades N copies of the SIGNS reference solution (full profile) on one GPU with K = 1, 2, 4 runs
at once (each capped to its share of the GPU's memory) and prints, per K: the batch's wall
time, seconds per submission, the GPU's mean busy % and memory peak (NVML, sampled by the
host), and the points (the same for every K, or packing changed a grade).

Needs a GPU, nvidia-ml-py and a CUDA build of the backend (scripts/setup --gpu). The full
profile reads the imported SIGNS files; `--synthetic` grades on the look-alike at the real
sizes instead (the same shapes and epochs, so the same GPU work).
Usage: .venv/bin/python bench/gpu_runner.py [--gpu 0] [--per-gpu 1,2,4] [--submissions 8]
       [--profile full] [--synthetic]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from deepgrade import datasets, nvidia
from deepgrade.exercise import load_exercise
from deepgrade.gpubatch import GpuRequest, resolve_gpus
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import Gradebook
from deepgrade.graderversion import grader_version
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project, cache_dir
from deepgrade.runner import grade_batch
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "signs_cnn"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="0", help="the GPU: index, UUID or PCI bus id")
    parser.add_argument("--per-gpu", default="1,2,4", help="the K values to compare")
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--synthetic", action="store_true", help="the look-alike, real sizes")
    args = parser.parse_args()
    if not nvidia.read_host().gpus:
        print("bench/gpu_runner.py needs an NVIDIA GPU; this host's driver lists none")
        return 2
    project = Project(ROOT)
    spec = load_exercise(project.autograder, EXERCISE)
    files = None
    if args.synthetic:  # real sizes: the manifest's, as the full profile's files would be
        folder = datasets.ensure("signs", "synth", cache_dir())
        files = [folder / name for name in datasets.FILES["signs"]]
    profile = resolve_profile(spec, args.profile, data_files=files)
    release = project.release / spec.name / spec.notebook
    solution = project.solutions / spec.name / spec.notebook
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subs = []
        for index in range(args.submissions):
            folder = Path(tmp) / "subs" / f"s{index}"
            folder.mkdir(parents=True)
            shutil.copy(solution, folder / spec.notebook)
            subs.append(Submission(f"s{index}", folder / spec.notebook))
        for k in (int(v) for v in args.per_gpu.split(",")):
            setup = resolve_gpus(GpuRequest((args.gpu,), per_gpu=k), k, profile.spec)
            settings = GradeSettings(
                spec=spec,
                profile=profile,
                release_notebook=release,
                grader_version=grader_version(spec.directory, release),
                workdir=Path(tmp) / f"runs-k{k}",
            )
            monitor = setup.monitor()
            started = time.perf_counter()
            with Gradebook(Path(tmp) / f"k{k}.db") as book:
                if monitor is not None:
                    monitor.start()
                try:
                    results = grade_batch(
                        subs, settings, book, slots=setup.plan, monitor=monitor, force=True
                    )
                finally:
                    usage = monitor.stop() if monitor is not None else ()
            wall = time.perf_counter() - started
            points = sorted({r.points for r in results})
            verdicts = sorted({str(r.verdict) for r in results})
            busy = usage[0].busy_pct if usage else None
            peak = usage[0].memory_peak_mb if usage else None
            stage1 = statistics.median(r.stage1_seconds for r in results)
            rows.append((k, wall, wall / len(results), stage1, busy, peak, points, verdicts))
            accuracy = [
                r.measurements["test_accuracy"]
                for r in results
                if "test_accuracy" in r.measurements
            ]
            shown = f", test accuracy {min(accuracy):.3f}-{max(accuracy):.3f}" if accuracy else ""
            if busy is not None and peak is not None:  # now: a run cut short keeps its line
                shown += f", GPU busy {busy:.0f}%, memory peak {peak / 1024:.1f} GiB"
            print(f"K={k}: {wall:.0f} s, {verdicts}, points {points}{shown}", flush=True)
            lost = [c for r in results for c in r.checks if not c.passed]
            for check_id in sorted({c.check_id for c in lost}):
                message = next(c.message for c in lost if c.check_id == check_id)
                count = sum(c.check_id == check_id for c in lost)
                print(f"  lost {check_id} in {count} run(s): {message[:300]}", flush=True)
            for detail in sorted({r.detail for r in results if not r.checks}):
                print(f"  not graded: {detail[:300]}", flush=True)
    print()
    print(f"{EXERCISE} {args.profile}, {args.submissions} submissions on GPU {args.gpu}:")
    print("K  wall s  s/submission  stage-1 median s  busy %  memory peak GiB  points")
    base = rows[0][1]
    for k, wall, per, stage1, busy, peak, points, _ in rows:
        shown_busy = f"{busy:.0f}" if busy is not None else "-"
        shown_peak = f"{peak / 1024:.1f}" if peak is not None else "-"
        print(
            f"{k:<2} {wall:7.0f} {per:13.1f} {stage1:17.1f} {shown_busy:>7} {shown_peak:>16}"
            f"  {points}  ({base / wall:.2f}x K={rows[0][0]})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
