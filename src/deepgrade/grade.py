"""One submission graded end to end: tamper check, stage 1 (execute), stage 2 (check).

The grader builds its own copy of the notebook: the student's cells, checked against the
released locked cells, plus the grade-time cells that call the student's functions on hidden
inputs. Stage 2 always runs, even when stage 1 could not, so every result lists every check
with its points and a message; that keeps the gradebook's maxima and feedback uniform.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deepgrade import notebooks
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import ExerciseSpec
from deepgrade.results import ExecutionResult, SubmissionResult, Verdict
from deepgrade.submissions import Submission

GRADETIME_TAG = "deepgrade-gradetime"


@dataclass(frozen=True)
class GradeSettings:
    """What every submission of one batch shares."""

    spec: ExerciseSpec
    profile: str
    release_notebook: Path  # the grader's copy of the released notebook (locked cells)
    data_files: tuple[Path, ...]
    workdir: Path  # one sub-folder per submission is made here
    unsafe: bool = False
    gpu: str | None = None
    cell_timeout_s: int | None = None  # overrides the profile's (e.g. a quick test of timeouts)
    # Set by the batch runner when the batch is interrupted: running sandboxes stop at once.
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)


def gradetime_sources(spec: ExerciseSpec) -> list[str]:
    """The grade-time cells, preceded by the hidden values they use (never released)."""
    if spec.gradetime_cells is None:
        return []
    hidden = f"HIDDEN = {dict(spec.hidden)!r}"
    cells = notebooks.split_cells(spec.gradetime_cells.read_text(encoding="utf-8"))
    return [hidden, *cells]


def prepare_notebook(submission: Path, settings: GradeSettings, out: Path) -> list[str]:
    """Write the grader's copy to `out`; return tampering problems (then nothing is written)."""
    import nbformat

    student_nb = notebooks.read_notebook(submission)
    release_nb = notebooks.read_notebook(settings.release_notebook)
    problems = notebooks.find_tampering(student_nb, release_nb)
    if problems:
        return problems
    graded = notebooks.append_cells(student_nb, gradetime_sources(settings.spec), GRADETIME_TAG)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(graded, out)  # type: ignore[no-untyped-call]
    return []


def _not_run(verdict: Verdict, detail: str, artifacts: Path) -> ExecutionResult:
    artifacts.mkdir(parents=True, exist_ok=True)
    return ExecutionResult(verdict, detail, artifacts, None, 0.0, sandboxed=True)


# A timeout is the student's verdict only if the host gave the run its CPU. Loaded: the load
# average (the larger of the 1- and 5-minute ones when the run ended) above 1.5 per usable CPU,
# i.e. at least half as much other work as cores besides a run using them all; or, where the
# host measures the run's CPU time, the run got under half a CPU-second per second while the
# load exceeded the CPUs (a run that sleeps on a quiet host is not re-run).
LOADED_PER_CPU = 1.5
STARVED_CPU_SHARE = 0.5


def host_load() -> tuple[float, int]:
    """The host's recent load average and the CPUs this process may use."""
    one, five, _ = os.getloadavg()
    return max(one, five), len(os.sched_getaffinity(0))


def loaded_host(stage1: ExecutionResult, load: float, cpus: int) -> str:
    """Why the host, not the submission, may have made stage 1 slow; "" when it was not."""
    busy = f"load average {load:.1f} on {cpus} CPUs"
    if load > LOADED_PER_CPU * cpus:
        return f"the host was busy ({busy})"
    cpu = stage1.cpu_seconds
    if cpu is not None and load > cpus and cpu < STARVED_CPU_SHARE * stage1.seconds:
        return f"the run got {cpu:.0f} s of CPU in {stage1.seconds:.0f} s ({busy})"
    return ""


