"""Stage 1 inside the sandbox: run one notebook with papermill, then hand back a tar.

A standalone script (stdlib, papermill and nbformat only: deepgrade itself is not importable
inside the sandbox). It is bound read-only into the sandbox and started by deepgrade.execute.

The result travels as a tar stream on a private file descriptor that only this process holds:
the descriptor handed in is moved to a close-on-exec copy before the kernel starts, fd 1 is
pointed at fd 2, and the process makes itself non-dumpable so no other process in the sandbox
can open it through /proc/<pid>/fd. The tar is written only after every other process in the
sandbox is dead, so nothing can race the executed notebook or the artifacts it contains.

The grader's cells at the end (GradeTime) run in the student's kernel, so student code can see
what they see: the hidden values arrive on a second private descriptor, drained before the
kernel starts, and are written to a fresh file only when the first of those cells is about to
run; a failure there is described from a template (the declared function and a known exception
type, never the message), and the student's saved files are frozen at that moment.

Errors do not stop the run (allow_errors): later cells can still produce artifacts that earn
points. A cell that exceeds the cell time limit is interrupted and recorded, and the run goes
on; the whole-notebook deadline kills the kernel, which ends the run but still sends back
everything produced so far.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import ctypes
import hashlib
import io
import json
import os
import re
import secrets
import signal
import stat
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_DUMPABLE = 4
MAX_OUTPUT_BYTES = 1024 * 1024  # one cell output larger than this is replaced by a note
MAX_DETAIL_CHARS = 300
TIMEOUT_ENAME = "CellTimeoutError"  # the ename our error_on_timeout reply carries
GRADETIME_TAG = "deepgrade-gradetime"  # deepgrade.grade tags its cells with it
# The first grade-time cell (deepgrade.grade.HIDDEN_LOADER) opens this string literal; the
# runner replaces it with the path of the file it writes the hidden values to, just before.
HIDDEN_FILE_PLACEHOLDER = '"@@deepgrade-hidden-file@@"'
# Exception types a student may read about a grade-time cell: student code runs there with the
# hidden values in reach and could name a class after them, so any other name is not repeated.
KNOWN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
) | {
    TIMEOUT_ENAME,
    "AxisError",  # numpy
    "LinAlgError",
    "UFuncTypeError",
    "InvalidArgumentError",  # TensorFlow, as Keras raises them
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "UnimplementedError",
    "InternalError",
    "NotFoundError",
    "OutOfRangeError",
    "UnknownError",
}
GPU_PROBE_TIMEOUT_S = 300  # importing a backend and starting CUDA, on a loaded host
GPU_STARTUP_FILE = ".ipython/profile_default/startup/00-deepgrade-gpu-memory.py"
# The kernel's IPython runs this before the first cell: this run's share of its GPU, for the
# backends that only take a cap in the process (JAX reads XLA_PYTHON_CLIENT_MEM_FRACTION).
GPU_STARTUP = """\
# Written by deepgrade before the kernel started: this run's share of its GPU.
def _deepgrade_gpu_cap():
    import os

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    megabytes = int(os.environ.get("DEEPGRADE_GPU_MEMORY_MB") or 0)
    fraction = float(os.environ.get("DEEPGRADE_GPU_MEMORY_FRACTION") or 0)
    if backend == "tensorflow" and megabytes:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            config = tf.config.LogicalDeviceConfiguration(memory_limit=megabytes)
            tf.config.set_logical_device_configuration(gpu, [config])
    elif backend == "torch" and fraction:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(fraction)


