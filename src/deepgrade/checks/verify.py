"""The host's side of stage 2: what the check process reported, held against the checks' source.

Anything that gets code running in the check process (an exploit in a model file, say) can write
any snapshot, so a snapshot is a claim. The host reads the checks and their points from the
exercise's own test files (no import) and accepts a snapshot only when every check it names is
one of those, each at most once, with the marker's maximum, and 0 or all of it as it failed or
passed. Totals are never read: CheckReport sums the checks the host accepted.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deepgrade.checks.snapshots import (
    MAX_MESSAGE,
    NOT_RUN,
    Snapshot,
    SnapshotStream,
    decode_snapshot,
)
from deepgrade.results import CheckResult

REJECTED = (
    "this check earned nothing: the hidden checks' results for this submission failed the "
    "grader's validation, so a person will review it"
)


def _points_marker(node: ast.FunctionDef) -> float | None:
    for deco in node.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and ast.unparse(deco.func).endswith("mark.points")
            and len(deco.args) == 1
            and isinstance(deco.args[0], ast.Constant)
            and isinstance(deco.args[0].value, int | float)
            and not isinstance(deco.args[0].value, bool)
        ):
            return float(deco.args[0].value)
    return None


def static_checks(directory: Path) -> list[CheckResult]:
    """The checks of `directory` read from source (no import), all failed and not run.

    The host's list of what exists and what each is worth: results are validated against it,
    and it stands in when pytest died before its plugin could report the collected checks.
    """
    found: dict[str, CheckResult] = {}  # a name defined twice in a file: the last one counts
    for path in sorted(directory.glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            points = _points_marker(node)
            if points is None:
                continue
            doc = (ast.get_docstring(node) or "").strip() or node.name
            check_id = f"{path.stem}::{node.name}"
            found.pop(check_id, None)
            found[check_id] = CheckResult(
                check_id=check_id,
                title=doc.splitlines()[0],
                points=0.0,
                max_points=points,
                passed=False,
                message=NOT_RUN,
            )
    return list(found.values())


def collection_problem(first: Snapshot, static: Sequence[CheckResult]) -> str | None:
    """Why the checks pytest collected (the first snapshot, written before any check touched a
    student's file) show a fault of the grader's own, or None when they match the source."""
    if first.error:
        return first.error
    collected = [(c.check_id, c.max_points) for c in first.checks]
    expected = [(c.check_id, c.max_points) for c in static]
    if sorted(collected) == sorted(expected):
        return None
    extra = sorted({i for i, _ in collected} - {i for i, _ in expected})
    lost = sorted({i for i, _ in expected} - {i for i, _ in collected})
    differs = sorted(set(collected) - set(expected) - {(i, p) for i, p in collected if i in extra})
    parts = [f"collected but not found in source: {', '.join(extra)}"] if extra else []
    parts += [f"in source but not collected: {', '.join(lost)}"] if lost else []
    parts += [f"points differ: {', '.join(i for i, _ in differs)}"] if differs else []
    if not parts:
        parts = ["a check was collected twice"]
    return (
        "the checks pytest collected differ from the checks in source ("
        + "; ".join(parts)
        + "); give every check a plain top-level `def test_...` in a test_*.py file with "
        "@pytest.mark.points(<a number>)"
    )


@dataclass(frozen=True)
class Verified:
    """A snapshot after validation: the host's checks, and what could not be trusted."""

    checks: tuple[CheckResult, ...]  # in source order; every static check exactly once
    problems: tuple[str, ...]  # non-empty: the snapshot was rejected and every check earns 0
    unfinished: tuple[str, ...]  # ids of checks that did not finish (0 points, NOT_RUN)


def _claim_problem(check: CheckResult, expected: CheckResult) -> str | None:
    name = check.check_id
    if check.max_points != expected.max_points:
        marker = expected.max_points
        return f"{name} claims a maximum of {check.max_points:g} (its marker says {marker:g})"
    if not 0 <= check.points <= expected.max_points:
        return f"{name} claims {check.points:g} points of {expected.max_points:g}"
    if check.passed and check.points != expected.max_points:
        return f"{name} passed with {check.points:g} of {expected.max_points:g} points"
    if not check.passed and check.points != 0:
        return f"{name} failed but claims {check.points:g} points"
    return None


def verify(snapshot: Snapshot, static: Sequence[CheckResult]) -> Verified:
    """Hold a snapshot against the static checks; see the module's docstring for the rules."""
    expected = {c.check_id: c for c in static}
    problems: list[str] = []
    reported: dict[str, tuple[CheckResult, bool]] = {}
    for check, done in zip(snapshot.checks, snapshot.done, strict=True):
        name = check.check_id[:120]
        if check.check_id not in expected:
            problems.append(f"unknown check {name!r}")
        elif check.check_id in reported:
            problems.append(f"{name} reported more than once")
        else:
            reported[check.check_id] = (check, done)
            problem = _claim_problem(check, expected[check.check_id])
            problems += [problem] if problem else []
    if problems:
        rejected = tuple(replace(c, points=0.0, passed=False, message=REJECTED) for c in static)
        return Verified(rejected, tuple(problems), ())
    checks, unfinished = [], []
    for base in static:
        check, done = reported.get(base.check_id, (base, False))
        if not done:
            unfinished.append(base.check_id)
            checks.append(replace(base, points=0.0, passed=False, message=NOT_RUN))
            continue
        message = "" if check.passed else check.message.strip()[:MAX_MESSAGE] or "check failed"
        checks.append(replace(base, points=check.points, passed=check.passed, message=message))
    return Verified(tuple(checks), (), tuple(unfinished))


class Channel:
    """The results channel as the host reads it: every snapshot in order, first and last kept.

    A check's result, once finished, may not change in a later snapshot: code that takes over
    the check process in one check can still claim the checks after it, but cannot rewrite the
    results of those that finished before it ran. Problems found here reject the results.
    """

    def __init__(self, static: Sequence[CheckResult]) -> None:
        self.stream = SnapshotStream(on_line=self._line)
        self.problems: list[str] = []
        self._finished: dict[str, tuple[float, bool]] = {}
        self._limit = 2 * len(static) + 8  # the plugin writes len(static) + 2

    def feed(self, chunk: bytes) -> None:
        self.stream.feed(chunk)

    def _line(self, line: bytes) -> None:
        if self.problems:
            return  # already rejected: spend nothing more on what a forger writes
        if self.stream.lines > self._limit:
            self.problems.append(f"more than {self._limit} snapshots")
            return
        try:
            snapshot = decode_snapshot(line)
        except ValueError as exc:
            self.problems.append(str(exc))
            return
        now: dict[str, tuple[float, bool, bool]] = {}
        for check, done in zip(snapshot.checks, snapshot.done, strict=True):
            now.setdefault(check.check_id, (check.points, check.passed, done))
        for check_id, before in self._finished.items():
            points, passed, done = now.get(check_id, (0.0, False, False))
            if not done or (points, passed) != before:
                self.problems.append(f"{check_id[:120]}'s result changed after it finished")
        for check_id, (points, passed, done) in now.items():
            if done:
                self._finished.setdefault(check_id, (points, passed))
