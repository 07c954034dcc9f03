"""One submission graded on a node of a Ray cluster: the body of the task `raydriver` submits.

The node grades exactly as the local pool does (the same sandbox, limits, two stages and
verdicts), from what the task brought (`rayjob.JobBundle`, the notebook's bytes) and the files
its own cache holds or fetches once. Before any work it checks that it can sandbox, the way
`deepgrade doctor` does; a node that cannot refuses the task (NodeRefused, with the doctor's
reason) and the driver sends the task elsewhere. The result goes back to the driver, the only
writer of the gradebook, with where and when it ran.

A Ray worker process runs many tasks in turn: it keeps one warm stage-2 server per bundle
(checks.warm) across them, closed when the worker exits.
"""

from __future__ import annotations

import atexit
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from deepgrade.errors import DeepgradeError
from deepgrade.rayjob import JobBundle, NodeFiles, cached_copies

_servers: dict[str, Any] = {}  # bundle digest -> CheckServers, for this worker process


class NodeRefused(DeepgradeError):
    """This node cannot grade safely (no usable sandbox or limits): the doctor's reason."""

    def __init__(self, node_id: str, node: str, reason: str) -> None:
        super().__init__(f"{node}: {reason}")
        self.node_id = node_id
        self.node = node
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # raised on a node, read on the driver
        return (type(self), (self.node_id, self.node, self.reason))


@dataclass(frozen=True)
class NodeReport:
    """What a task returns: the result, where it ran, when it started and how long it took."""

    result: dict[str, Any]  # SubmissionResult.to_json()
    node_id: str
    host: str  # the host's name and the node's id, short: nodes may share a host
    started: float  # time.time() on the node when the task began
    seconds: float
    fetched: tuple[str, ...]  # files this task brought to the node (filled once per node)


def _node() -> tuple[str, str]:
    """This node's id, and how reports name it: host and id, as nodes may share a host."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return node_id, f"{socket.gethostname()}:{node_id[:8]}"


def refusal(unsafe: bool, allow_unlimited: bool, gpu: bool) -> str:
    """Why this node cannot grade as the batch requires, "" when it can: what `deepgrade
    doctor` would say of its sandbox and limits."""
    from deepgrade import limits
    from deepgrade.sandbox import find_bwrap, unavailable_reason

    if not unsafe and find_bwrap() is None:
        return f"no usable sandbox: {unavailable_reason()}"
    try:
        limits.require(unsafe=unsafe, allow_unlimited=allow_unlimited, gpu=gpu)
    except DeepgradeError as exc:
        return str(exc)
    return ""


def unlimited_here(unsafe: bool, allow_unlimited: bool, gpu: bool) -> bool:
    """Whether this node grades without memory/process limits (allowed, and marked so)."""
    from deepgrade import limits

    host = limits.require(unsafe=unsafe, allow_unlimited=allow_unlimited, gpu=gpu)
    return allow_unlimited and bool(host.refusal(sandboxed=False, gpu=gpu))


def _warm_servers(digest: str) -> Any:
    from deepgrade.checks.warm import CheckServers

    if digest not in _servers:
        for old in _servers.values():  # another batch's: its checks are not this one's
            old.close()
        _servers.clear()
        _servers[digest] = CheckServers()
        atexit.register(_servers[digest].close)
    return _servers[digest]


def _fetch(ray: Any, ref: Any) -> bytes:
    """A shipped file's bytes from the object store (only when this node lacks the file)."""
    return bytes(ray.get(ref))


def node_cache() -> Path:
    from deepgrade.project import cache_dir

    return cache_dir()


def grade_on_node(
    bundle: JobBundle,
    student: str,
    notebook: bytes,
    file_refs: Mapping[str, Any],
    ledger: Any | None = None,
    key: str = "",
) -> NodeReport:
    """Grade one submission here. `file_refs` maps each shipped file's sha256 to its object
    in Ray's store, fetched only when this node lacks the file; `ledger` (an actor) hears
    that the task started, so the driver can count retries and time the deadline."""
    import ray

    from deepgrade.grade import grade_submission
    from deepgrade.rayjob import node_settings
    from deepgrade.submissions import Submission

    started = time.time()
    node_id, host = _node()
    gpu = float(bundle.profile["profile"].get("gpus") or 0) > 0
    why = refusal(bundle.unsafe, bundle.allow_unlimited, gpu)
    if why:
        raise NodeRefused(node_id, host, why)
    if ledger is not None:  # after the refusal: a start is grading begun, counted as a retry
        ledger.started.remote(key, node_id, host, started)
    files = NodeFiles(node_cache())
    cached = cached_copies(files.cache)
    local: dict[str, Path] = {}
    fetched: list[str] = []
    for shipped in bundle.files:
        path, now = files.file(shipped, partial(_fetch, ray, file_refs[shipped.sha256]), cached)
        local[shipped.sha256] = path
        if now:
            fetched.append(shipped.name)
    spec, release = files.exercise(bundle)
    work = files.root / "runs" / bundle.digest[:16]
    incoming = work / "_submissions" / f"{student}-{os.getpid()}"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / bundle.notebook
    path.write_bytes(notebook)
    settings = node_settings(bundle, spec, release, local, work)
    unlimited = unlimited_here(bundle.unsafe, bundle.allow_unlimited, gpu)
    settings = replace(settings, unlimited=unlimited, checks=_warm_servers(bundle.digest))
    submission = Submission(student, path)
    result = grade_submission(submission, settings)
    if settings.profile.spec.borderline_auto:
        from deepgrade.borderline import rerun

        result = rerun(submission, settings, result, grade_submission)
    path.unlink(missing_ok=True)
    return NodeReport(
        result=result.to_json(),
        node_id=node_id,
        host=host,
        started=started,
        seconds=time.time() - started,
        fetched=tuple(fetched),
    )
