"""A batch graded on a Ray cluster: one task per submission, the driver the only writer.

The driver packs the batch once (`rayjob.pack`), puts the bundle and each data file in the
object store, and submits one task per submission (`raynode.grade_on_node`) with the resources
the profile needs (`task_options`). It then waits on the tasks with `ray.wait`, recording each
result in the gradebook as it arrives, so an interrupted batch keeps what finished and the next
run skips it (the same content hash and grader version: results are idempotent).

What Ray does not do, the driver does:
- a deadline for the whole submission, from the moment its task started on a node (a small
  ledger actor beside the driver hears each start): past it, `ray.cancel(force=True)` and a
  grader error, never the student's verdict (the sandbox's own limits end a slow notebook);
- retries are Ray's (`max_retries`: a node that dies mid-task sends it elsewhere); the ledger
  counts them, and a task whose every attempt died is a grader error, retried on the next run;
- a node that cannot sandbox refuses its task (`raynode.NodeRefused`, the doctor's reason): the
  driver reports it once and sends the task again with a label selector that keeps it off
  every refusing node;
- Ctrl-C cancels every task on the cluster and keeps what finished.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from deepgrade.checks.warm import SERVER_ALLOWANCE_MB
from deepgrade.errors import DeepgradeError
from deepgrade.grade import GradeSettings, grader_error
from deepgrade.gradebook import Gradebook
from deepgrade.rayjob import pack
from deepgrade.raynode import NodeRefused, NodeReport, grade_on_node
from deepgrade.results import SubmissionResult
from deepgrade.runner import BatchEvent, not_yet_graded
from deepgrade.submissions import Submission

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # a task whose node dies is run again elsewhere, this many times at most
STARTUP_ALLOWANCE_S = 300  # a worker's start, the data's first fetch, the checks' server
POLL_S = 0.5  # results are collected (and deadlines checked) this often
NODES_EVERY_S = 2.0  # the cluster's nodes, for the progress bar
MIB = 1024 * 1024


class ClusterUnavailable(DeepgradeError):
    """Ray is not installed, the cluster cannot be reached, or no node may grade."""


@dataclass
class ClusterProgress:
    """What the progress bar shows besides the count: the cluster as the driver sees it."""

    nodes: int = 0
    in_flight: int = 0
    retries: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # host -> the doctor's reason

    def describe(self) -> str:
        text = f"nodes {self.nodes} · in flight {self.in_flight} · retries {self.retries}"
        return text + (f" · refused {len(self.refused)}" if self.refused else "")


@dataclass(frozen=True)
class NodeSummary:
    """One node's share of the batch: how many it graded, how long they waited and ran."""

    host: str
    graded: int
    median_wait_s: float
    median_run_s: float


@dataclass(frozen=True)
class ClusterBatch:
    results: list[SubmissionResult]
    nodes: tuple[NodeSummary, ...]
    refused: dict[str, str]
    retries: int


@dataclass
class _Task:
    submission: Submission
    key: str
    submitted: float
    deadline_s: float
    excluded: frozenset[str] = frozenset()


def task_options(settings: GradeSettings) -> dict[str, Any]:
    """The resources one submission's task asks of a node, from the profile: its CPUs (the
    kernel's 2 threads unless spec.toml says `cpus`), its GPU share and its memory (both stages'
    limits: the kernel's, and the warm check server's allowance on top)."""
    spec = settings.profile.spec
    memory = (spec.memory_mb + SERVER_ALLOWANCE_MB) * MIB
    options: dict[str, Any] = {"num_cpus": spec.cpus, "memory": memory}
    if spec.gpus:
        options["num_gpus"] = spec.gpus
    return options


def deadline_s(settings: GradeSettings) -> float:
    """The whole submission's time on a node: its notebook limit for every run (a borderline
    result runs again with more seeds), the checks' limit for each, and the start-up."""
    from deepgrade.checks.runner import CHECK_TIMEOUT_S

    spec = settings.profile.spec
    runs = 1 + (spec.borderline_runs if spec.borderline_auto else 0)
    return runs * (spec.notebook_timeout_s + CHECK_TIMEOUT_S) + STARTUP_ALLOWANCE_S


