"""What the feedback pages and the class report add per submission, next to grading it.

Reads a gradebook (default: the demo's) and times, per stored result, rendering its feedback
page (learning-curve chart included) and, per exercise, the class report; prints each next to
the mean time grading took for the same results (stage 1 + stage 2, as stored).

    .venv/bin/python bench/feedback_pages.py [--gradebook .deepgrade/demo/gradebook.db]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from deepgrade.classreport import summarise, write_report
from deepgrade.exercise import load_exercise
from deepgrade.feedback import exercise_titles, write_pages
from deepgrade.gradebook import Gradebook
from deepgrade.project import Project
from deepgrade.redact import project_secrets


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gradebook", default=".deepgrade/demo/gradebook.db")
    args = parser.parse_args()
    project = Project.find()
    with Gradebook(Path(args.gradebook)) as book:
        results = book.latest()
    if not results:
        raise SystemExit(f"{args.gradebook}: no results (run deepgrade demo first)")
    exercises = sorted({r.exercise for r, _ in results})
    titles = exercise_titles(project.autograder, exercises)
    secrets = project_secrets(project.autograder, exercises)
    grading = statistics.fmean(r.stage1_seconds + r.stage2_seconds for r, _ in results)
    with tempfile.TemporaryDirectory() as tmp:
        write_pages(results[:1], Path(tmp) / "warm", titles=titles, secrets=secrets)  # imports
        started = time.perf_counter()
        write_pages(results, Path(tmp) / "pages", titles=titles, secrets=secrets)
        page = (time.perf_counter() - started) / len(results)
        started = time.perf_counter()
        for exercise in exercises:
            spec = load_exercise(project.autograder, exercise)
            profile = spec.profiles[results[0][0].profile]
            summary = summarise(
                results, exercise=exercise, title=spec.title, profile=profile.name,
                thresholds=profile.thresholds, borderline=profile.borderline,
            )  # fmt: skip
            write_report(summary, Path(tmp) / "reports")
        report = (time.perf_counter() - started) / len(results)
    with_curves = sum(1 for r, _ in results if r.histories)
    print(f"{len(results)} results of {len(exercises)} exercises ({with_curves} with curves)")
    print(f"grading (stored, mean):      {grading:8.2f} s per submission")
    print(f"feedback page (mean):        {page * 1000:8.1f} ms per submission")
    print(f"class reports (per result):  {report * 1000:8.1f} ms per submission")
    print(f"pages + reports / grading  = {(page + report) / grading:.4f}x")


if __name__ == "__main__":
    main()
