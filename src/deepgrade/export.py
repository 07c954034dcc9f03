"""Exports of the gradebook: a CSV for the LMS and Gradescope's results.json per submission.

Exporters share one shape (results in, files out) and are found by name in `EXPORTERS`, the way
papermill finds its I/O handlers, so a new LMS format is one function and one registry line.
Every result passes redact.withhold on its way out (its exercise's secrets when given, the
generic backstop otherwise), so even a result stored before a leak was fixed exports clean.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from deepgrade.redact import Secrets, withhold
from deepgrade.results import SubmissionResult

Graded = tuple[SubmissionResult, str]  # a result and when it was graded (ISO 8601)


class Exporter(Protocol):
    def __call__(
        self,
        results: Sequence[Graded],
        out: Path,
        *,
        secrets: Mapping[str, Secrets] | None = None,
    ) -> list[Path]: ...


def _visible(results: Sequence[Graded], secrets: Mapping[str, Secrets] | None) -> list[Graded]:
    """The results as students may read them (see redact): by exercise name, `secrets`."""
    found = secrets or {}
    return [(withhold(result, found.get(result.exercise)), when) for result, when in results]


CSV_COLUMNS = (
    "student",
    "exercise",
    "profile",
    "points",
    "max_points",
    "verdict",
    "detail",
    "unsafe",
    "graded_at",
    "content_hash",
)


def export_csv(
    results: Sequence[Graded], out: Path, *, secrets: Mapping[str, Secrets] | None = None
) -> list[Path]:
    """One row per student and exercise: what an LMS gradebook import expects."""
    results = _visible(results, secrets)
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
                    graded_at,
                    result.content_hash,
                )
            )
    return [out]


def gradescope_results(
    result: SubmissionResult, secrets: Secrets | None = None
) -> dict[str, object]:
    """Gradescope's autograder results.json for one submission (tests with name and score)."""
    result = withhold(result, secrets)
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


def export_gradescope(
    results: Sequence[Graded], out: Path, *, secrets: Mapping[str, Secrets] | None = None
) -> list[Path]:
    """`out/<exercise>/<student>/results.json`, one per submission."""
    written = []
    for result, _ in _visible(results, secrets):
        path = out / result.exercise / result.student / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gradescope_results(result), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


EXPORTERS: dict[str, Exporter] = {"csv": export_csv, "gradescope": export_gradescope}