def _ledger_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=0)
    class Ledger:
        """Beside the driver: each task's starts (node, host, on this host's clock)."""

        def __init__(self) -> None:
            self.starts: dict[str, list[tuple[str, str, float]]] = {}

        def started(self, key: str, node_id: str, host: str, _node_clock: float) -> None:
            self.starts.setdefault(key, []).append((node_id, host, time.time()))

        def snapshot(self) -> dict[str, list[tuple[str, str, float]]]:
            return self.starts

    return Ledger


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, connected to the cluster at `address` ("auto": the one started on this host), and
    disconnected after when this call connected it. Meanwhile this process's stdout is its
    stderr: Ray prints its raylets' messages ("task failed, retrying") to stdout, which is the
    results' (`grade --json`)."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("--executor ray needs Ray: pip install 'deepgrade[ray]'") from None
    with contextlib.redirect_stdout(sys.stderr):
        owned = not ray.is_initialized()
        if owned:
            try:
                ray.init(
                    address=address or "auto", log_to_driver=False, logging_level=logging.WARNING
                )
            except ConnectionError as exc:
                raise ClusterUnavailable(
                    f"no Ray cluster at {address or 'auto'} ({exc}): start one with "
                    "`ray start --head` (README: Grading on a cluster)"
                ) from None
        try:
            yield ray
        finally:
            if owned:
                ray.shutdown()


def grade_on_ray(
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    *,
    address: str | None = None,
    force: bool = False,
    on_event: Callable[[BatchEvent], None] | None = None,
    on_progress: Callable[[ClusterProgress], None] | None = None,
    max_retries: int = MAX_RETRIES,
    allow_unlimited: bool = False,
    deadline: float | None = None,
) -> ClusterBatch:
    """Grade `submissions` on the cluster; results recorded as they arrive (see the module).
    Already graded ones are skipped, their stored result passed to `on_event` as cached.
    `deadline` overrides the whole submission's (deadline_s) for tests."""
    with connected(address) as ray:
        return _grade_connected(
            ray,
            submissions,
            settings,
            gradebook,
            force=force,
            notify=on_event or (lambda _event: None),
            show=on_progress or (lambda _progress: None),
            max_retries=max_retries,
            allow_unlimited=allow_unlimited,
            deadline=deadline,
        )


