"""Feedback pages: one self-contained HTML file per graded submission, for its student.

A page is rendered from what the gradebook stores (no re-grading), after redact.withhold, so a
result stored before a leak was fixed still renders clean. The template is autoescaped: a
student name or a message carrying HTML shows as text. Nothing on a page loads from the
network: styles are inline and pictures (when a page has them) are data URIs, so a page opens
from an LMS attachment or a file share exactly as it was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepgrade.charts import FRAME, confusion_table, learning_curves
from deepgrade.export import Graded
from deepgrade.profiles import keras_backend
from deepgrade.redact import Secrets, withhold
from deepgrade.results import SubmissionResult
from deepgrade.verdicts import explain

_TEMPLATES = "templates/feedback"
Thresholds = dict[tuple[str, str], Mapping[str, float]]  # (exercise, profile) -> thresholds
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
SLOWEST_CELLS = 8


@dataclass(frozen=True)
class Written:
    """The pages one call wrote, by (exercise, student)."""

    pages: dict[tuple[str, str], Path]


def safe_name(name: str) -> str:
    """`name` as one path component that no name can turn into a path ('../x', '.hidden')."""
    return _UNSAFE_NAME.sub("_", name).strip("._") or "_"


def shown_thresholds(autograder: Path, exercises: Iterable[str]) -> Thresholds:
    """Per (exercise, profile), the thresholds its pages may show (none where the spec says
    `show_thresholds = false`, or the exercise no longer loads)."""
    from deepgrade.errors import InputError
    from deepgrade.exercise import load_exercise

    shown: Thresholds = {}
    for name in sorted(set(exercises)):
        try:
            spec = load_exercise(autograder, name)
        except InputError:
            continue
        if spec.show_thresholds:
            for profile, settings in spec.profiles.items():
                shown[(name, profile)] = settings.for_backend(keras_backend()).thresholds
    return shown


def exercise_titles(autograder: Path, exercises: Iterable[str]) -> dict[str, str]:
    """Each exercise's title from its spec; one that no longer loads shows its name."""
    from deepgrade.errors import InputError
    from deepgrade.exercise import load_exercise

    titles: dict[str, str] = {}
    for name in sorted(set(exercises)):
        try:
            titles[name] = load_exercise(autograder, name).title
        except InputError:
            titles[name] = name
    return titles


def html_environment() -> Any:
    """The pages' templates: autoescaped (student text is text), strict about missing names."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("deepgrade", _TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
    )


def page_context(
    result: SubmissionResult,
    graded_at: str,
    title: str,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """What the page shows, from a result already passed through redact.withhold."""
    happened, todo = explain(result.verdict)
    limits = thresholds or {}
    return {
        "title": title,
        "result": result,
        "graded_at": graded_at,
        "happened": happened,
        "todo": todo,
        "lost": [c for c in result.checks if not c.passed],
        "measurements": [
            (name, value, limits.get(name)) for name, value in sorted(result.measurements.items())
        ],
        "short_hash": result.content_hash[:12],
        "slowest": sorted(result.cell_seconds, key=lambda cell: -cell[1])[:SLOWEST_CELLS],
        "rerun_names": sorted({name for run in result.reruns for name in run.measurements}),
        "confusion": None if result.confusion is None else confusion_table(*result.confusion),
        "curves": [(name, learning_curves(h)) for name, h in sorted(result.histories.items())],
        "frame": FRAME,
    }


def render_page(
    result: SubmissionResult,
    graded_at: str,
    title: str,
    secrets: Secrets | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> str:
    """One submission's feedback page as HTML text."""
    visible = withhold(result, secrets)
    template = html_environment().get_template("page.html.j2")
    return str(template.render(**page_context(visible, graded_at, title, thresholds)))


def write_pages(
    results: Sequence[Graded],
    out: Path,
    *,
    titles: Mapping[str, str],
    secrets: Mapping[str, Secrets] | None = None,
    thresholds: Thresholds | None = None,
) -> Written:
    """`out/<exercise>/<student>.html` for every result; returns where each page went."""
    found = secrets or {}
    pages: dict[tuple[str, str], Path] = {}
    for result, graded_at in results:
        title = titles.get(result.exercise, result.exercise)
        limits = (thresholds or {}).get((result.exercise, result.profile))
        html = render_page(result, graded_at, title, found.get(result.exercise), limits)
        path = out / safe_name(result.exercise) / f"{safe_name(result.student)}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        pages[(result.exercise, result.student)] = path
    return Written(pages)


def write_feedback(autograder: Path, results: Sequence[Graded], out: Path) -> Written:
    """write_pages with each exercise's title, secrets and shown thresholds from its spec."""
    from deepgrade.redact import project_secrets

    exercises = {result.exercise for result, _ in results}
    return write_pages(
        results,
        out,
        titles=exercise_titles(autograder, exercises),
        secrets=project_secrets(autograder, exercises),
        thresholds=shown_thresholds(autograder, exercises),
    )
