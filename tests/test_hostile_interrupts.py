"""Threat model: an interrupted batch (Ctrl-C, SIGTERM from a scheduler or a CI timeout).

It must stop within seconds: running sandboxes killed, queued submissions never started,
finished results kept, nothing cancelled recorded as graded (or as a grader error), exit status
130 / 143; the next run grades only the rest. The end-to-end tests run a real `deepgrade grade`
on a throwaway exercise whose notebooks sleep in a marked child process, so the test can see
whether anything the batch started outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_runner import FakeGrader

import deepgrade
from deepgrade import limits, runner
from deepgrade.errors import Cancelled
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import Gradebook
from deepgrade.results import SubmissionResult
from deepgrade.submissions import Submission

# ---------------------------------------------------------------- run_limited and the runner


def _processes_with(token: str) -> list[int]:
    """Pids of live processes whose command line contains `token` (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_cancel_kills_a_running_tree_at_once(tmp_path: Path) -> None:
    token = f"dg-cancel-{uuid.uuid4().hex}"
    started = tmp_path / "started"
    script = (
        "import pathlib, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {token!r}])\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        "time.sleep(600)\n"
    )
    cancel = threading.Event()

    def cancel_once_started() -> None:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel.set()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    begin = time.monotonic()
    with (tmp_path / "out").open("wb") as out, pytest.raises(Cancelled):
        limits.run_limited(
            [sys.executable, "-c", script, token],
            timeout_s=600,
            memory_mb=1024,
            file_size_mb=1,
            stdout=out,
            stderr=out,
            cancel=cancel,
        )
    assert started.exists()
    assert time.monotonic() - begin < 300  # the child alone would have slept 600 s
    assert _processes_with(token) == []


def test_nothing_starts_once_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    marker = tmp_path / "ran"
    with (tmp_path / "out").open("wb") as out, pytest.raises(Cancelled):
        limits.run_limited(
            [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
            timeout_s=60,
            memory_mb=1024,
            file_size_mb=1,
            stdout=out,
            stderr=out,
            cancel=cancel,
        )
    assert not marker.exists()


class CancellableGrader(FakeGrader):
    """The first submission finishes at once; the others grade until the batch is cancelled
    and then raise Cancelled, as limits.run_limited does, except `late`, which finishes
    anyway (it completed as the interrupt came: a finished result the batch must keep)."""

    def __init__(self, late: str) -> None:
        super().__init__()
        self.late = late
        self.first: str | None = None

    def __call__(self, submission: Submission, job: GradeSettings) -> SubmissionResult:
        with self.lock:
            first = self.first is None
            self.first = self.first or submission.student
        if not first:
            assert job.cancel is not None, "the runner gives every job its cancel event"
            assert job.cancel.wait(timeout=60), "the batch was never cancelled"
            if submission.student != self.late:
                with self.lock:
                    self.calls.append((submission.student, job.gpu))
                raise Cancelled(submission.student)
        return super().__call__(submission, job)


@pytest.fixture
def students(tmp_path: Path) -> list[Submission]:
    made = []
    for index in range(7):
        path = tmp_path / f"s{index}.ipynb"
        path.write_text(f"submission {index}")
        made.append(Submission(f"s{index}", path))
    return made


def test_an_interrupt_stops_the_batch_and_keeps_what_finished(
    tmp_path: Path,
    settings: GradeSettings,  # the fixture from conftest
    students: list[Submission],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grader = CancellableGrader(late="s1")
    monkeypatch.setattr(runner, "grade_submission", grader)
    monkeypatch.setattr(runner, "require_sandbox", lambda unsafe: None)

    def ctrl_c(event: runner.BatchEvent) -> None:  # arrives as the first result is shown
        raise KeyboardInterrupt

    with Gradebook(tmp_path / "gb.db") as book:
        with pytest.raises(KeyboardInterrupt):
            runner.grade_batch(students, settings, book, workers=2, on_event=ctrl_c)
        stored = sorted(result.student for result, _ in book.latest())
    started = {student for student, _ in grader.calls}
    # s0 finished first; s1 was running and finished anyway: both kept. Whatever else had
    # started was cancelled and is not in the gradebook; the queued ones never started.
    assert stored == ["s0", "s1"]
    assert started <= {"s0", "s1", "s2"}, f"queued submissions were started: {started}"


class BlockingGrader(FakeGrader):
    """Every submission grades until the batch is cancelled (20 s at most), on a worker
    thread whose id it records."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def __call__(self, submission: Submission, job: GradeSettings) -> SubmissionResult:
        with self.lock:
            self.threads.append(threading.get_ident())
        assert job.cancel is not None
        if job.cancel.wait(timeout=20):
            raise Cancelled(submission.student)
        return super().__call__(submission, job)


def test_a_ctrl_c_the_kernel_gives_a_worker_thread_still_stops_the_batch(
    tmp_path: Path,
    settings: GradeSettings,
    students: list[Submission],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process-wide SIGINT goes to any thread that does not block it; Python raises
    KeyboardInterrupt in the main thread only when that thread runs bytecode again. The batch
    once waited on its workers without a timeout and slept through such a Ctrl-C (the CI hang
    of the real-batch test below); here it is sent to a worker thread on purpose."""
    grader = BlockingGrader()
    monkeypatch.setattr(runner, "grade_submission", grader)
    monkeypatch.setattr(runner, "require_sandbox", lambda unsafe: None)

    def ctrl_c_to_a_worker() -> None:
        deadline = time.monotonic() + 20
        while not grader.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(grader.threads[0], signal.SIGINT)

    # Ctrl-C as a shell delivers it, whatever this test process inherited or was left with
    # (the workers inherit this thread's signal mask)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=ctrl_c_to_a_worker, daemon=True).start()
        started = time.monotonic()
        with Gradebook(tmp_path / "gb.db") as book:
            with pytest.raises(KeyboardInterrupt):
                runner.grade_batch(students, settings, book, workers=2)
            assert book.latest() == []  # nothing finished, nothing cancelled recorded
        assert time.monotonic() - started < 10  # not the 20 s the workers would have waited
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# ---------------------------------------------------------------- a real `deepgrade grade`

SPEC = """\
name = "tiny"
title = "A throwaway exercise whose notebooks may sleep"
notebook = "tiny.ipynb"
datasets = []
artifacts = ["done.txt"]
[profiles.smoke]
data = "synth"
cell_timeout_s = 600
notebook_timeout_s = 900
memory_mb = 1024
artifact_cap_mb = 1
parameters = {{ SLOW = {slow} }}
"""

CHECKS = '''
import pytest


@pytest.mark.points(1)
def test_done(artifact):
    """The notebook saved done.txt"""
    assert artifact("done.txt").read_text() == "done"
'''

PARAMETERS = 'DATA_DIR = "."\nARTIFACT_DIR = "artifacts"\nSLOW = 0\n'
FAST = "s0"
STUDENTS = [f"s{index}" for index in range(7)]


def _cell(token: str, student: str) -> str:
    """Slow students (when SLOW) sleep in a child marked with the token, then save done.txt."""
    return textwrap.dedent(
        f"""\
        import os, subprocess, sys, time
        if SLOW and {student!r} != {FAST!r}:
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)",
                              "{token}-{student}"])
            time.sleep(900)
        os.makedirs(ARTIFACT_DIR, exist_ok=True)
        with open(os.path.join(ARTIFACT_DIR, "done.txt"), "w") as handle:
            handle.write("done")
        """
    )


def _graded(gradebook: Path) -> set[str]:
    if not gradebook.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT student FROM submissions")}
    except sqlite3.Error:  # not created yet, or being written
        return set()


def _leftover_cgroups(pid: int) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return list(root.rglob(f"run-{pid}-*")) if root.is_dir() else []


@pytest.fixture
def course(tmp_path: Path, make_notebook: Callable[..., Path]) -> Iterator[dict[str, Path]]:
    """A course repository with the exercise `tiny` and seven submissions (s0 is fast)."""
    token = f"dg-marker-{uuid.uuid4().hex[:12]}"
    exercise = tmp_path / "autograder" / "tiny"
    exercise.mkdir(parents=True)
    (exercise / "spec.toml").write_text(SPEC.format(slow=1))
    (exercise / "test_tiny.py").write_text(CHECKS)
    (tmp_path / "release" / "tiny").mkdir(parents=True)
    make_notebook(["pass"], parameters=PARAMETERS, name="release/tiny/tiny.ipynb")
    (tmp_path / "submissions").mkdir()
    for student in STUDENTS:
        make_notebook(
            [_cell(token, student)], parameters=PARAMETERS, name=f"submissions/{student}.ipynb"
        )
    paths = {"root": tmp_path, "spec": exercise / "spec.toml", "token": Path(token)}
    yield paths
    for pid in _processes_with(token):  # never leave sleepers behind a failed test
        os.kill(pid, signal.SIGKILL)


def _grade(course: dict[str, Path], *extra: str) -> list[str]:
    root = course["root"]
    return [
        sys.executable, "-m", "deepgrade", "--root", str(root), "grade", str(root / "submissions"),
        "--exercise", "tiny", "--workers", "2", "--gradebook", str(root / "gb.db"),
        "--workdir", str(root / "runs"), *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    """This deepgrade (a worktree's src may come before an installed copy); a hung batch
    dumps its threads' stacks on SIGABRT."""
    lib = str(Path(deepgrade.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": lib, "PYTHONFAULTHANDLER": "1"}


def _signals_as_a_shell_sets() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _interrupt_a_batch(course: dict[str, Path], signum: int) -> None:
    """Start a batch, wait until s0 is graded and two slow ones are running, send `signum`,
    and check that it stopped within 10 s leaving nothing behind."""
    root, token = course["root"], str(course["token"])
    log = (root / "grade.log").open("wb")
    # started with Ctrl-C as a terminal delivers it, whatever this test process inherited (a
    # background job of a non-interactive shell, as CI may be, has SIGINT ignored, and an
    # ignored signal stays ignored in the children: grade would rightly not stop)
    proc = subprocess.Popen(
        _grade(course), stdout=log, stderr=log, env=_env(), preexec_fn=_signals_as_a_shell_sets
    )
    try:
        deadline = time.monotonic() + 300
        while not (_graded(root / "gb.db") == {FAST} and len(_processes_with(token)) >= 2):
            assert proc.poll() is None, (root / "grade.log").read_text()
            assert time.monotonic() < deadline, (root / "grade.log").read_text()
            time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack
            proc.send_signal(signal.SIGABRT)  # dumped by faulthandler (PYTHONFAULTHANDLER)
            proc.wait(timeout=30)
            log.flush()
            stacks = (root / "grade.log").read_text(errors="replace")[-8000:]
            pytest.fail(f"the batch did not stop within 60 s of the signal:\n{stacks}")
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (root / "grade.log").read_text()
    assert code == 128 + signum, output
    assert stopped_after < 10, f"took {stopped_after:.1f} s to stop"
    assert _processes_with(token) == [], "a sandboxed process outlived the batch"
    assert _processes_with(str(root / "runs")) == [], "a sandbox outlived the batch"
    assert _leftover_cgroups(proc.pid) == []
    assert _graded(root / "gb.db") == {FAST}, "only the finished submission is recorded"
    runs = [p.name.split("-")[0] for p in (root / "runs").iterdir()]
    started = {name for name in runs if name in STUDENTS}  # not the check servers' folder
    assert len(started) == 3 and FAST in started, f"queued submissions were started: {started}"


@pytest.mark.slow
def test_ctrl_c_stops_a_real_batch_and_the_next_run_resumes(
    bwrap: str, course: dict[str, Path]
) -> None:
    _interrupt_a_batch(course, signal.SIGINT)
    course["spec"].write_text(SPEC.format(slow=0))  # same submissions, now quick to run
    done = subprocess.run(
        [*_grade(course), "--json"], capture_output=True, text=True, env=_env(), timeout=600
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["student"] for r in lines if not r["cached"]) == [
        s for s in STUDENTS if s != FAST
    ]
    assert [r["student"] for r in lines if r["cached"]] == [FAST]  # its stored result
    assert _graded(course["root"] / "gb.db") == set(STUDENTS)


@pytest.mark.slow
def test_sigterm_stops_a_real_batch(bwrap: str, course: dict[str, Path]) -> None:
    _interrupt_a_batch(course, signal.SIGTERM)