_deepgrade_gpu_cap()
del _deepgrade_gpu_cap
"""
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,79}")


def _private_channel(fd: int) -> int:
    """Keep the tar channel only here: a close-on-exec copy, and fd 1 -> stderr."""
    channel = os.dup(fd)  # os.dup makes non-inheritable (close-on-exec) descriptors
    os.close(fd)
    os.dup2(2, 1)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return channel


def _read_hidden(fd: int | None) -> bytes | None:
    """The hidden values from their private pipe, read to the end and closed before the
    kernel (or anything else in the sandbox) starts: nothing is left there to find."""
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _one_line(text: str) -> str:
    """One bounded line: no terminal escapes, control or format characters (bidi, zero-width)."""
    kept = []
    for char in _ANSI.sub("", str(text)):
        kind = unicodedata.category(char)
        if kind == "Cc" or kind[0] == "Z":
            kept.append(" ")
        elif kind[0] != "C":
            kept.append(char)
    line = " ".join("".join(kept).split())
    return line if len(line) <= MAX_DETAIL_CHARS else line[: MAX_DETAIL_CHARS - 3] + "..."


def _student_exception(ename: str) -> str:
    """A student cell's exception type as reported: a plain (dotted) name, else none."""
    return ename if _NAME.fullmatch(ename) else "an exception"


def _gradetime_exception(ename: str) -> str:
    """A grade-time cell's exception type: only from the fixed vocabulary."""
    return ename if ename in KNOWN_EXCEPTIONS else "an exception"


def gradetime_error_detail(error: dict[str, Any]) -> str:
    """The student-visible line for a failed grade-time cell: the grader's template, the
    function it calls (declared by the grader) and the exception type, never its message."""
    ename = str(error.get("ename", ""))
    raised = "raised an exception" if ename == "an exception" else f"raised {ename}"
    calls = [str(name) for name in error.get("calls") or []]
    where = f"cell {error.get('cell')} (the grader's)"
    if calls:
        return (
            f"{where}: {' or '.join(calls)} {raised} when the grader called it with its own "
            "inputs; test your function on other inputs than the notebook's"
        )
    return (
        f"{where}, which calls none of your functions, {raised}: your notebook may have changed "
        "something it relies on (a library name, DATA_DIR, ARTIFACT_DIR); run it top to bottom"
    )


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprints(root: str, cap: int) -> dict[str, str]:
    """sha256 of every regular file under `root` (by relative path), reading at most `cap`
    bytes in all: a file past that (a sparse giant) gets an empty digest, matching nothing."""
    found: dict[str, str] = {}
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.normpath(os.path.relpath(path, root))
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                found[rel] = ""
                if total + st.st_size <= cap:
                    total += st.st_size
                    found[rel] = _digest(path)
    return found


