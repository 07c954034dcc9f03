"""One submission graded end to end: tamper check, stage 1 (execute), stage 2 (check).

The grader builds its own copy of the notebook: the student's cells, checked against the
released locked cells, plus the grade-time cells that call the student's functions on hidden
inputs. The hidden values are not in that copy: stage 1's runner gets them on a private pipe
and writes them to a file just before the first grade-time cell, which reads it. Stage 2 always
runs, even when stage 1 could not, so every result lists every check with its points and a
message; that keeps the gradebook's maxima and feedback uniform. Every result passes through
redact.withhold, the last check that no student-visible text carries a hidden value.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepgrade import _stage1_runner, notebooks, redact
from deepgrade.checks.warm import CheckServers
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import ExerciseSpec
from deepgrade.gpuslots import GpuSlot
from deepgrade.profiles import GradingProfile
from deepgrade.results import CheckReport, ExecutionResult, SubmissionResult, Verdict
from deepgrade.runlog import read_histories, read_run_log
from deepgrade.submissions import Submission

if TYPE_CHECKING:
    from deepgrade.execute import RunAs

GRADETIME_TAG = _stage1_runner.GRADETIME_TAG  # the runner reads it too
# The first grade-time cell: the hidden values, from the file stage 1's runner writes for it.
HIDDEN_LOADER = f"""import json as _dg_json
import os as _dg_os

with open({_stage1_runner.HIDDEN_FILE_PLACEHOLDER}, encoding="utf-8") as _dg_handle:
    HIDDEN = _dg_json.load(_dg_handle)
_dg_os.unlink(_dg_handle.name)"""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class GradeSettings:
    """What every submission of one batch shares."""

    spec: ExerciseSpec
    profile: GradingProfile  # resolved once: parameters, files, limits (resolve_profile)
    release_notebook: Path  # the grader's copy of the released notebook (locked cells)
    workdir: Path  # one sub-folder per submission is made here
    unsafe: bool = False
    gpu: GpuSlot | None = None  # this worker's GPU share (gpuslots), None: the CPU
    cell_timeout_s: int | None = None  # overrides the profile's (e.g. a quick test of timeouts)
    # Set by the batch runner when the batch is interrupted: running sandboxes stop at once.
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)
    unlimited: bool = False  # --allow-unlimited on a host without memory/process limits
    grader_version: str = ""  # graderversion.grader_version of spec and release, set per batch
    # The batch's warm stage-2 servers (checks.warm), set by the runner; None: a fresh process
    checks: CheckServers | None = field(default=None, compare=False, repr=False)
    # Without a sandbox (unsafe), stage 1 runs as this unprivileged user (a Gradescope
    # container where bubblewrap cannot start); None: as the grader's own user.
    run_as: RunAs | None = None

    def __post_init__(self) -> None:
        if self.profile.exercise != self.spec.name:
            raise DeepgradeError(
                f"the {self.profile.exercise} profile cannot grade {self.spec.name}"
            )


def _marked_cells(spec: ExerciseSpec) -> list[tuple[str, list[str]]]:
    """(source, the student functions it calls) of each cell of gradetime.py, from its
    `# %% calls=name[,name]` markers: the failure template names those functions."""
    if spec.gradetime_cells is None:
        return []
    path = spec.gradetime_cells
    cells = []
    for source, options in notebooks.split_marked_cells(path.read_text(encoding="utf-8")):
        unknown = sorted(set(options) - {"calls"})
        if unknown:
            raise InputError(path, f"unknown cell option(s) {', '.join(unknown)}: only calls=")
        calls = [name for name in options.get("calls", "").split(",") if name]
        if not all(_IDENTIFIER.fullmatch(name) for name in calls):
            raise InputError(path, f"calls={options['calls']}: not a list of function names")
        cells.append((source, calls))
    return cells


def hidden_inputs_source(spec: ExerciseSpec) -> str:
    """The spec's hidden_module made into `_dg_inputs`, a module object of its own (its names
    never overwrite the student's): appended to the loader cell. "" without one."""
    if spec.hidden_module is None:
        return ""
    module = spec.hidden_module
    source = module.read_text(encoding="utf-8")
    return f"""

import types as _dg_types

_dg_inputs = _dg_types.ModuleType({module.stem!r})
exec(compile({source!r}, {module.name!r}, "exec"), _dg_inputs.__dict__)
del _dg_types"""