def run_stage1(submission: Submission, settings: GradeSettings, work: Path) -> ExecutionResult:
    """Tamper check, then the sandboxed run; a bad notebook becomes a verdict, not a crash.

    A timeout on a loaded host is run once more before it becomes the student's verdict: wall
    time measured the neighbours, not the notebook. The result says it was re-run and why.
    """
    from deepgrade.execute import execute_notebook

    profile = settings.spec.profile(settings.profile)
    prepared = work / "graded-input.ipynb"
    try:
        problems = prepare_notebook(submission.path, settings, prepared)
    except InputError as exc:
        return _not_run(Verdict.INVALID_NOTEBOOK, exc.problem, work / "artifacts")
    if problems:
        detail = "locked cell tampered: " + "; ".join(problems)
        return _not_run(Verdict.TAMPERED, detail, work / "artifacts")

    def execute() -> ExecutionResult:
        return execute_notebook(
            prepared,
            parameters=dict(profile.parameters, PROFILE=profile.name),
            data_files=settings.data_files,
            workdir=work,
            cell_timeout_s=settings.cell_timeout_s or profile.cell_timeout_s,
            notebook_timeout_s=profile.notebook_timeout_s,
            memory_mb=profile.memory_mb,
            artifact_cap_mb=profile.artifact_cap_mb,
            unsafe=settings.unsafe,
            gpu=settings.gpu,
            cancel=settings.cancel,
        )

    result = execute()
    if result.verdict is not Verdict.TIMEOUT:
        return result
    why = loaded_host(result, *host_load())
    if not why:
        return result
    rerun = f"timed out after {result.seconds:.0f} s while {why}; ran once more"
    return replace(execute(), rerun=rerun)


def _verdict(stage1: ExecutionResult, missing: Sequence[str]) -> tuple[Verdict, str]:
    if stage1.verdict is Verdict.GRADED and missing:
        return Verdict.MISSING_ARTIFACT, "missing artifacts: " + ", ".join(missing)
    return stage1.verdict, stage1.detail


def grade_submission(
    submission: Submission,
    settings: GradeSettings,
    on_stage: Callable[[str], None] | None = None,
) -> SubmissionResult:
    """Grade one submission; grader failures come back as a GRADER_ERROR result, not raised."""
    from deepgrade.artifacts import missing_artifacts
    from deepgrade.checks.runner import run_checks

    content_hash = submission.content_hash
    work = settings.workdir / f"{submission.student}-{content_hash[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    notify = on_stage or (lambda _stage: None)

    def result(verdict: Verdict, detail: str, **rest: Any) -> SubmissionResult:
        return SubmissionResult(
            student=submission.student,
            exercise=settings.spec.name,
            profile=settings.profile,
            content_hash=content_hash,
            verdict=verdict,
            detail=detail,
            unsafe=settings.unsafe,
            source_path=str(submission.path),
            **rest,
        )

    try:
        notify("execute")
        stage1 = run_stage1(submission, settings, work)
        missing = missing_artifacts(stage1.artifacts_dir, settings.spec.artifacts)
        notify("check")
        started = time.perf_counter()
        report = run_checks(
            settings.spec,
            settings.profile,
            stage1.artifacts_dir,
            settings.data_files,
            workdir=work,
            unsafe=settings.unsafe,
            cancel=settings.cancel,
        )
        stage2_seconds = time.perf_counter() - started
    except DeepgradeError as exc:
        return result(
            Verdict.GRADER_ERROR, str(exc), checks=(), stage1_seconds=0.0, stage2_seconds=0.0
        )
    verdict, detail = _verdict(stage1, missing)
    if report.error:
        verdict, detail = Verdict.GRADER_ERROR, f"hidden checks could not run: {report.error}"
    return result(
        verdict,
        detail,
        checks=report.checks,
        stage1_seconds=round(stage1.seconds, 2),
        stage2_seconds=round(stage2_seconds, 2),
        limits=stage1.limits,
        measurements=report.measurements,
        extra={
            **({"log_tail": stage1.log_tail[-2000:]} if stage1.log_tail else {}),
            **({"stage1_rerun": stage1.rerun} if stage1.rerun else {}),
        },
    )
