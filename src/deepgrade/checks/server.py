"""Stage 2, warm: one process per batch worker that imports pytest, Keras and the exercise's
checks once, then forks a fresh child for each submission's hidden checks.

Importing Keras with TensorFlow costs ~3 CPU-seconds, more than the checks themselves; paying
it once per worker instead of once per submission is most of what stage 2 costs. The rules
that keep this as safe as a fresh process per submission:

- This process never reads a student's file. It takes small JSON requests from the grader on
  a private socket and forks; only the child receives the submission's artifacts (a tar on a
  pipe), and the child exits when its checks are done. No two submissions share a process.
- Before forking again, every other process in the sandbox is killed (what the child may have
  left running) and the writable places (/tmp, HOME, /dev/shm) are emptied, so nothing of one
  submission reaches the next. The child closes the socket before it touches the artifacts,
  this process is not dumpable (no ptrace, no /proc/PID/mem from the child), and the child
  raises its own OOM score, so under memory pressure the kernel kills it, not this one.
- Results go out exactly as in a fresh process: the plugin writes snapshots to a pipe whose
  write end the grader sent for this request only, and the host validates them (verify).

Run as `python -m deepgrade.checks.server --control-fd N ...` by deepgrade.checks.warm, inside
the stage-2 sandbox (or, with --unsafe, without it: then only the child's own descendants are
killed, never the host's other processes).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepgrade._stage1_runner import _descendants, _in_sandbox_namespace
from deepgrade.checks.runner import PYTEST_OPTIONS

PR_SET_DUMPABLE = 4
MAX_REQUEST_BYTES = 1 << 20
FDS_PER_REQUEST = 3  # the results pipe's write end, the artifacts tar, the pytest log
WIPED = ("/tmp", "/dev/shm")  # and HOME: the sandbox's writable places, emptied between runs
STATUS_OK = 0


def _not_dumpable() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _preload() -> None:
    """What every child would import: pytest with deepgrade's plugin, Keras and its backend."""
    import h5py  # noqa: F401
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401

    import deepgrade.checks.plugin  # noqa: F401


def _pytest_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    """pytest's command line for this exercise, the same in the server and in each child."""
    return [
        *PYTEST_OPTIONS, "-c", args.ini,
        f"--rootdir={args.exercise}", f"--confcutdir={args.exercise}",
        f"--dg-exercise-dir={args.exercise}", *extra, args.exercise,
    ]  # fmt: skip


def _precollect(args: argparse.Namespace) -> None:
    """Import the exercise's checks and conftest once, rewritten by pytest exactly as a child's
    collection would: each child then finds them in sys.modules (pytest's import takes a module
    already there) instead of parsing and rewriting them again, ~0.5 CPU-seconds a submission.
    Only the grader's own files are read; no submission's artifact exists here. A check that
    does not import is left for the child, whose collection reports it as it always did."""
    import pytest

    pytest.main(_pytest_argv(args, "--collect-only"))


def _clean_up(sandboxed: bool) -> None:
    """Nothing of the last submission may reach the next: no process, no file."""
    if _in_sandbox_namespace(sandboxed):
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # all but bwrap's init and us
        places = [*WIPED, os.environ.get("HOME", "")]
        for place in filter(None, places):
            for entry in Path(place).glob("*"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
    else:
        for pid in _descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _child(args: argparse.Namespace, request: dict[str, Any], fds: Sequence[int], run: Path) -> int:
    """In the forked child: take the artifacts into `run`, run pytest on them; the exit code."""
    results_fd, tar_fd, log_fd = fds
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")  # under memory pressure the kernel takes this one, not the server
    tar = run / "artifacts.tar"
    with os.fdopen(tar_fd, "rb") as source, tar.open("wb") as target:
        shutil.copyfileobj(source, target)
    from deepgrade import tarsafe

    artifacts = run / "artifacts"
    artifacts.mkdir()
    problems = tarsafe.extract(
        tar, run, files=(), tree="artifacts", max_bytes=int(request["max_bytes"])
    )
    tar.unlink()
    if problems:
        print(f"[deepgrade] artifacts: {'; '.join(problems)}", flush=True)
    usage = run / "usage.json"
    usage.write_text(json.dumps(request.get("usage") or {}), encoding="utf-8")
    profile = run / "profile.json"  # the resolved profile, as the grader sent it
    profile.write_text(json.dumps(request["profile"]), encoding="utf-8")
    import pytest

    argv = _pytest_argv(
        args, f"--dg-artifacts={artifacts}", f"--dg-data={args.data}",
        f"--dg-profile-file={profile}", f"--dg-results-fd={results_fd}",
        f"--dg-stage1-usage={usage}",
    )  # fmt: skip
    return int(pytest.main(argv))


def _wait(pid: int, timeout_s: float) -> tuple[int, bool, Any]:
    """(status, timed out, rusage) of the child; past `timeout_s` its group is killed."""
    deadline = time.monotonic() + timeout_s
    timed_out = False
    pause = 0.005
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, timed_out, usage
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def serve_one(
    args: argparse.Namespace, control: socket.socket, request: dict[str, Any], fds: list[int]
) -> dict[str, Any]:
    """Fork the child for one request, wait for it, clean up; the reply for the grader."""
    if len(fds) != FDS_PER_REQUEST:
        for fd in fds:
            os.close(fd)
        return {"error": f"expected {FDS_PER_REQUEST} descriptors, got {len(fds)}"}
    started = time.monotonic()
    run = Path(tempfile.mkdtemp(prefix="dg-checks-"))  # the child's; removed after it
    pid = os.fork()
    if pid == 0:  # the child: nothing of the server's channel survives into it
        code = 70
        try:
            control.close()
            os.setpgid(0, 0)
            code = _child(args, request, fds, run)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):  # os._exit skips Python's own flush
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    for fd in fds:
        os.close(fd)
    status, timed_out, usage = _wait(pid, float(request["timeout_s"]))
    _clean_up(args.sandboxed)
    shutil.rmtree(run, ignore_errors=True)
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--exercise", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--ini", required=True)
    parser.add_argument("--sandboxed", action="store_true")
    args = parser.parse_args(argv)
    _not_dumpable()
    control = socket.socket(fileno=args.control_fd)
    _preload()
    _precollect(args)
    # What the imports made lives as long as this process: out of the collector's sight, so
    # a child's collections never walk (and copy-on-write fault in) the preloaded heap.
    gc.freeze()
    control.sendall(json.dumps({"ready": True}).encode())
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MAX_REQUEST_BYTES, FDS_PER_REQUEST)
        except OSError:
            return 1
        if not data:  # the grader closed the socket: the batch is over
            return STATUS_OK
        try:
            request = json.loads(data)
            reply = serve_one(args, control, request, fds)
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"error": f"bad request: {exc}"}
        control.sendall(json.dumps(reply).encode())


if __name__ == "__main__":
    sys.exit(main())