class GradeTime:
    """The grader's cells at the end of the notebook, and what happens when the first starts.

    They are the last `count` cells, by position (a student cannot tag a cell of their own into
    them). When the first one is about to run, the student's saved files are fingerprinted (a
    file changed later, or a student artifact first written later, is not sent back: code left
    running in the kernel could otherwise stuff text it captured from the grader's cells into
    answers.json), and the hidden values, read from a private descriptor before the kernel
    started, are written to a fresh file whose name replaces HIDDEN_FILE_PLACEHOLDER in that
    cell's source. So no cell source holds them and no student cell ran while they existed.
    A failing grade-time cell is recorded with the function it calls and a known exception type
    only: its message is whatever student code put there.
    """

    def __init__(
        self,
        count: int,
        hidden: bytes | None = None,
        artifacts: str = "",
        cwd: str = "",
        student_artifacts: Sequence[str] = (),
        cap: int = 0,
    ) -> None:
        self.count = count
        self.hidden = hidden
        self.artifacts = artifacts
        self.cwd = cwd
        self.student_artifacts = frozenset(os.path.normpath(n) for n in student_artifacts)
        self.cap = cap
        self.first: int | None = None  # index in nb.cells of the first grade-time cell
        self.frozen: dict[str, str] | None = None  # relative path -> sha256, once started
        self.refused: list[str] = []

    def bind(self, nb: Any) -> None:
        cells = len(nb.cells)
        self.first = cells - self.count if 0 < self.count <= cells else None

    def contains(self, index: int | None) -> bool:
        return self.first is not None and index is not None and index >= self.first

    def before_cell(self, cell: Any, index: int) -> None:
        if not self.contains(index) or self.frozen is not None:
            return
        try:
            self.frozen = _fingerprints(self.artifacts, self.cap) if self.artifacts else {}
        except OSError as exc:  # an unreadable artifact folder: nothing the student made counts
            print(f"stage1: could not fingerprint the artifacts: {exc!r}", file=sys.stderr)
            self.frozen = {}
        self._hand_over(cell)

    def _hand_over(self, cell: Any) -> None:
        hidden, self.hidden = self.hidden, None
        if hidden is None or HIDDEN_FILE_PLACEHOLDER not in cell.source:
            return
        for folder in (self.cwd, tempfile.gettempdir()):
            try:
                fd, path = tempfile.mkstemp(prefix=".deepgrade-", suffix=".json", dir=folder)
            except OSError:
                continue
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(hidden)
            except OSError:  # a full tmpfs: try the next folder
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            cell.source = cell.source.replace(HIDDEN_FILE_PLACEHOLDER, json.dumps(path))
            return
        print("stage1: nowhere to write the hidden values for the grader's cells", file=sys.stderr)

    def error(self, cell: Any, number: int | None, ename: str) -> dict[str, Any]:
        declared = cell.get("metadata", {}).get("deepgrade", {}).get("calls", [])
        calls = [c for c in declared if isinstance(c, str) and _NAME.fullmatch(c)]
        return {
            "cell": number,
            "ename": _gradetime_exception(ename),
            "evalue": "",
            "timeout": ename == TIMEOUT_ENAME,
            "gradetime": True,
            "calls": calls,
        }

    def refuse(self, rel: str, path: str) -> str | None:
        """Why a file found at the end is not sent back (None: it is)."""
        if self.frozen is None:
            return None
        rel = os.path.normpath(rel)
        if rel in self.frozen:
            with contextlib.suppress(OSError):
                if _digest(path) == self.frozen[rel] != "":
                    return None
            reason = "changed while the grader's cells ran"
        elif rel in self.student_artifacts:
            reason = "written while the grader's cells ran"
        else:
            return None
        self.refused.append(rel)
        return reason

    def judge(self, status: dict[str, Any]) -> None:
        """Saved files changed under the grader's cells: the verdict says so (template text)."""
        if not self.refused or status.get("verdict") not in ("graded", "cell_error"):
            return
        named = sorted(rel for rel in self.refused if rel in self.student_artifacts)
        others = len(self.refused) - len(named)
        listed = ", ".join(named) + (f" and {others} other file(s)" if others and named else "")
        listed = listed or f"{others} file(s)"
        status["verdict"] = "tampered"
        status["detail"] = (
            f"saved files ({listed}) changed while the grader's cells ran, so they were not "
            "graded: leave nothing running when your cells end (threads, IPython hooks or "
            "event callbacks, sys.settrace)"
        )


