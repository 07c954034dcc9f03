"""Exports of the gradebook: a CSV for the LMS and Gradescope's results.json per submission.

Exporters share one shape (results in, files out) and are found by name in `EXPORTERS`, the way
papermill finds its I/O handlers, so a new LMS format is one function and one registry line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from deepgrade.results import SubmissionResult

Graded = tuple[SubmissionResult, str]  # a result and when it was graded (ISO 8601)
Exporter = Callable[[Sequence[Graded], Path], list[Path]]

CSV_COLUMNS = (
    "student",
    "exercise",
    "profile",
    "points",
    "max_points",
    "verdict",
    "detail",
    "unsafe",
    "unlimited",
    "graded_at",
    "content_hash",
)


def export_csv(results: Sequence[Graded], out: Path) -> list[Path]:
    """One row per student and exercise: what an LMS gradebook import expects."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for result, graded_at in results:
            writer.writerow(
                (
                    result.student,
                    result.exercise,
                    result.profile,
                    f"{result.points:g}",
                    f"{result.max_points:g}",
                    str(result.verdict),
                    result.detail,
                    "yes" if result.unsafe else "no",
                    "yes" if result.unlimited else "no",
                    graded_at,
                    result.content_hash,
                )
            )
    return [out]


def gradescope_results(result: SubmissionResult) -> dict[str, object]:
    """Gradescope's autograder results.json for one submission (tests with name and score)."""
    return {
        "score": result.points,
        "execution_time": round(result.stage1_seconds + result.stage2_seconds, 1),
        "output": f"{result.verdict}: {result.detail}" if result.detail else str(result.verdict),
        "visibility": "visible",
        "tests": [
            {
                "name": check.title,
                "number": check.check_id,
                "score": check.points,
                "max_score": check.max_points,
                "status": "passed" if check.passed else "failed",
                "output": check.message,
            }
            for check in result.checks
        ],
    }


def export_gradescope(results: Sequence[Graded], out: Path) -> list[Path]:
    """`out/<exercise>/<student>/results.json`, one per submission."""
    written = []
    for result, _ in results:
        path = out / result.exercise / result.student / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gradescope_results(result), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


EXPORTERS: dict[str, Exporter] = {"csv": export_csv, "gradescope": export_gradescope}
