"""What the student may learn about how their notebook ran: time per cell, the first error,
and their training curves.

Read on the host from stage 1's executed notebook (papermill records each cell's duration in
`metadata.papermill.duration`; an error output holds the traceback). The file was written
inside the sandbox, so it is read like any student file: bounded, numbers checked, text
cleaned. It earns no point: it only helps a student see where their time and their first
error went. The grader's own cells (the last ones, appended by grade.prepare_notebook) are
left out entirely: their times and their tracebacks are the grader's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
TRACEBACK_LINES = 25
TRACEBACK_CHARS = 4000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class RunLog:
    """Seconds per student code cell (1-based, as verdicts number them) and the first
    failing student cell's traceback, trimmed ("" when none or unknown)."""

    cell_seconds: tuple[tuple[int, float], ...] = ()
    traceback: str = ""


def _student_code_cells(nb: dict[str, Any], gradetime_count: int) -> list[dict[str, Any]]:
    code = [
        cell
        for cell in nb.get("cells", [])
        if isinstance(cell, dict)
        and cell.get("cell_type") == "code"
        and "injected-parameters" not in (cell.get("metadata", {}).get("tags") or [])
    ]
    return code[: len(code) - gradetime_count] if gradetime_count else code


def _duration(cell: dict[str, Any]) -> float | None:
    value = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(0.0, float(value))
    return None


def _traceback(cell: dict[str, Any]) -> str:
    for output in cell.get("outputs") or []:
        if isinstance(output, dict) and output.get("output_type") == "error":
            lines = [_ANSI.sub("", str(line)) for line in output.get("traceback") or []]
            text = "\n".join(lines).splitlines()[-TRACEBACK_LINES:]
            joined = "\n".join(text)
            return joined[-TRACEBACK_CHARS:]
    return ""


def read_run_log(executed: Path | None, gradetime_count: int, failed_cell: int | None) -> RunLog:
    """The run log of one executed notebook; an unreadable one gives an empty log."""
    if executed is None or not executed.is_file():
        return RunLog()
    if executed.stat().st_size > MAX_NOTEBOOK_BYTES:
        return RunLog()
    try:
        nb = json.loads(executed.read_text(encoding="utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError):
        return RunLog()
    if not isinstance(nb, dict):
        return RunLog()
    cells = _student_code_cells(nb, gradetime_count)
    seconds = tuple(
        (number, round(duration, 2))
        for number, cell in enumerate(cells, start=1)
        if (duration := _duration(cell)) is not None
    )
    traceback = ""
    if failed_cell is not None and 1 <= failed_cell <= len(cells):
        traceback = _traceback(cells[failed_cell - 1])
    return RunLog(seconds, traceback)


MAX_HISTORY_BYTES = 1024 * 1024
MAX_EPOCHS = 2000
MAX_METRICS = 12
_METRIC = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")


def read_histories(
    artifacts: Path, names: tuple[str, ...] | list[str]
) -> dict[str, dict[str, list[float]]]:
    """The training histories among the saved files (`history*.json`: {metric: [per epoch]}),
    by file name, keeping only what a chart needs: known-looking metric names, finite numbers,
    bounded sizes. The student's own record, shown back to them; it earns no point."""
    found: dict[str, dict[str, list[float]]] = {}
    for name in names:
        if not (name.startswith("history") and name.endswith(".json")):
            continue
        path = artifacts / name
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_HISTORY_BYTES:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        metrics: dict[str, list[float]] = {}
        for key, values in list(data.items())[:MAX_METRICS]:
            if not (isinstance(key, str) and _METRIC.match(key) and isinstance(values, list)):
                continue
            numbers = [
                float(v)
                for v in values[:MAX_EPOCHS]
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            ]
            if numbers and len(numbers) == len(values[:MAX_EPOCHS]):
                metrics[key] = numbers
        if metrics:
            found[name] = metrics
    return found