class Run:
    """What happened, collected from nbclient's hooks (papermill's own error check treats
    sys.exit(0) as success, so it is not used for the verdict)."""

    def __init__(
        self, cell_timeout: int, notebook_timeout: float, gradetime: GradeTime | None = None
    ) -> None:
        self.cell_timeout = cell_timeout
        self.notebook_timeout = notebook_timeout
        self.gradetime = gradetime or GradeTime(0)
        self.nb: Any = None
        self.current: int | None = None  # index in nb.cells of the cell running now
        self.errors: list[dict[str, Any]] = []  # every failing cell, in order
        self.ending: tuple[str, str] | None = None  # (verdict, detail) when the run was cut
        self.notebook_deadline_hit = False

    def code_number(self, index: int | None) -> int | None:
        """1-based number among the submission's code cells (papermill's injected
        parameters cell is not the student's and is not counted)."""
        if index is None or self.nb is None:
            return None
        number = 0
        for cell in self.nb.cells[: index + 1]:
            tags = cell.get("metadata", {}).get("tags", [])
            if cell.get("cell_type") == "code" and "injected-parameters" not in tags:
                number += 1
        return number

    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        self.nb = notebook
        self.gradetime.bind(notebook)

    def on_cell_execute(self, cell: Any, cell_index: int, **_: Any) -> None:
        self.current = cell_index
        self.gradetime.before_cell(cell, cell_index)

    def on_cell_error(self, cell: Any, cell_index: int, execute_reply: Any, **_: Any) -> None:
        content = execute_reply.get("content", {})
        ename = str(content.get("ename", "Error"))
        if self.gradetime.contains(cell_index):
            self.errors.append(self.gradetime.error(cell, self.code_number(cell_index), ename))
            return
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            return  # the author marked this error as expected (nbclient's own convention)
        self.errors.append(
            {
                "cell": self.code_number(cell_index),
                "ename": _student_exception(ename),
                "evalue": _one_line(content.get("evalue", "")),
                "timeout": ename == TIMEOUT_ENAME,
            }
        )

    def end(self, verdict: str, detail: str) -> None:
        if self.ending is None:
            self.ending = (verdict, detail)

    def status(self, seconds: float) -> dict[str, Any]:
        first = self.errors[0] if self.errors else None
        if first is None:
            verdict, detail = "graded", "ran to the end without errors"
        elif first["timeout"]:
            verdict = "timeout"
            detail = f"cell {first['cell']} ran longer than the {self.cell_timeout} s cell limit"
        elif first.get("gradetime"):
            verdict, detail = "cell_error", gradetime_error_detail(first)
        else:
            verdict = "cell_error"
            detail = f"cell {first['cell']} raised {first['ename']}"
            detail += f": {first['evalue']}" if first["evalue"] else ""
        if self.ending is not None:  # the run was cut short: say how, and the first error
            verdict, ending = self.ending
            detail = ending if first is None else f"{ending}; first error: {detail}"
        if first is not None:
            failed = first["cell"]
        else:  # the cell that was running when the run was cut, if it was
            failed = self.code_number(self.current) if self.ending is not None else None
        return {
            "verdict": verdict,
            "detail": detail,
            "failed_cell": failed,
            "seconds": round(seconds, 3),
            "errors": self.errors,
        }


