"""Stage 2: the hidden checks, plain pytest files run in a fresh (sandboxed) process.

`plugin` is the pytest plugin the checks run under (options, the `points` marker, fixtures, the
results file); `runner` starts pytest in the sandbox and turns that file into a CheckReport.
The results file format lives here, beside neither, so the writer (inside the sandbox) and the
reader (the orchestrator) cannot drift apart, and reading it costs no pytest import.

Results file (JSON, written atomically, first right after collection, then at the end):
    {"version": 1, "complete": bool, "error": str | null,
     "checks": [{"check_id", "title", "points", "max_points", "passed", "message"}, ...],
     "measurements": {name: number}}   # what the checks measured, e.g. the test accuracy
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from deepgrade.errors import InputError
from deepgrade.results import CheckResult

RESULTS_VERSION = 1


def write_results(
    path: Path,
    checks: Sequence[CheckResult],
    *,
    error: str | None,
    complete: bool,
    measurements: Mapping[str, float] | None = None,
) -> None:
    """Replace `path` atomically, so a reader never sees half a file even if pytest dies."""
    data = {
        "version": RESULTS_VERSION,
        "complete": complete,
        "error": error,
        "checks": [asdict(check) for check in checks],
        "measurements": dict(measurements or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check(raw: Any, path: Path) -> CheckResult:
    if not isinstance(raw, dict):
        raise InputError(path, "a check entry is not an object")
    try:
        return CheckResult(
            check_id=str(raw["check_id"]),
            title=str(raw["title"]),
            points=float(raw["points"]),
            max_points=float(raw["max_points"]),
            passed=bool(raw["passed"]),
            message=str(raw.get("message", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"a check entry is malformed ({exc})") from None


def read_measurements(path: Path) -> dict[str, float]:
    """The numbers the checks measured (empty when there are none or they are malformed)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get("measurements", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def read_results(path: Path) -> tuple[tuple[CheckResult, ...], str | None, bool]:
    """(checks, error, complete) from a results file; InputError when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable results file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("version") != RESULTS_VERSION:
        raise InputError(path, f"not a version {RESULTS_VERSION} results file")
    raw_checks = data.get("checks")
    if not isinstance(raw_checks, list):
        raise InputError(path, "results file has no list of checks")
    error = data.get("error")
    checks = tuple(_check(raw, path) for raw in raw_checks)
    return checks, (str(error) if error is not None else None), bool(data.get("complete"))
