"""The round trip with nbgrader itself: its course releases deepgrade's master notebook as it
is, a student submits into its `submitted/` folder, deepgrade grades that folder, and the
grades written into nbgrader's gradebook read back through nbgrader's own API.

nbgrader lives in a virtual environment of its own (deepgrade[nbgrader] is installed where
grades are exported, never in the grading environment); its deepgrade is this checkout's
source, which imports nothing beyond the standard library on the export path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from deepgrade import notebooks
from deepgrade.project import cache_dir

ROOT = Path(__file__).resolve().parents[1]
NBGRADER = "nbgrader==0.9.6"
ASSIGNMENT = "signs"  # nbgrader's name for it: not the exercise's
NOTEBOOK = "signs_cnn.ipynb"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nbgrader_python() -> Path:
    """nbgrader in its own virtual environment, built once per machine (deepgrade's cache)."""
    venv = cache_dir() / "venvs" / NBGRADER.replace("==", "-")
    python = venv / "bin" / "python"
    if not (venv / "bin" / "nbgrader").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", NBGRADER], check=True, timeout=1200
        )
    return python


def in_nbgrader(python: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def student_notebook(released: Path, out: Path, *, tamper: bool = False) -> None:
    """nbgrader's released notebook with the reference answers filled in (or a locked cell
    changed): what a student of the nbgrader course hands in."""
    answers = {
        notebooks.grade_id(cell): cell.source
        for cell in nbformat.read(ROOT / "solutions" / "signs_cnn" / NOTEBOOK, as_version=4).cells
        if notebooks.is_solution(cell)
    }
    nb = nbformat.read(released, as_version=4)
    for cell in nb.cells:
        gid = notebooks.grade_id(cell)
        if notebooks.is_solution(cell) and gid in answers:
            cell.source = answers[gid]
        elif tamper and gid == "setup":
            cell.source += "\nEPOCHS = 1\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)


def test_nbgrader_releases_the_master_and_reads_deepgrades_grades(
    nbgrader_python: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepgrade.cli import main

    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "source" / "signs_cnn" / NOTEBOOK, course / "source" / ASSIGNMENT)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n"
    )
    made = in_nbgrader(nbgrader_python, ["nbgrader", "generate_assignment", ASSIGNMENT], course)
    assert made.returncode == 0, made.stderr[-3000:]  # the master is valid nbgrader source
    released = course / "release" / ASSIGNMENT / NOTEBOOK
    for student, tamper, stamp in [("ana", False, "2026-12-07 20:00:00.000000 UTC"),
                                   ("bo", True, "2026-12-08 09:30:00.000000 UTC")]:  # fmt: skip
        folder = course / "submitted" / student / ASSIGNMENT
        student_notebook(released, folder / NOTEBOOK, tamper=tamper)
        (folder / "timestamp.txt").write_text(stamp)

    gradebook = tmp_path / "deepgrade.db"
    graded = main(["--root", str(ROOT), "grade", str(course / "submitted"), "--exercise",
                   "signs_cnn", "--assignment", ASSIGNMENT, "--gradebook", str(gradebook),
                   "--workdir", str(tmp_path / "runs"), "--json"])  # fmt: skip
    results = {r["student"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert graded == 0
    assert results["ana"]["points"] == results["ana"]["max_points"] == 25
    assert results["bo"]["verdict"] == "tampered"

    exported = in_nbgrader(
        nbgrader_python,
        [str(nbgrader_python), "-m", "deepgrade", "--root", str(ROOT), "export", "--format",
         "nbgrader", "--db", str(course / "gradebook.db"), "--assignment", ASSIGNMENT,
         "--exercise", "signs_cnn", "--gradebook", str(gradebook)],
        course,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "2 submission(s) of 'signs' (signs_cnn) with 17 check cells" in exported.stdout

    read_back = in_nbgrader(
        nbgrader_python,
        [str(nbgrader_python), "-c",
         "import json, sys\nfrom nbgrader.api import Gradebook\n"
         f"with Gradebook('sqlite:///{course / 'gradebook.db'}') as gb:\n"
         f"    subs = {{s: gb.find_submission({ASSIGNMENT!r}, s) for s in ('ana', 'bo')}}\n"
         "    print(json.dumps({s: [sub.score, sub.max_score, str(sub.timestamp)]"
         " for s, sub in subs.items()}))\n"],
        course,
    )  # fmt: skip
    assert read_back.returncode == 0, read_back.stderr[-3000:]
    scores = json.loads(read_back.stdout)
    assert scores["ana"][:2] == [25.0, 25.0]  # the markdown answer is worth 0 in nbgrader
    assert scores["bo"][:2] == [0.0, 25.0]
    assert scores["ana"][2].startswith("2026-12-07 20:00:00")