def _kill_everything_else(sandboxed: bool) -> None:
    """Inside the sandbox's PID namespace kill(-1) reaches every process but bwrap's init and
    us. Outside (unsafe mode) that would hit the whole host, so only our descendants."""
    if sandboxed and os.getpid() != 1 and _read("/proc/1/comm").strip() == "bwrap":
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        return
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _read(f"/proc/{name}/stat").rpartition(")")[2].split()
            if len(fields) > 1:
                parents[int(name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


# ---------------------------------------------------------------- measured cells
# A grade-time cell whose source has a line `# deepgrade-measure: NAME` is measured here, outside
# the student's kernel: the CPU time of every process in the sandbox but this runner, from
# nbclient's on_cell_execute (before the cell is sent) to on_cell_executed (its reply is in).
# Just before sending, the runner replaces NONCE_TOKEN in the cell's source with a fresh random
# number, so the cell's inputs (built from it) exist nowhere before the measurement starts.

MEASURED_TAG = "deepgrade-gradetime"  # grade.GRADETIME_TAG: only the grader's cells are measured
MEASURE_LINE = re.compile(r"^# deepgrade-measure: ([A-Za-z0-9_]{1,40})$", re.MULTILINE)
NONCE_TOKEN = "__DG_NONCE__"
SAMPLE_S = 0.01  # a process that exits between samples is still counted by its parent's wait


def _in_sandbox_namespace(sandboxed: bool) -> bool:
    """True inside the sandbox's own PID namespace (bwrap is its init, we are not)."""
    return sandboxed and os.getpid() != 1 and _read("/proc/1/comm").strip() == "bwrap"


def _cpu_ticks(pid: int) -> tuple[tuple[int, int], int, int] | None:
    """((pid, start time), own utime+stime, waited-for children's cutime+cstime) in ticks."""
    fields = _read(f"/proc/{pid}/stat").rpartition(")")[2].split()
    if len(fields) < 20:
        return None
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return (pid, int(fields[19])), own, children


SIGCHLD_MASK = 1 << (signal.SIGCHLD - 1)


def _ignores_sigchld(pid: int) -> bool:
    """Whether the process ignores SIGCHLD: its children are then reaped without their CPU
    time reaching it, and one that lives between two samples would not be counted."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("SigIgn:"):
            try:
                return bool(int(line.split()[1], 16) & SIGCHLD_MASK)
            except (IndexError, ValueError):
                return False
    return False


class CellUsage:
    """CPU and wall time of the measured cells, sampled from /proc (never from the kernel).

    Counted: every process of the sandbox but this runner (in unsafe mode: our descendants),
    its threads included, and what its waited-for children used. A process that exits between
    two samples counts through its parent's children's times (twice at worst, never less). A
    process that ignores SIGCHLD (children reaped unaccounted) voids the cell's measurement.
    """

    def __init__(
        self, sandboxed: bool, is_grader_cell: Callable[[int], bool] = lambda _index: True
    ) -> None:
        self.sandboxed = sandboxed
        self.is_grader_cell = is_grader_cell  # by position: GradeTime.contains
        self.measured: dict[str, dict[str, float]] = {}
        self.problems: list[str] = []
        self._names: set[str] = set()
        self._duplicated: set[str] = set()
        self._lock = threading.Lock()
        self._active: tuple[str, float, float] | None = None  # (name, nonce, wall start)
        self._base: dict[tuple[int, int], tuple[int, int]] = {}
        self._last: dict[tuple[int, int], tuple[int, int]] = {}
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._tainted = False  # a process ignored SIGCHLD while the cell was measured

    def _pids(self) -> list[int]:
        if _in_sandbox_namespace(self.sandboxed):
            me = os.getpid()
            return [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != me]
        return _descendants(os.getpid())

    def _snapshot(self) -> dict[tuple[int, int], tuple[int, int]]:
        found = {}
        for pid in self._pids():
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                found[ticks[0]] = (ticks[1], ticks[2])
        return found

    def _sample(self) -> None:
        with self._lock:
            for key, (own, children) in self._snapshot().items():
                old = self._last.get(key, (0, 0))
                self._last[key] = (max(own, old[0]), max(children, old[1]))
                if not self._tainted and _ignores_sigchld(key[0]):
                    self._tainted = True

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def start(self, cell: Any, cell_index: int = -1, **_: Any) -> None:
        """on_cell_execute: put the nonce in, take the first sample, start sampling."""
        self._finish_sampler()  # a cell that timed out never reached end(): dropped
        self._active = None
        tags = cell.get("metadata", {}).get("tags", [])
        match = MEASURE_LINE.search(str(cell.get("source", "")))
        if MEASURED_TAG not in tags or match is None or not self.is_grader_cell(cell_index):
            return
        name = match.group(1)
        if name in self._names:
            self._duplicated.add(name)
            self.problems.append(f"more than one cell measured as {name!r}: none is used")
        self._names.add(name)
        nonce = float(secrets.randbelow(2**48))  # exact in JSON and in a float
        cell["source"] = str(cell["source"]).replace(NONCE_TOKEN, str(int(nonce)))
        self._base = self._snapshot()
        self._last = dict(self._base)
        self._tainted = False
        self._active = (name, nonce, time.monotonic())
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    def _finish_sampler(self) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None

    def end(self, cell: Any, **_: Any) -> None:
        """on_cell_executed: the last sample; the cell's usage is the sum of the increases."""
        if self._active is None:
            return
        name, nonce, started = self._active
        wall = time.monotonic() - started
        self._finish_sampler()
        self._sample()
        self._active = None
        ticks = 0
        for key, (own, children) in self._last.items():
            base_own, base_children = self._base.get(key, (0, 0))
            ticks += max(own - base_own, 0) + max(children - base_children, 0)
        if self._tainted:
            self.problems.append(
                f"a process ignored SIGCHLD while {name!r} was measured (its children's CPU "
                "time could escape): the measurement is not used"
            )
            return
        cpu = ticks / os.sysconf("SC_CLK_TCK")
        self.measured[name] = {"cpu_s": round(cpu, 4), "wall_s": round(wall, 4), "nonce": nonce}

    def report(self) -> dict[str, Any]:
        """For status.json: {name: {cpu_s, wall_s, nonce}}, without names measured twice."""
        return {k: v for k, v in self.measured.items() if k not in self._duplicated}


def _both(*hooks: Any) -> Any:
    def call(**kwargs: Any) -> None:
        for hook in hooks:
            hook(**kwargs)

    return call


def _execute(args: argparse.Namespace, run: Run, usage: CellUsage) -> None:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    timeout_reply = {
        "ename": TIMEOUT_ENAME,
        "evalue": f"cell ran longer than {args.cell_timeout} s",
        "traceback": [],
    }
    try:
        papermill.execute_notebook(
            args.notebook,
            None,  # nothing on disk that a student process could rewrite; we keep run.nb
            parameters=json.loads(args.parameters),
            kernel_name="python3",
            language="python",  # a notebook with stripped metadata still runs
            cwd=args.cwd,
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
            execution_timeout=args.cell_timeout,
            allow_errors=True,
            coalesce_streams=True,  # progress bars (\r, \b) stay short in the feedback
            interrupt_on_timeout=True,
            error_on_timeout=timeout_reply,
            # Killed, not asked to exit, once the last cell has replied: an interpreter holding
            # TensorFlow spends about 2 CPU-seconds tearing itself down (bench/README.md), and
            # what the notebook does after its last cell (atexit hooks) is not part of the run.
            shutdown_kernel="immediate",
            on_notebook_start=run.on_notebook_start,
            on_cell_execute=_both(run.on_cell_execute, usage.start),
            on_cell_executed=usage.end,
            on_cell_error=run.on_cell_error,
        )
    except PapermillExecutionError:
        pass  # already recorded by on_cell_error
    except DeadKernelError:
        if run.notebook_deadline_hit:
            run.end("timeout", f"the notebook ran longer than its {run.notebook_timeout:g} s limit")
        else:
            cell = run.code_number(run.current)
            where = f"while running cell {cell}" if cell else "before any cell ran"
            run.end("kernel_died", f"the kernel died {where} (crash, os._exit or out of memory)")
    except CellTimeoutError as exc:  # the interrupted cell never finished its output
        cell = run.code_number(run.current)
        run.end("timeout", f"cell {cell} ran longer than the {args.cell_timeout} s cell limit")
        print(f"stage1: {exc!r}", file=sys.stderr)
    except Exception as exc:  # kernel failed to start, unreadable notebook: not the student's
        if run.notebook_deadline_hit:
            run.end("timeout", f"the notebook ran longer than its {run.notebook_timeout:g} s limit")
        else:
            run.end("grader_error", _one_line(f"the notebook could not run: {exc!r}"))
            traceback.print_exc()


def gpu_problem(probe: str) -> str:
    """Empty when this run can use its GPU, else why not: `probe` (deepgrade/_gpu_probe.py) runs
    in a child process before any student code, so the answer is the sandbox's, not theirs."""
    import subprocess

    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # a look, not a claim
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-B", probe], env=env, capture_output=True,
            timeout=GPU_PROBE_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the GPU check could not run: {exc}"
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else {}
    except ValueError:
        found = {}
    if not isinstance(found, dict) or "ok" not in found:
        tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return _one_line(f"the GPU check failed: {tail[-1] if tail else done.returncode}")
    return "" if found["ok"] is True else _one_line(str(found.get("problem") or "unknown"))


def install_gpu_cap(home: str) -> None:
    """The kernel start-up file that caps this run's GPU memory (see GPU_STARTUP)."""
    path = os.path.join(home, GPU_STARTUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(GPU_STARTUP)


def _capped_notebook(nb: Any) -> bytes:
    nbformat: Any = __import__("nbformat")  # untyped library

    for cell in nb.cells:
        outputs = cell.get("outputs") or []
        for i, output in enumerate(outputs):
            size = len(json.dumps(output))
            if size > MAX_OUTPUT_BYTES:
                note = f"[output of {size} bytes removed by the grader: over the size limit]\n"
                outputs[i] = nbformat.v4.new_output("stream", name="stderr", text=note)
    text: str = nbformat.writes(nb)
    return text.encode("utf-8")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_artifacts(
    tar: tarfile.TarFile, root: str, cap: int, gradetime: GradeTime | None = None
) -> list[str]:
    """Regular files and folders only, in total at most `cap` bytes (a sparse file can claim
    more than the tmpfs holds); links, FIFOs and devices are skipped and reported, and so are
    the files `gradetime` refuses (changed under the grader's cells)."""
    skipped: list[str] = []
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        rel_folder = os.path.relpath(folder, root)
        for name in [*sorted(dirs), *sorted(files)]:
            path = os.path.join(folder, name)
            rel = os.path.normpath(os.path.join(rel_folder, name))
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                info = tarfile.TarInfo(f"artifacts/{rel}")
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel}: not a regular file")
                continue
            if total + st.st_size > cap:
                skipped.append(f"{rel}: over the artifact size limit")
                continue
            refused = gradetime.refuse(rel, path) if gradetime is not None else None
            if refused:
                skipped.append(f"{rel}: {refused}")
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                info = tarfile.TarInfo(f"artifacts/{rel}")
                info.size, info.mode, info.mtime = st.st_size, 0o644, int(st.st_mtime)
                tar.addfile(info, handle)
            total += st.st_size
    return skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", required=True)
    parser.add_argument("--parameters", default="{}", help="JSON object")
    parser.add_argument("--cell-timeout", type=int, required=True)
    parser.add_argument("--notebook-timeout", type=float, required=True)
    parser.add_argument("--artifacts", required=True, help="folder the notebook saves into")
    parser.add_argument("--artifact-cap", type=int, required=True, help="bytes")
    parser.add_argument("--cwd", required=True, help="the kernel's working folder")
    parser.add_argument("--tar-fd", type=int, required=True)
    parser.add_argument("--sandboxed", action="store_true")
    parser.add_argument("--gradetime-cells", type=int, default=0, help="the last N cells")
    parser.add_argument("--hidden-fd", type=int, help="the hidden values (JSON) to read")
    parser.add_argument("--student-artifacts", default="[]", help="JSON list of file names")
    parser.add_argument("--gpu-probe", help="deepgrade/_gpu_probe.py: this run needs a GPU")
    args = parser.parse_args(argv)

    channel = _private_channel(args.tar_fd)
    hidden = _read_hidden(args.hidden_fd)
    print("stage1: runner started", file=sys.stderr, flush=True)
    start = time.monotonic()
    gradetime = GradeTime(
        args.gradetime_cells,
        hidden,
        artifacts=args.artifacts,
        cwd=args.cwd,
        student_artifacts=json.loads(args.student_artifacts),
        cap=args.artifact_cap,
    )
    run = Run(args.cell_timeout, args.notebook_timeout, gradetime)
    usage = CellUsage(args.sandboxed, gradetime.contains)

    def deadline() -> None:
        run.notebook_deadline_hit = True
        _kill_everything_else(args.sandboxed)

    timer = threading.Timer(args.notebook_timeout, deadline)
    timer.daemon = True
    timer.start()
    try:
        problem = gpu_problem(args.gpu_probe) if args.gpu_probe else ""
        if problem:  # the grader's doing, not the student's: never their timeout
            run.end("grader_error", f"the GPU given to this run is not usable here: {problem}")
        else:
            if args.gpu_probe and os.environ.get("DEEPGRADE_GPU_MEMORY_FRACTION"):
                install_gpu_cap(os.environ.get("HOME") or args.cwd)
            _execute(args, run, usage)
    finally:
        timer.cancel()
        _kill_everything_else(args.sandboxed)
    if run.notebook_deadline_hit and run.ending is None:
        run.end("timeout", f"the notebook ran longer than its {args.notebook_timeout:g} s limit")
    status = run.status(time.monotonic() - start)
    status["cell_usage"], status["usage_problems"] = usage.report(), usage.problems
    with os.fdopen(channel, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
        if run.nb is not None:
            _add_bytes(tar, "executed.ipynb", _capped_notebook(run.nb))
        skipped = _add_artifacts(tar, args.artifacts, args.artifact_cap, gradetime)
        status["skipped_artifacts"] = skipped
        gradetime.judge(status)
        _add_bytes(tar, "status.json", json.dumps(status, indent=1).encode("utf-8"))
    print(f"stage1: {status['verdict']}: {status['detail']}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