def _grade_connected(
    ray: Any,
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    *,
    force: bool,
    notify: Callable[[BatchEvent], None],
    show: Callable[[ClusterProgress], None],
    max_retries: int,
    allow_unlimited: bool,
    deadline: float | None,
) -> ClusterBatch:
    from ray.exceptions import RayError, RayTaskError, TaskCancelledError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    todo, done = not_yet_graded(submissions, settings, gradebook, force, notify)
    total = len(submissions)
    bundle, paths = pack(settings, allow_unlimited=allow_unlimited)
    bundle_ref = ray.put(bundle)
    file_refs = {digest: ray.put(path.read_bytes()) for digest, path in paths.items()}
    here = ray.get_runtime_context().get_node_id()
    ledger = (
        _ledger_class()
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
        .remote()
    )
    remote = ray.remote(grade_on_node)
    base = {**task_options(settings), "max_retries": max_retries, "retry_exceptions": False}
    limit = deadline if deadline is not None else deadline_s(settings)
    progress = ClusterProgress()
    refused_ids: set[str] = set()
    pending: dict[Any, _Task] = {}

    def submit(task: _Task) -> None:
        options: dict[str, Any] = {
            **base,
            "name": f"grade {settings.spec.name} {task.submission.student}",
        }
        if task.excluded:
            options["label_selector"] = {"ray.io/node-id": f"!in({','.join(task.excluded)})"}
        notebook = task.submission.path.read_bytes()
        args = (bundle_ref, task.submission.student, notebook, file_refs, ledger, task.key)
        pending[remote.options(**options).remote(*args)] = task

    for index, submission in enumerate(todo):
        submit(_Task(submission, f"{index}:{submission.student}", time.time(), limit))
    results: list[SubmissionResult] = []
    reports: list[tuple[NodeReport, float]] = []

    def record(task: _Task, result: SubmissionResult) -> None:
        nonlocal done
        gradebook.record(result)
        results.append(result)
        done += 1
        notify(BatchEvent(task.submission, result, done, total))

    def collect(ref: Any, task: _Task, starts: dict[str, list[tuple[str, str, float]]]) -> None:
        try:
            report: NodeReport = ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, NodeRefused):
                refused_ids.add(cause.node_id)
                if cause.node not in progress.refused:
                    progress.refused[cause.node] = cause.reason
                    log.warning("node %s refused to grade: %s", cause.node, cause.reason)
                if not _usable_nodes(ray, refused_ids):
                    raise ClusterUnavailable(
                        "no node of the cluster can sandbox: "
                        + "; ".join(f"{h}: {r}" for h, r in progress.refused.items())
                    ) from None
                submit(replace(task, excluded=frozenset(refused_ids)))
                return
            record(task, grader_error(task.submission, settings, f"on the cluster: {cause!r}"))
            return
        except TaskCancelledError:
            return  # cancelled by the deadline (already recorded) or by an interrupt
        except RayError as exc:  # every attempt's node or worker died
            attempts = len(starts.get(task.key, ())) or 1
            why = f"the node grading it died ({attempts} attempt(s)): {type(exc).__name__}"
            record(task, grader_error(task.submission, settings, why))
            return
        result = SubmissionResult.from_json(report.result)
        began = starts.get(task.key, [("", report.host, report.started)])[-1][2]
        waited = max(0.0, began - task.submitted)
        extra = {**result.extra, "node": report.host, "queued_s": round(waited, 2)}
        if report.fetched:
            extra["fetched"] = list(report.fetched)
        record(task, replace(result, source_path=str(task.submission.path), extra=extra))
        reports.append((report, waited))

    nodes_seen = 0.0
    try:
        while pending:
            # every result ready within the pause, not one per round trip
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            starts: dict[str, list[tuple[str, str, float]]] = ray.get(ledger.snapshot.remote())
            for ref in ready:
                collect(ref, pending.pop(ref), starts)
            now = time.time()
            for ref, task in list(pending.items()):
                began = starts.get(task.key)
                if began and now - began[-1][2] > task.deadline_s:
                    ray.cancel(ref, force=True)
                    del pending[ref]
                    why = (
                        f"did not finish within {task.deadline_s:.0f} s on {began[-1][1]} "
                        "(the whole submission's deadline): cancelled"
                    )
                    record(task, grader_error(task.submission, settings, why))
            if now - nodes_seen >= NODES_EVERY_S:
                progress.nodes, nodes_seen = len(_usable_nodes(ray, refused_ids)), now
            progress.in_flight = sum(1 for t in pending.values() if t.key in starts)
            progress.retries = sum(max(0, len(s) - 1) for s in starts.values())
            show(progress)
    except BaseException:  # Ctrl-C, SIGTERM, or the gradebook failing: stop the cluster's work
        for ref in pending:
            ray.cancel(ref, force=True)
        _keep_finished(ray, pending, collect, ledger)
        raise
    return ClusterBatch(
        results=sorted(results, key=lambda r: r.student),
        nodes=_summaries(reports),
        refused=dict(progress.refused),
        retries=progress.retries,
    )


def _usable_nodes(ray: Any, refused: set[str]) -> list[str]:
    """The nodes that may still grade: alive, with CPUs (not a head kept for the driver), and
    not refusing."""
    return [
        n["NodeID"]
        for n in ray.nodes()
        if n.get("Alive")
        and n.get("Resources", {}).get("CPU", 0) > 0
        and n["NodeID"] not in refused
    ]


def _keep_finished(
    ray: Any, pending: dict[Any, _Task], collect: Callable[..., None], ledger: Any
) -> None:
    """Record the tasks that finished before the cancellation reached them."""
    if not pending:
        return
    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=2)
    starts = ray.get(ledger.snapshot.remote())
    for ref in ready:
        try:
            ray.get(ref, timeout=0)
        except Exception:  # cancelled or failed: no result to keep
            continue
        collect(ref, pending[ref], starts)


def _summaries(reports: Sequence[tuple[NodeReport, float]]) -> tuple[NodeSummary, ...]:
    by_host: dict[str, list[tuple[NodeReport, float]]] = {}
    for report, waited in reports:
        by_host.setdefault(report.host, []).append((report, waited))
    return tuple(
        NodeSummary(
            host=host,
            graded=len(items),
            median_wait_s=round(statistics.median(w for _, w in items), 2),
            median_run_s=round(statistics.median(r.seconds for r, _ in items), 2),
        )
        for host, items in sorted(by_host.items())
    )
