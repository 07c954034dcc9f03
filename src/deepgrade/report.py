"""What a person reads after grading: the class table in the terminal.

Kept apart from grading so the grader's output format can change without touching it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from deepgrade.deadlines import Deadlines
from deepgrade.results import SubmissionResult, Verdict

_VERDICT_STYLE = {Verdict.GRADED: "green", Verdict.GRADER_ERROR: "bold red"}
_CELL = re.compile(r"\bcell (\d+)")


def lost_summary(result: SubmissionResult, shown: int = 3) -> str:
    """The checks a submission lost points on, short enough for one table cell."""
    failed = [
        c.check_id.split("::")[-1].removeprefix("test_") for c in result.checks if not c.passed
    ]
    if not failed:
        return "-"
    if len(failed) == len(result.checks):
        return "all checks"
    more = f", +{len(failed) - shown} more" if len(failed) > shown else ""
    return ", ".join(failed[:shown]) + more


def verdict_label(result: SubmissionResult) -> str:
    match = _CELL.search(result.detail)
    where = f" (cell {match.group(1)})" if match and result.verdict is not Verdict.GRADED else ""
    runs = f", median of {len(result.reruns)} runs" if result.reruns else ""
    return f"{result.verdict}{where}{runs}"


def results_table(results: Sequence[SubmissionResult], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("student", overflow="fold")
    table.add_column("points", justify="right")
    table.add_column("verdict")
    table.add_column("lost points on", overflow="fold")
    table.add_column("run s", justify="right")
    table.add_column("check s", justify="right")
    for result in results:
        style = _VERDICT_STYLE.get(result.verdict, "yellow")
        table.add_row(
            result.student,
            f"{result.points:g}/{result.max_points:g}",
            f"[{style}]{verdict_label(result)}[/]",
            lost_summary(result),
            f"{result.stage1_seconds:.1f}",
            f"{result.stage2_seconds:.1f}",
        )
    return table


def check_summary_table(results: Sequence[SubmissionResult]) -> Table | None:
    """How many submissions lost each check, most lost first: what the batch struggled with."""
    counts: dict[str, list[Any]] = {}
    for result in results:
        for check in result.checks:
            entry = counts.setdefault(check.check_id, [check.title, 0, 0])
            entry[1] += int(not check.passed)
            entry[2] += 1
    lost = sorted(((n, total, title) for title, n, total in counts.values() if n), reverse=True)
    if not lost:
        return None
    table = Table(title="checks lost", title_justify="left")
    table.add_column("check", overflow="fold")
    table.add_column("lost by", justify="right")
    for n, total, title in lost:
        table.add_row(title, f"{n} of {total}")
    return table


def print_results(results: Sequence[SubmissionResult], title: str, console: Console) -> None:
    console.print(results_table(results, title))
    summary = check_summary_table(results)
    if summary is not None and len(results) > 1:
        console.print(summary)
    unlimited = [r.student for r in results if r.unlimited]
    if unlimited:
        console.print(
            "[yellow]graded WITHOUT memory or process limits (--allow-unlimited): "
            f"{', '.join(unlimited)}[/]"
        )
    unsafe = [r.student for r in results if r.unsafe]
    if unsafe:
        console.print(f"[yellow]graded WITHOUT the sandbox (--unsafe): {', '.join(unsafe)}[/]")


def lateness_table(results: Sequence[SubmissionResult], source: str) -> Table | None:
    """Who handed in late (or at an unknown time), and what it costs: the points earned, the
    penalty and the points that count, side by side. None when everyone was on time."""
    shown = [r for r in results if r.late is not None and (r.late.days_late or not r.late.known)]
    if not shown:
        return None
    table = Table(title=f"late submissions ({source})", title_justify="left")
    for column in ("student", "submitted", "due", "late", "earned", "penalty", "counts"):
        table.add_column(column, justify="right" if column in ("earned", "penalty") else "left")
    for result in sorted(shown, key=lambda r: r.student):
        late = result.late
        assert late is not None
        due = late.due + (" (extension)" if late.extended else "")
        if not late.known:
            table.add_row(result.student, "unknown", due, "not assessed", f"{result.points:g}")
            continue
        cutoff = "" if late.accepted else ", past the cutoff"
        table.add_row(
            result.student,
            result.submitted_at,
            due,
            f"{late.days_late} day(s){cutoff}",
            f"{result.points:g}",
            f"-{late.penalty:g}",
            f"{result.final_points:g}/{result.max_points:g}",
        )
    return table


def print_lateness(
    results: Sequence[SubmissionResult], deadlines: Deadlines, console: Console
) -> None:
    table = lateness_table(results, deadlines.path.name)
    if table is not None:
        console.print(table)
