"""How deepgrade's cost per submission holds up from 10 to 1,000 submissions, on the local
pool and on Ray (one and two local nodes), and what a class would take on N nodes.

The exercise is deepgrade.tinycourse's (a notebook that trains nothing), so what is measured is
the grader's own cost: sandbox, kernel, checks, gradebook. Each run is a whole process tree in
a cgroup of its own (`limits.start_limited`): the local run is `deepgrade grade --workers 2`;
a Ray run is a small script that starts a local cluster (`ray.cluster_utils.Cluster`, a head
with no task CPUs and 1 or 2 nodes of 2 CPUs, so both fit this machine) and grades through
`deepgrade grade --executor ray`, so the nodes' workers and sandboxes are counted too.

Printed side by side: per-submission wall and CPU seconds per size (flat: within 10% from 100
to 1,000), Ray's overhead per task over the local pool, the gradebook's writes per second, and
the projected wall time for 300 students x 5 exercises on N nodes, from the per-submission
costs given with --full (seconds of one full-profile submission on one node, per exercise: the
exercises' READMEs record them) and the measured overhead per task.

Usage: .venv/bin/python bench/scale.py [--sizes 10,100,1000] [--runs local,ray1,ray2]
           [--full signs_cnn=240,fashion_vgg=900,...] [--per-node 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

from deepgrade import tinycourse
from deepgrade.limits import start_limited

ROOT = Path(__file__).resolve().parents[1]
CLASS = 300 * 5  # students x exercises

RAY_RUN = """\
import subprocess, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 0}})
for _ in range({nodes}):
    cluster.add_node(num_cpus=2)
cluster.wait_for_nodes()
done = subprocess.run([*{grade!r}, "--executor", "ray", "--address", cluster.address])
cluster.shutdown()
sys.exit(done.returncode)
"""


def measured(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `argv`'s whole process tree, in a cgroup of its own."""
    with (cwd / "run.log").open("ab") as log:
        process = start_limited(
            argv, timeout_s=6 * 3600, memory_mb=16384, max_pids=16384, file_size_mb=8192,
            stdout=log, stderr=log, cwd=cwd,
        )  # fmt: skip
        finished = process.wait(6 * 3600)
        outcome = process.finish(timed_out=not finished)
    if outcome.returncode != 0:
        tail = (cwd / "run.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{argv[:4]} failed ({outcome.returncode}):\n{tail}")
    return outcome.seconds, outcome.cpu_seconds or math.nan


def grade_command(course: Path, run: Path) -> list[str]:
    return [
        sys.executable, "-m", "deepgrade", "--root", str(course), "grade",
        str(course / "submissions"), "--exercise", tinycourse.EXERCISE, "--json",
        "--gradebook", str(run / "gb.db"), "--workdir", str(run / "runs"),
    ]  # fmt: skip


def one_run(kind: str, size: int, work: Path) -> tuple[float, float]:
    run = work / f"{kind}-{size}"
    shutil.rmtree(run, ignore_errors=True)
    course = tinycourse.write_course(run / "course")
    students = [f"s{index:04d}" for index in range(size)]
    tinycourse.write_submissions(course / "submissions", students)
    grade = grade_command(course, run)
    if kind == "local":
        return measured([*grade, "--workers", "2"], run)
    script = run / "ray_run.py"
    script.write_text(RAY_RUN.format(nodes=int(kind.removeprefix("ray")), grade=grade))
    return measured([sys.executable, str(script)], run)


def gradebook_writes_per_second(count: int = 2000) -> float:
    """Results recorded one transaction each, as the driver and the local pool record them."""
    from deepgrade.gradebook import Gradebook
    from deepgrade.results import SubmissionResult, Verdict

    with tempfile.TemporaryDirectory() as scratch, Gradebook(Path(scratch) / "gb.db") as book:
        started = time.perf_counter()
        for index in range(count):
            book.record(
                SubmissionResult(
                    student=f"s{index}",
                    exercise="tiny",
                    profile="smoke",
                    content_hash=f"{index:064x}",
                    verdict=Verdict.GRADED,
                    detail="",
                    checks=(),
                    stage1_seconds=1.0,
                    stage2_seconds=0.5,
                )
            )
        return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", default="local,ray1,ray2")
    parser.add_argument("--full", default="", help="exercise=seconds,... on one node")
    parser.add_argument("--per-node", type=int, default=2, help="submissions at once per node")
    parser.add_argument("--work", default=str(ROOT / ".deepgrade" / "bench" / "scale"))
    args = parser.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.runs.split(",")
    table: dict[tuple[str, int], tuple[float, float]] = {}
    for size in sizes:
        for kind in kinds:
            table[kind, size] = one_run(kind, size, work)
            wall, cpu = table[kind, size]
            print(f"{kind:6} {size:5}: wall {wall:8.1f} s  CPU {cpu:8.1f} s", flush=True)
    print(f"\nper submission (wall / CPU seconds), {datetime.now(UTC):%Y-%m-%d}:")
    print("run    " + "".join(f"{size:>18}" for size in sizes) + "   flat 100->1000")
    for kind in kinds:
        cells = [table[kind, s] for s in sizes]
        line = "".join(
            f"{w / s:8.2f} /{c / s:7.2f}  " for (w, c), s in zip(cells, sizes, strict=True)
        )
        flat = ""
        if 100 in sizes and 1000 in sizes:
            low, high = table[kind, 100][1] / 100, table[kind, 1000][1] / 1000
            flat = f"{high / low - 1:+.0%} CPU {'(flat)' if abs(high / low - 1) <= 0.10 else ''}"
        print(f"{kind:6} {line} {flat}")
    biggest = max(sizes)
    overhead = 0.0
    if "local" in kinds:
        base_wall, base_cpu = table["local", biggest]
        for kind in (k for k in kinds if k != "local"):
            wall, cpu = table[kind, biggest]
            print(
                f"{kind} over local at {biggest}: {(cpu - base_cpu) / biggest:+.2f} CPU-s and "
                f"{(wall - base_wall) / biggest:+.2f} wall-s per task"
            )
            overhead = max(overhead, (wall - base_wall) / biggest)
    print(f"gradebook: {gradebook_writes_per_second():.0f} writes per second")
    costs = {
        name: float(seconds)
        for name, seconds in (pair.split("=") for pair in args.full.split(",") if pair)
    }
    if costs:
        mean = sum(costs.values()) / len(costs)
        print(
            textwrap.dedent(f"""
            projected: {CLASS} submissions (300 students x 5 exercises), {args.per_node} at once
            per node, {mean:.0f} s per full-profile submission on average ({", ".join(costs)}),
            plus {overhead:.2f} s of Ray per task:""").strip()
        )
        for nodes in (1, 2, 4, 8, 16):
            rounds = math.ceil(CLASS / (nodes * args.per_node))
            hours = rounds * (mean + max(overhead, 0.0)) / 3600
            print(f"  {nodes:2} node(s): {hours:6.1f} h")
    (work / "last.json").write_text(json.dumps({f"{k}-{s}": v for (k, s), v in table.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
