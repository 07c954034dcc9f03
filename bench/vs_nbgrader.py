"""The grader's own cost, side by side: deepgrade, nbgrader's autograde and bare papermill on
the same batch of SIGNS smoke submissions.

Builds nbgrader (0.9.6) in its own virtual environment (Keras and TensorFlow come from this
one through a .pth file, so every kernel trains with the same libraries), makes an nbgrader
course from the master notebook with one in-kernel accuracy test, and grades N copies of the
reference solution (smoke parameters, the synthetic SIGNS) with:
  deepgrade-1w / -2w  `deepgrade grade --workers 1|2` (sandboxed stage 1 + warm stage 2);
  nbgrader            `nbgrader autograde` (one kernel per notebook, tests in the kernel);
  papermill           the `papermill` command per notebook, nothing checked.
Each command runs in a cgroup of its own, so its CPU time covers its whole process tree
(cpuacct / cpu.stat); rounds rotate the order so a warm cache favours no one.
Usage: .venv/bin/python bench/vs_nbgrader.py [--submissions 10] [--rounds 2] [--work DIR]
       [--graders deepgrade-1w,nbgrader]  (fewer graders: more rounds in the same time)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepgrade.exercise import load_exercise
from deepgrade.limits import start_limited
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]
EXERCISE, ASSIGNMENT = "signs_cnn", "signs"
NBGRADER = "nbgrader==0.9.6"
GRADERS = ("deepgrade-1w", "deepgrade-2w", "nbgrader", "papermill")
TEST_CELL = (
    "# nbgrader's test: the accuracy on the test set, in the student's kernel\n"
    "assert model.evaluate(X_test, Y_test_hot, verbose=0)[1] >= {threshold}\n"
)


def nbgrader_venv(work: Path) -> Path:
    """nbgrader in a virtual environment of its own; this one's packages come after its own."""
    venv = work / "nbgrader-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "nbgrader").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", NBGRADER, "ipykernel"], check=True
        )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ours = "\n".join(site.getsitepackages())
    Path(purelib, "zz-deepgrade-libraries.pth").write_text(ours + "\n")
    return venv


def venv_env(venv: Path) -> dict[str, str]:
    """nbgrader runs its own tools (alembic) by name: its venv's bin comes first on PATH."""
    return {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}


def parameters_source(parameters: dict[str, object], data_dir: Path, artifacts: str) -> str:
    lines = [f"DATA_DIR = {str(data_dir)!r}", f"ARTIFACT_DIR = {artifacts!r}"]
    lines += [f"{key} = {value!r}" for key, value in parameters.items() if key != "PROFILE"]
    return "\n".join(lines) + "\n"


def nbgrader_notebook(
    master: Path, parameters: dict[str, object], data_dir: Path, threshold: float
) -> dict[str, object]:
    """The master notebook as nbgrader takes it: the smoke parameters written in, the markdown
    answers marked as graded by hand (nbgrader refuses ungraded ones), one test cell added."""
    nb: dict[str, Any] = json.loads(master.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = parameters_source(parameters, data_dir, "artifacts")
        meta = cell["metadata"].get("nbgrader")
        if cell["cell_type"] == "markdown" and meta and meta.get("solution"):
            meta.update(grade=True, points=1)  # a manually graded answer, as nbgrader has them
    nb["cells"].append(
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "accuracy-test",
            "metadata": {
                "nbgrader": {
                    "grade": True,
                    "grade_id": "accuracy",
                    "locked": True,
                    "points": 1,
                    "schema_version": 3,
                    "solution": False,
                }
            },
            "outputs": [],
            "source": TEST_CELL.format(threshold=threshold),
        }
    )
    return nb


def make_course(
    work: Path, venv: Path, nb: dict[str, object], notebook: str, students: list[str]
) -> Path:
    course = work / "nbgrader-course"
    shutil.rmtree(course, ignore_errors=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.ExecutePreprocessor.timeout = 600\n"
        "c.Autograde.create_student = True\n"
    )
    (course / "source" / ASSIGNMENT / notebook).write_text(json.dumps(nb))
    tool = str(venv / "bin" / "nbgrader")
    subprocess.run(
        [tool, "generate_assignment", ASSIGNMENT, "--force"], cwd=course, check=True,
        capture_output=True, env=venv_env(venv),
    )  # fmt: skip
    for student in students:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / notebook).write_text(json.dumps(nb))  # the solution, with the test cell
    return course


