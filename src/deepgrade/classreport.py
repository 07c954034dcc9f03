"""The class report: one self-contained HTML page per exercise, with the CSV and JSON behind it.

What an instructor needs after a batch: the score distribution, how runs ended, which checks
the class struggles with (pass rate per check), each measurement against its threshold with
the profile's borderline band (spec.toml `borderline`) marked, the run-time distribution, and
the submissions a person must look at (grader errors, timeouts, out of memory, tampered
notebooks, measurements in the band).
Computed from the gradebook alone, like the feedback pages; charts are PNG data URIs.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepgrade.charts import png_data_uri
from deepgrade.export import Graded
from deepgrade.results import SubmissionResult, Verdict

NEEDS_A_PERSON = frozenset(
    {
        Verdict.GRADER_ERROR,
        Verdict.TIMEOUT,
        Verdict.OUT_OF_MEMORY,
        Verdict.KERNEL_DIED,
        Verdict.TAMPERED,
        Verdict.CHECK_TIMEOUT,
        Verdict.ARTIFACT_REJECTED,
        Verdict.RESULTS_REJECTED,
        Verdict.REFUSED,
    }
)


@dataclass(frozen=True)
class CheckRate:
    check_id: str
    title: str
    max_points: float
    passed: int
    graded: int

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass(frozen=True)
class Measured:
    """One measurement across the class, against its threshold when the profile has one."""

    name: str
    threshold: float | None
    margin: float | None  # the profile's borderline band around the threshold, if it has one
    values: tuple[tuple[str, float], ...]  # (student, value)

    def borderline(self) -> list[str]:
        """Who sits within the margin of the threshold (either side)."""
        if self.threshold is None or self.margin is None:
            return []
        limit = self.margin + 1e-9  # a value exactly on the band's edge is in it
        return [s for s, v in self.values if abs(v - self.threshold) <= limit]


@dataclass(frozen=True)
class ClassSummary:
    exercise: str
    title: str
    profile: str
    submissions: int
    max_points: float
    scores: tuple[tuple[str, float], ...]  # (student, points)
    verdicts: dict[str, int]
    checks: tuple[CheckRate, ...]
    measured: tuple[Measured, ...]
    run_seconds: tuple[float, ...]
    needs_a_person: tuple[tuple[str, str], ...]  # (student, why)

    @property
    def mean_score(self) -> float:
        return statistics.fmean(p for _, p in self.scores) if self.scores else 0.0


def summarise(
    results: Sequence[Graded],
    *,
    exercise: str,
    title: str,
    profile: str,
    thresholds: Mapping[str, float],
    borderline: Mapping[str, float],
) -> ClassSummary:
    """The class's results for one exercise and profile; grader errors are listed, not scored."""
    mine = [r for r, _ in results if r.exercise == exercise and r.profile == profile]
    scored = [r for r in mine if r.verdict is not Verdict.GRADER_ERROR]
    rates: dict[str, list[Any]] = {}
    for result in scored:
        for check in result.checks:
            entry = rates.setdefault(check.check_id, [check.title, check.max_points, 0, 0])
            entry[2] += int(check.passed)
            entry[3] += 1
    names = sorted({name for r in scored for name in r.measurements})
    measured = tuple(
        Measured(
            name,
            thresholds.get(name),
            borderline.get(name),
            tuple((r.student, r.measurements[name]) for r in scored if name in r.measurements),
        )
        for name in names
    )
    person: dict[str, list[str]] = {}
    for result in mine:
        if result.verdict in NEEDS_A_PERSON:
            person.setdefault(result.student, []).append(_why(result))
    for item in measured:
        for student in item.borderline():
            person.setdefault(student, []).append(
                f"{item.name} within {item.margin:g} of its threshold {item.threshold:g}"
            )
    return ClassSummary(
        exercise=exercise,
        title=title,
        profile=profile,
        submissions=len(mine),
        max_points=max((r.max_points for r in scored), default=0.0),
        scores=tuple((r.student, r.points) for r in scored),
        verdicts=dict(Counter(str(r.verdict) for r in mine).most_common()),
        checks=tuple(
            CheckRate(cid, t, m, p, n)
            for cid, (t, m, p, n) in sorted(rates.items(), key=lambda kv: kv[1][2] / kv[1][3])
        ),
        measured=measured,
        run_seconds=tuple(r.stage1_seconds + r.stage2_seconds for r in mine),
        needs_a_person=tuple((s, "; ".join(w)) for s, w in sorted(person.items())),
    )


def _why(result: SubmissionResult) -> str:
    return f"{result.verdict}: {result.detail}" if result.detail else str(result.verdict)


def charts(summary: ClassSummary) -> dict[str, str]:
    """Histogram of scores, of run times, and per measurement its values with the band."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    found: dict[str, str] = {}
    if summary.scores:
        fig = Figure(figsize=(6, 2.6))
        ax = fig.add_subplot()
        top = max(summary.max_points, max(p for _, p in summary.scores))
        edges = [x - 0.5 for x in range(int(top) + 2)] if top <= 60 else 20  # one bar a point
        ax.hist([p for _, p in summary.scores], bins=edges)
        ax.set_xlabel(f"points (of {summary.max_points:g})")
        ax.set_ylabel("submissions")
        found["scores"] = png_data_uri(fig)
    if summary.run_seconds:
        fig = Figure(figsize=(6, 2.2))
        ax = fig.add_subplot()
        ax.hist(summary.run_seconds, bins=min(20, max(5, len(summary.run_seconds))), color="gray")
        ax.set_xlabel("seconds per submission (notebook + checks)")
        found["run_seconds"] = png_data_uri(fig)
    for item in summary.measured:
        fig = Figure(figsize=(6, 1.8))
        ax = fig.add_subplot()
        values = [v for _, v in item.values]
        ax.plot(values, [0] * len(values), "o", alpha=0.6)
        if item.threshold is not None:
            if item.margin is not None:
                low, high = item.threshold - item.margin, item.threshold + item.margin
                ax.axvspan(low, high, color="orange", alpha=0.3)
            ax.axvline(item.threshold, color="red")
        ax.set_yticks([])
        ax.set_xlabel(item.name + ("" if item.threshold is None else " (red: threshold)"))
        found[f"measured:{item.name}"] = png_data_uri(fig)
    return found


def render(summary: ClassSummary) -> str:
    from deepgrade.feedback import html_environment

    template = html_environment().get_template("class.html.j2")
    return str(template.render(s=summary, charts=charts(summary)))


def write_report(summary: ClassSummary, out: Path) -> list[Path]:
    """`out/<exercise>.html`, `.csv` (one row per submission's checks) and `.json`."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{summary.exercise}.html"
    page.write_text(render(summary), encoding="utf-8")
    data = out / f"{summary.exercise}.json"
    data.write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    rates = out / f"{summary.exercise}-checks.csv"
    with rates.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("check_id", "title", "max_points", "passed", "graded", "pass_rate"))
        for c in summary.checks:
            writer.writerow((c.check_id, c.title, f"{c.max_points:g}", c.passed, c.graded,
                             f"{c.rate:.3f}"))  # fmt: skip
    return [page, data, rates]
