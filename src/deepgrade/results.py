"""Typed values that cross stage boundaries: execution, checks, one graded submission.

Each stage hands the next a frozen dataclass, never a loose dict, and each one serialises to
JSON so the gradebook and the Gradescope export store exactly what the stages produced.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Verdict(enum.StrEnum):
    """How a submission's run ended; points are separate (a cell error can still earn points)."""

    GRADED = "graded"
    CELL_ERROR = "cell_error"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    KERNEL_DIED = "kernel_died"
    TAMPERED = "tampered"
    MISSING_ARTIFACT = "missing_artifact"
    INVALID_NOTEBOOK = "invalid_notebook"
    REFUSED = "refused"  # no sandbox and no --unsafe: the submission was not run
    CHECK_TIMEOUT = "check_timeout"  # the hidden checks ran out of time on the student's files
    ARTIFACT_REJECTED = "artifact_rejected"  # reading the student's files crashed or ran out
    RESULTS_REJECTED = "results_rejected"  # stage 2's results failed validation: a person looks
    GRADER_ERROR = "grader_error"


# model.keras's layers for the feedback page: (layer name, layer type, output shape, parameters)
SummaryRow = tuple[str, str, str, int]
# a confusion matrix: (class labels, counts[true class][predicted class])
Confusion = tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]


@dataclass(frozen=True)
class ExecutionResult:
    """What stage 1 (running the submission in the sandbox) produced."""

    verdict: Verdict
    detail: str  # one line a student can read, e.g. "cell 7 raised ValueError: ..."
    artifacts_dir: Path
    executed_notebook: Path | None
    seconds: float
    failed_cell: int | None = None  # 1-based index among the notebook's code cells
    limits: tuple[str, ...] = ()  # the limits that were in force, e.g. ("memory 4096 MiB",)
    sandboxed: bool = True
    log_tail: str = ""  # last lines of the run's stderr, for the instructor only
    cpu_seconds: float | None = None  # the run's CPU time, where the host can measure it
    peak_memory_mb: float | None = None  # the run's peak memory, where the host counts it
    rerun: str = ""  # why stage 1 ran a second time (a timeout on a loaded host); "" if once
    # Measured by the in-sandbox runner, outside the kernel: {cell name: {cpu_s, wall_s, nonce}}
    cell_usage: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """One hidden check: its points and a message a student can act on."""

    check_id: str  # stable id, e.g. "test_architecture::test_total_params"
    title: str  # first line of the check's docstring
    points: float
    max_points: float
    passed: bool
    message: str = ""  # empty when passed; never the check's code or hidden values


@dataclass(frozen=True)
class CheckReport:
    """What stage 2 (the hidden pytest checks in a fresh process) produced."""

    checks: tuple[CheckResult, ...]
    seconds: float
    error: str | None = None  # set when the checks could not run or finish
    verdict: Verdict | None = None  # with `error`: whose fault (None: the grader's)
    measurements: dict[str, float] = field(default_factory=dict)  # e.g. test_accuracy
    model_summary: tuple[SummaryRow, ...] = ()  # for the feedback page
    confusion: Confusion | None = None  # of model.keras on the grader's data

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)


@dataclass(frozen=True)
class Rerun:
    """One run of a borderline submission (see borderline): its seed, points, measurements."""

    seed: int
    points: float
    measurements: dict[str, float]
    decided: bool = False  # the median run, whose checks are the result