def measured(
    name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Wall and CPU seconds of `argv`'s whole process tree (its own cgroup)."""
    log = (cwd / f"{name}.log").open("wb")
    process = start_limited(
        argv, timeout_s=7200, memory_mb=16384, max_pids=8192, file_size_mb=4096,
        stdout=log, stderr=log, env=env, cwd=cwd,
    )  # fmt: skip
    finished = process.wait(7200)
    outcome = process.finish(timed_out=not finished)
    log.close()
    if outcome.returncode != 0:
        tail = (cwd / f"{name}.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{name} failed ({outcome.returncode}):\n{tail}")
    return {"wall": outcome.seconds, "cpu": outcome.cpu_seconds or float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / ".deepgrade" / "bench" / "vs_nbgrader"))
    parser.add_argument(
        "--graders", default=",".join(GRADERS),
        help=f"comma-separated, from {', '.join(GRADERS)} (nbgrader always runs: the baseline)",
    )  # fmt: skip
    args = parser.parse_args()
    wanted = {"nbgrader", *args.graders.split(",")}
    unknown = wanted - set(GRADERS)
    if unknown:
        parser.error(f"unknown grader(s): {', '.join(sorted(unknown))}")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    project = Project(ROOT)
    spec = load_exercise(project.autograder, EXERCISE)
    profile = resolve_profile(spec, "smoke")
    data_dir = profile.data_files[0].parent
    parameters = dict(profile.parameters)
    students = [f"s{i:02d}" for i in range(args.submissions)]
    solution = project.solutions / spec.name / spec.notebook
    subs = work / "submissions"
    shutil.rmtree(subs, ignore_errors=True)
    subs.mkdir()
    for student in students:
        shutil.copy(solution, subs / f"{student}.ipynb")
    venv = nbgrader_venv(work)
    master = project.source / spec.name / spec.notebook
    threshold = profile.thresholds["test_accuracy"]
    nb = nbgrader_notebook(master, parameters, data_dir, threshold)
    deepgrade = [sys.executable, "-m", "deepgrade", "--root", str(ROOT)]
    papermill = str(Path(sys.executable).parent / "papermill")
    env = {**os.environ}

    def deepgrade_run(workers: int) -> Callable[[Path], dict[str, float]]:
        def run(round_dir: Path) -> dict[str, float]:
            argv = [
                *deepgrade, "grade", str(subs), "--exercise", EXERCISE, "--profile", "smoke",
                "--workers", str(workers), "--gradebook", str(round_dir / "gb.db"),
                "--workdir", str(round_dir / "runs"), "--json",
            ]  # fmt: skip
            return measured(f"deepgrade-{workers}w", argv, round_dir, env)

        return run

    def nbgrader_run(round_dir: Path) -> dict[str, float]:
        course = make_course(round_dir, venv, nb, spec.notebook, students)
        argv = [str(venv / "bin" / "nbgrader"), "autograde", ASSIGNMENT, "--force"]
        return measured("nbgrader", argv, course, venv_env(venv))

    def papermill_run(round_dir: Path) -> dict[str, float]:
        script = round_dir / "papermill.sh"
        lines = ["set -e"]
        for student in students:
            out = round_dir / "papermill" / student
            lines.append(f"mkdir -p {out}/artifacts")
            lines.append(
                f"{papermill} --no-progress-bar {subs / (student + '.ipynb')} {out}/out.ipynb "
                f"-p DATA_DIR {data_dir} -p ARTIFACT_DIR {out}/artifacts "
                + " ".join(f"-p {k} {v}" for k, v in parameters.items() if k != "PROFILE")
            )
        script.write_text("\n".join(lines) + "\n")
        return measured("papermill", ["bash", str(script)], round_dir, env)

    graders: dict[str, Callable[[Path], dict[str, float]]] = {  # in GRADERS' order
        "deepgrade-1w": deepgrade_run(1),
        "deepgrade-2w": deepgrade_run(2),
        "nbgrader": nbgrader_run,
        "papermill": papermill_run,
    }
    names = [name for name in GRADERS if name in wanted]
    found: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            round_dir = work / f"round{round_}" / name
            shutil.rmtree(round_dir, ignore_errors=True)
            round_dir.mkdir(parents=True)
            figures = graders[name](round_dir)
            found[name].append(figures)
            print(
                f"round {round_ + 1} {name:13} wall {figures['wall']:7.1f} s  "
                f"cpu {figures['cpu']:7.1f} s", flush=True,
            )  # fmt: skip
        base = found["nbgrader"][-1]["cpu"]
        ratios = "  ".join(f"{name} {found[name][-1]['cpu'] / base:.3f}x" for name in names)
        print(f"round {round_ + 1} CPU vs nbgrader: {ratios}", flush=True)
    print()
    n = args.submissions
    base = statistics.median(f["cpu"] for f in found["nbgrader"])
    print(f"medians over {args.rounds} round(s), {n} SIGNS smoke submissions:")
    print("grader         wall s   CPU s   CPU s/submission   CPU vs nbgrader   paired")
    for name in names:
        wall = statistics.median(f["wall"] for f in found[name])
        cpu = statistics.median(f["cpu"] for f in found[name])
        paired = statistics.median(
            mine["cpu"] / theirs["cpu"]
            for mine, theirs in zip(found[name], found["nbgrader"], strict=True)
        )  # each round's ratio: a slow spell of the machine hits both sides of it
        line = f"{name:13} {wall:7.1f} {cpu:7.1f} {cpu / n:18.2f} {cpu / base:16.2f}x"
        print(f"{line} {paired:7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