def gradetime_cells(spec: ExerciseSpec) -> list[tuple[str, dict[str, Any]]]:
    """The grade-time cells of the grader's notebook as (source, cell metadata): the hidden
    values' loader first (with the hidden_module as `_dg_inputs`), then gradetime.py's cells,
    each with the functions it calls. No source holds a hidden value (stage 1's runner hands
    them to the loader)."""
    cells = _marked_cells(spec)
    if not cells:
        return []
    loader: tuple[str, dict[str, Any]] = (
        HIDDEN_LOADER + hidden_inputs_source(spec),
        {"deepgrade": {"calls": []}},
    )
    return [loader, *((source, {"deepgrade": {"calls": calls}}) for source, calls in cells)]


def gradetime_sources(spec: ExerciseSpec) -> list[str]:
    """The grade-time cells with `HIDDEN = {...}` rendered inline first: for running them
    in-process in tests only. The grader's notebook uses gradetime_cells, which never holds
    the values."""
    cells = _marked_cells(spec)
    loader = f"HIDDEN = {dict(spec.hidden)!r}" + hidden_inputs_source(spec)
    return [loader, *(s for s, _ in cells)] if cells else []


def student_artifacts(spec: ExerciseSpec, release_nb: Any) -> list[str]:
    """The artifacts the student's own cells save: those the released notebook names (the
    rest of spec.artifacts are the grade-time cells'). Frozen when the grader's cells start."""
    text = "\n".join(str(cell.get("source", "")) for cell in release_nb.cells)
    return [
        name
        for name in spec.artifacts
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text)
    ]