@dataclass(frozen=True)
class Lateness:
    """How late a submission was against its due date (deepgrade.deadlines), and what that
    costs: shown beside the points the checks gave, never in place of them."""

    due: str  # ISO 8601, the student's own due date (an extension's where granted)
    extended: bool = False
    known: bool = True  # False: the submission's time is unknown, so nothing was assessed
    days_late: int = 0  # started days past the due date and its grace
    penalty: float = 0.0  # points taken off the points earned
    accepted: bool = True  # False: past the hard cutoff, no points
    policy: str = ""  # the late policy in words, when it applied

    def describe(self) -> str:
        """One line for tables, exports and the feedback page."""
        if not self.known:
            return "submission time unknown: lateness not assessed"
        if not self.days_late:
            return "on time"
        late = f"{self.days_late} day(s) late"
        if not self.accepted:
            return f"{late}, past the hard cutoff: not accepted ({self.policy})"
        return f"{late}: -{self.penalty:g} point(s) ({self.policy})"


@dataclass(frozen=True)
class SubmissionResult:
    """One submission graded end to end: what goes into the gradebook."""

    student: str
    exercise: str
    profile: str
    content_hash: str
    verdict: Verdict
    detail: str
    checks: tuple[CheckResult, ...]
    stage1_seconds: float
    stage2_seconds: float
    unsafe: bool = False  # graded without the sandbox (trusted solution regression only)
    unlimited: bool = False  # graded without memory or process limits (--allow-unlimited)
    limits: tuple[str, ...] = ()
    source_path: str = ""
    measurements: dict[str, float] = field(default_factory=dict)  # what the checks measured
    extra: dict[str, Any] = field(default_factory=dict)
    grader_version: str = ""  # which grader made it (graderversion); "" before it was recorded
    # From the executed notebook (runlog): seconds per student code cell, and the first
    # failing student cell's trimmed traceback. Shown to the student; they earn nothing.
    cell_seconds: tuple[tuple[int, float], ...] = ()
    traceback: str = ""
    histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # by file
    reruns: tuple[Rerun, ...] = ()  # every run of a borderline result, the decided one marked
    peak_memory_mb: float | None = None  # stage 1's peak memory, where the host counts it
    model_summary: tuple[SummaryRow, ...] = ()  # stage 2's table of model.keras
    confusion: Confusion | None = None  # stage 2's, of model.keras on the grader's data
    # Stage 1's GPU ("" on the CPU) and, sampled by the host (NVML), how busy and full that
    # GPU was while this submission was graded: other runs on it count too.
    gpu: str = ""
    gpu_busy_pct: float | None = None
    gpu_memory_peak_mb: float | None = None
    # When the student submitted (ISO 8601 with its offset; "" unknown) and, worked out from
    # the course's deadlines.toml when results are shown (deadlines.Deadlines.assess), how late.
    submitted_at: str = ""
    late: Lateness | None = None

    @property
    def points(self) -> float:
        """The points the checks gave (before any late penalty)."""
        return sum(c.points for c in self.checks)

    @property
    def penalty(self) -> float:
        return self.late.penalty if self.late is not None else 0.0

    @property
    def final_points(self) -> float:
        """The points that count: those earned, less the late penalty."""
        return max(self.points - self.penalty, 0.0)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["verdict"] = str(self.verdict)
        data["points"] = self.points
        data["max_points"] = self.max_points
        data["final_points"] = self.final_points
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["verdict"] = Verdict(kwargs["verdict"])
        kwargs["checks"] = tuple(CheckResult(**c) for c in kwargs["checks"])
        kwargs["limits"] = tuple(kwargs.get("limits", ()))
        kwargs["reruns"] = tuple(Rerun(**run) for run in kwargs.get("reruns", ()))
        if kwargs.get("late") is not None:
            kwargs["late"] = Lateness(**kwargs["late"])
        if kwargs.get("confusion") is not None:
            labels, matrix = kwargs["confusion"]
            kwargs["confusion"] = (tuple(labels), tuple(tuple(row) for row in matrix))
        kwargs["model_summary"] = tuple(
            (str(a), str(b), str(c), int(d)) for a, b, c, d in kwargs.get("model_summary", ())
        )
        kwargs["cell_seconds"] = tuple(
            (int(n), float(t)) for n, t in kwargs.get("cell_seconds", ())
        )
        return cls(**kwargs)
