"""Many submissions: a local pool of workers, each with its GPU slot, resumable.

Workers are threads because each submission's work happens in sandboxed child processes; the
thread only waits. Results are written to the gradebook by this (the calling) thread as they
arrive, one transaction each, so an interrupted batch keeps everything already graded and the
next run skips it (same student, exercise, profile and content hash) unless `force` is set.
A failing submission, or a grader error on one, never stops the batch.

An interrupt (KeyboardInterrupt in the calling thread: Ctrl-C, or SIGTERM turned into one by
the CLI) stops it within a second or so: the batch's cancellation event makes every running
`limits.run_limited` kill its process tree and raise Cancelled, queued submissions are never
started, results that finished are kept, and nothing cancelled is recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from deepgrade.borderline import rerun
from deepgrade.checks.warm import CheckServers
from deepgrade.errors import SandboxUnavailable
from deepgrade.gpumonitor import GpuMonitor
from deepgrade.gpuslots import GpuSlot, SlotPlan, cpu_plan
from deepgrade.grade import GradeSettings, grade_submission, grader_error
from deepgrade.gradebook import Gradebook
from deepgrade.limits import require as require_limits
from deepgrade.results import SubmissionResult
from deepgrade.submissions import Submission

log = logging.getLogger(__name__)

WAKE_S = 0.2  # the calling thread wakes this often, so a signal's handler runs promptly


@dataclass(frozen=True)
class BatchEvent:
    """Progress of a batch, for a progress bar or a log: one per finished or skipped item."""

    submission: Submission
    result: SubmissionResult  # when cached, the gradebook's stored result
    done: int
    total: int
    cached: bool = False  # skipped: this exact content was already graded


def require_sandbox(unsafe: bool) -> None:
    """Fail closed before a batch starts when student code could not be isolated."""
    from deepgrade.sandbox import find_bwrap

    if not unsafe and find_bwrap() is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is missing or cannot create namespaces on this host, so student "
            "code cannot be isolated. Install bubblewrap (apt-get install bubblewrap), or pass "
            "--unsafe to grade trusted notebooks (solution regression) without the sandbox; "
            "every result graded that way is marked unsafe."
        )


def _with_gpu_usage(
    result: SubmissionResult, slot: GpuSlot, monitor: GpuMonitor | None, start: float
) -> SubmissionResult:
    """The result with its GPU and, where sampled, how busy and full that GPU was meanwhile
    (shared with the other runs on it: a figure about the GPU, not about the student)."""
    busy, peak = (None, None)
    if monitor is not None:
        busy, peak = monitor.window(slot.gpu, start, monitor.clock())
    return replace(result, gpu=slot.gpu.label, gpu_busy_pct=busy, gpu_memory_peak_mb=peak)


def _grade_safely(
    submission: Submission,
    settings: GradeSettings,
    slots: queue.Queue[GpuSlot | None],
    monitor: GpuMonitor | None = None,
) -> SubmissionResult:
    slot = slots.get()
    start = monitor.clock() if monitor is not None else 0.0
    try:
        if slot is not None:
            settings = replace(settings, gpu=slot)
        result = grade_submission(submission, settings)
        if settings.profile.spec.borderline_auto:  # in the band: K more seeds, the median
            result = rerun(submission, settings, result, grade_submission)
        if slot is not None:
            result = _with_gpu_usage(result, slot, monitor, start)
        return result
    except Exception as exc:  # a grader bug on one submission must not stop the batch
        log.error("grading %s failed:\n%s", submission.path, traceback.format_exc())
        return grader_error(submission, settings, f"{type(exc).__name__}: {exc}")
    finally:
        slots.put(slot)


def not_yet_graded(
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    force: bool,
    notify: Callable[[BatchEvent], None],
) -> tuple[list[Submission], int]:
    """The submissions still to grade, and how many were skipped: those whose exact content
    the gradebook already holds (unless `force`), each passed to `notify` as cached."""
    todo: list[Submission] = []
    done = 0
    for submission in submissions:
        key = (submission.student, settings.spec.name, settings.profile.name)
        stored = None if force else gradebook.stored(*key, submission.content_hash)
        if stored is not None:
            done += 1
            notify(BatchEvent(submission, stored, done, len(submissions), cached=True))
        else:
            todo.append(submission)
    return todo, done


def grade_batch(
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    *,
    workers: int = 1,
    slots: SlotPlan | None = None,
    monitor: GpuMonitor | None = None,
    force: bool = False,
    on_event: Callable[[BatchEvent], None] | None = None,
) -> list[SubmissionResult]:
    """Grade `submissions` on the slots planned for the batch (gpubatch; default `workers`
    on the CPU); returns the results graded now. Already graded ones are skipped, their stored
    result passed to `on_event` with `cached` set. `monitor`, started by the caller, gives
    each GPU result the busy % of its GPU while it was graded."""
    plan = slots or cpu_plan(workers)
    on_gpu = any(slot is not None for slot in plan.slots)
    require_sandbox(settings.unsafe)
    require_limits(unsafe=settings.unsafe, allow_unlimited=settings.unlimited, gpu=on_gpu)
    notify = on_event or (lambda _event: None)
    todo, done = not_yet_graded(submissions, settings, gradebook, force, notify)
    total = len(submissions)
    cancel = threading.Event()
    with CheckServers() as servers:  # stage 2 warm: one server per worker, closed with the batch
        settings = replace(settings, cancel=cancel, checks=settings.checks or servers)
        return _run_pool(todo, settings, gradebook, plan, monitor, notify, done, total)


def _run_pool(
    todo: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    plan: SlotPlan,
    monitor: GpuMonitor | None,
    notify: Callable[[BatchEvent], None],
    done: int,
    total: int,
) -> list[SubmissionResult]:
    """The workers, each on its slot; results recorded as they arrive (see grade_batch)."""
    assert settings.cancel is not None
    cancel = settings.cancel
    free: queue.Queue[GpuSlot | None] = queue.Queue()
    for slot in plan.slots:  # one per worker, each pinned to its GPU share (or the CPU)
        free.put(slot)
    results: list[SubmissionResult] = []
    recorded: set[Future[SubmissionResult]] = set()
    futures: dict[Future[SubmissionResult], Submission] = {}
    pool = ThreadPoolExecutor(max_workers=len(plan.slots))
    try:
        futures = {pool.submit(_grade_safely, s, settings, free, monitor): s for s in todo}
        pending = set(futures)
        while pending:
            # Never an endless wait: a Ctrl-C the kernel hands to a worker thread raises
            # KeyboardInterrupt only once this thread runs Python again (an untimed wait on
            # the futures slept through it, and the batch never stopped).
            finished, pending = wait(pending, timeout=WAKE_S, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                gradebook.record(result)
                recorded.add(future)
                results.append(result)
                done += 1
                notify(BatchEvent(futures[future], result, done, total))
    except BaseException:  # Ctrl-C, SIGTERM, or a failure of the gradebook itself
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)  # prompt: running ones see `cancel`
        _keep_finished(futures, recorded, gradebook)
        raise
    pool.shutdown(wait=True)
    return sorted(results, key=lambda r: r.student)


def _keep_finished(
    futures: Mapping[Future[SubmissionResult], Submission],
    recorded: set[Future[SubmissionResult]],
    gradebook: Gradebook,
) -> None:
    """Record the submissions that finished grading before the workers stopped; the cancelled
    and the never started have no result (they raised Cancelled, or never ran)."""
    for future, submission in futures.items():
        if future in recorded or not future.done() or future.cancelled():
            continue
        if future.exception() is None:
            gradebook.record(future.result())
            log.info("kept %s, finished as the batch was interrupted", submission.student)