def prepare_notebook(submission: Path, settings: GradeSettings, out: Path) -> list[str]:
    """Write the grader's copy to `out`; return tampering problems (then nothing is written).

    A student cell carrying the grade-time tag loses it: the grader's cells are the last ones
    appended here (stage 1 finds them by position), and reports must not hide a student's."""
    import nbformat

    student_nb = notebooks.read_notebook(submission)
    release_nb = notebooks.read_notebook(settings.release_notebook)
    problems = notebooks.find_tampering(student_nb, release_nb)
    if problems:
        return problems
    for cell in student_nb.cells:
        tags = cell.get("metadata", {}).get("tags")
        if isinstance(tags, list) and GRADETIME_TAG in tags:
            cell["metadata"]["tags"] = [tag for tag in tags if tag != GRADETIME_TAG]
    cells = gradetime_cells(settings.spec)
    graded = notebooks.append_cells(
        student_nb, [s for s, _ in cells], GRADETIME_TAG, [m for _, m in cells]
    )
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

    profile = settings.profile
    limits = profile.spec
    prepared = work / "graded-input.ipynb"
    try:
        problems = prepare_notebook(submission.path, settings, prepared)
    except InputError as exc:
        return _not_run(Verdict.INVALID_NOTEBOOK, exc.problem, work / "artifacts")
    if problems:
        detail = "locked cell tampered: " + "; ".join(problems)
        return _not_run(Verdict.TAMPERED, detail, work / "artifacts")
    release_nb = notebooks.read_notebook(settings.release_notebook)
    gradetime = len(gradetime_cells(settings.spec))

    def execute() -> ExecutionResult:
        return execute_notebook(
            prepared,
            parameters=dict(profile.parameters),
            hidden=dict(settings.spec.hidden) if gradetime else None,
            gradetime_cells=gradetime,
            student_artifacts=student_artifacts(settings.spec, release_nb),
            data_files=profile.files,
            workdir=work,
            cell_timeout_s=settings.cell_timeout_s or limits.cell_timeout_s,
            notebook_timeout_s=limits.notebook_timeout_s,
            memory_mb=limits.memory_mb,
            artifact_cap_mb=limits.artifact_cap_mb,
            unsafe=settings.unsafe,
            gpu=settings.gpu,
            cancel=settings.cancel,
            run_as=settings.run_as,
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


def _stage2_verdict(report: CheckReport, verdict: Verdict, detail: str) -> tuple[Verdict, str]:
    """A stage-2 failure's verdict: the grader's faults and rejected results always show; a
    student's (checks too slow or crashing on their files) names the verdict unless stage 1
    already had one, which then keeps its place and gains the detail."""
    if report.verdict is None or report.verdict is Verdict.GRADER_ERROR:
        return Verdict.GRADER_ERROR, f"hidden checks could not run: {report.error}"
    if report.verdict is Verdict.RESULTS_REJECTED or verdict is Verdict.GRADED:
        return report.verdict, str(report.error)
    return verdict, f"{detail}; {report.error}"


def grader_error(submission: Submission, settings: GradeSettings, detail: str) -> SubmissionResult:
    """The result of a submission the grader failed on (not the student's doing): no checks,
    no points; the gradebook does not count it as graded, so the next run tries again."""
    return SubmissionResult(
        student=submission.student,
        exercise=settings.spec.name,
        profile=settings.profile.name,
        content_hash=submission.content_hash,
        verdict=Verdict.GRADER_ERROR,
        detail=detail,
        checks=(),
        stage1_seconds=0.0,
        stage2_seconds=0.0,
        unsafe=settings.unsafe,
        unlimited=settings.unlimited,
        source_path=str(submission.path),
        grader_version=settings.grader_version,
    )


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
    secrets = redact.exercise_secrets(settings.spec)

    def result(verdict: Verdict, detail: str, **rest: Any) -> SubmissionResult:
        made = SubmissionResult(
            student=submission.student,
            exercise=settings.spec.name,
            profile=settings.profile.name,
            content_hash=content_hash,
            verdict=verdict,
            detail=detail,
            unsafe=settings.unsafe,
            unlimited=settings.unlimited,
            source_path=str(submission.path),
            grader_version=settings.grader_version,
            **rest,
        )
        return redact.withhold(made, secrets)

    try:
        notify("execute")
        stage1 = run_stage1(submission, settings, work)
        run_log = read_run_log(
            stage1.executed_notebook, len(gradetime_cells(settings.spec)), stage1.failed_cell
        )
        missing = missing_artifacts(stage1.artifacts_dir, settings.spec.artifacts)
        notify("check")
        started = time.perf_counter()
        check = settings.checks.run_checks if settings.checks is not None else run_checks
        report = check(
            settings.spec,
            settings.profile,
            stage1.artifacts_dir,
            workdir=work,
            unsafe=settings.unsafe,
            cancel=settings.cancel,
            stage1_usage=stage1.cell_usage,
        )
        stage2_seconds = time.perf_counter() - started
    except DeepgradeError as exc:
        return result(
            Verdict.GRADER_ERROR, str(exc), checks=(), stage1_seconds=0.0, stage2_seconds=0.0
        )
    verdict, detail = _verdict(stage1, missing)
    if report.error:
        verdict, detail = _stage2_verdict(report, verdict, detail)
    return result(
        verdict,
        detail,
        checks=report.checks,
        stage1_seconds=round(stage1.seconds, 2),
        stage2_seconds=round(stage2_seconds, 2),
        limits=stage1.limits,
        measurements=report.measurements,
        peak_memory_mb=stage1.peak_memory_mb,
        model_summary=report.model_summary,
        confusion=report.confusion,
        cell_seconds=run_log.cell_seconds,
        traceback=run_log.traceback,
        histories=read_histories(stage1.artifacts_dir, settings.spec.artifacts),
        extra={
            **({"log_tail": stage1.log_tail[-2000:]} if stage1.log_tail else {}),
            **({"stage1_rerun": stage1.rerun} if stage1.rerun else {}),
        },
    )
