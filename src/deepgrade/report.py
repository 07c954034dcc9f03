"""What a person reads after grading: the class table in the terminal.

Kept apart from grading so the grader's output format can change without touching it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from deepgrade.results import SubmissionResult, Verdict

_VERDICT_STYLE = {Verdict.GRADED: "green", Verdict.GRADER_ERROR: "bold red"}


def results_table(results: Sequence[SubmissionResult], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("student")
    table.add_column("points", justify="right")
    table.add_column("verdict")
    table.add_column("lost points on", overflow="fold", max_width=60)
    table.add_column("run s", justify="right")
    table.add_column("check s", justify="right")
    for result in results:
        failed = ", ".join(c.check_id.split("::")[-1] for c in result.checks if not c.passed)
        verdict = str(result.verdict)
        if result.verdict is not Verdict.GRADED:
            verdict += f" ({result.detail[:60]})" if result.detail else ""
        table.add_row(
            result.student,
            f"{result.points:g}/{result.max_points:g}",
            f"[{_VERDICT_STYLE.get(result.verdict, 'yellow')}]{verdict}[/]",
            failed or "-",
            f"{result.stage1_seconds:.1f}",
            f"{result.stage2_seconds:.1f}",
        )
    return table


def print_results(results: Sequence[SubmissionResult], title: str, console: Console) -> None:
    console.print(results_table(results, title))
    unsafe = [r.student for r in results if r.unsafe]
    if unsafe:
        console.print(f"[yellow]graded WITHOUT the sandbox (--unsafe): {', '.join(unsafe)}[/]")
