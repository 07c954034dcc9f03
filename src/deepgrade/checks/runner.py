"""Stage 2: run an exercise's hidden checks in a fresh, sandboxed pytest process.

The checks only read artifacts, but those artifacts were written by student code: a model file
is parsed by Keras and h5py, arrays by numpy. So the checks run in the same kind of sandbox as
the notebook (no network, read-only everything) with only what they need bound in:

    /opt/deepgrade/lib/deepgrade   deepgrade's own package (PYTHONPATH=/opt/deepgrade/lib)
    /opt/deepgrade/checks/<name>   the exercise's autograder folder (checks, spec.toml)
    /opt/deepgrade/pytest.ini      an empty pytest config: the course repo's is never read
    /artifacts                     the submission's artifacts, read-only
    /data/<file>                   the grader's data files, read-only
    /stage1/usage.json             what stage 1's runner measured of the measured cells
                                   (CPU and wall time, nonce), written here by the host
    /stage2/profile.json           the resolved grading profile (parameters, thresholds,
                                   limits), written here by the host: never looked up again

Nothing is bound writable. The plugin sends its results as snapshots (see deepgrade.checks) on
a pipe whose write end is the only thing handed in (pass_fds) and whose read end a thread here
drains: a pipe rather than a file because it is append-only and in order, so the first snapshot,
written after collection and before any check reads a student's file, cannot be rewritten later,
and it tells the grader's faults (no checks collected) from the student's (a model too slow or
too big to check). The last whole snapshot is validated against the checks in source (`verify`).

The course repository, other submissions and the gradebook are not there. pytest's output goes
to `<workdir>/checks/pytest.log` for the instructor; students see only the plugin's messages.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import deepgrade
from deepgrade.checks.snapshots import decode_snapshot
from deepgrade.checks.verify import (
    REJECTED,
    Channel,
    collection_problem,
    static_checks,
    verify,
)
from deepgrade.errors import DeepgradeError, InputError, SandboxUnavailable
from deepgrade.execute import reproducible_env
from deepgrade.exercise import ExerciseSpec
from deepgrade.limits import ProcessOutcome, run_limited
from deepgrade.profiles import GradingProfile
from deepgrade.results import CheckReport, CheckResult, Verdict

if TYPE_CHECKING:
    from deepgrade.sandbox import Bwrap, Mount

__all__ = ["CHECK_TIMEOUT_S", "run_checks", "static_checks"]

CHECK_TIMEOUT_S = 300  # loading three small models and predicting takes seconds
FILE_SIZE_MB = 64
MAX_PIDS = 1024  # TensorFlow's thread pools count as pids
LIB = "/opt/deepgrade/lib"
INI = "[pytest]\n# deepgrade's own config: the course repository's settings never apply.\n"
USAGE_IN_SANDBOX = "/stage1/usage.json"
EXERCISE_IN_SANDBOX = "/opt/deepgrade/checks/{name}"
INI_IN_SANDBOX = "/opt/deepgrade/pytest.ini"
PROFILE_IN_SANDBOX = "/stage2/profile.json"


def _usage_file(out: Path, usage: Mapping[str, Mapping[str, float]] | None) -> Path:
    """stage 1's cell measurements as a file stage 2 reads (read-only there): the host's copy
    of what the runner measured outside the kernel, never anything the notebook wrote."""
    path = out / "stage1-usage.json"
    data: dict[str, Any] = {str(k): dict(v) for k, v in (usage or {}).items()}
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


READER_GRACE_S = 10  # after the run, for the channel's last bytes (every writer is dead by then)
STOPPED_LATER = "this check did not run: the hidden checks stopped at an earlier check"


# pytest's options in both stage-2 forms (a fresh process, a warm server's child): only
# deepgrade's plugin; no cache; and no unraisable-exception report, whose two full garbage
# collections at the end cost ~0.4 CPU-seconds with Keras loaded and report nothing we use.
PYTEST_OPTIONS = (
    "-p", "deepgrade.checks.plugin", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
    "-q", "--tb=short",
)  # fmt: skip


def _command(
    exercise: str, artifacts: str, data: str, results_fd: int, ini: str, profile_file: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *PYTEST_OPTIONS,
        "-c",
        ini,
        f"--rootdir={exercise}",
        f"--confcutdir={exercise}",
        f"--dg-exercise-dir={exercise}",
        f"--dg-artifacts={artifacts}",
        f"--dg-data={data}",
        f"--dg-profile-file={profile_file}",
        f"--dg-results-fd={results_fd}",
        exercise,
    ]


def _env(pythonpath: str, home: str | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        **reproducible_env(),  # the same predictions on any host, loaded or not
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only deepgrade's plugin, whatever is installed
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",  # the checks predict on a few hundred images: CPU is plenty
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
    }
    if home is not None:
        env["HOME"] = home
    return env


def _data_dir(data_files: Sequence[Path], out: Path) -> Path:
    """Unsafe mode: one folder of links to the data files, as /data looks in the sandbox."""
    folder = out / "data"
    folder.mkdir()
    for file in data_files:
        (folder / file.name).symlink_to(file.resolve())
    return folder


def require_bwrap() -> Bwrap:
    """The sandbox stage 2 runs in; SandboxUnavailable where bubblewrap cannot run."""
    from deepgrade.sandbox import find_bwrap

    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap cannot create a sandbox here; the hidden checks read student-made "
            "files, so they run sandboxed unless --unsafe is given"
        )
    return bwrap


def shared_mounts(
    spec: ExerciseSpec, data_files: Sequence[Path], ini: Path, empty: Path
) -> list[Mount]:
    """What every stage-2 sandbox of `spec` sees: the interpreter, deepgrade's package, the
    exercise's checks, an empty pytest config and the data files (an empty /data without)."""
    from deepgrade.sandbox import Mount, python_mounts

    mounts = [
        *python_mounts(),
        Mount(Path(deepgrade.__file__).parent, f"{LIB}/deepgrade"),
        Mount(spec.directory.resolve(), EXERCISE_IN_SANDBOX.format(name=spec.name)),
        Mount(ini, INI_IN_SANDBOX),
        *(Mount(file.resolve(), f"/data/{file.name}") for file in data_files),
    ]
    if not data_files:
        mounts.append(Mount(empty, "/data"))  # empty, read-only
    return mounts


def _sandboxed_argv(
    spec: ExerciseSpec,
    profile_file: Path,
    artifacts_dir: Path,
    data_files: Sequence[Path],
    ini: Path,
    results_fd: int,
    empty: Path,
    usage: Path,
) -> list[str]:
    from deepgrade.sandbox import SANDBOX_HOME, Mount, SandboxSpec, bwrap_argv

    bwrap = require_bwrap()
    mounts = [
        *shared_mounts(spec, data_files, ini, empty),
        Mount(artifacts_dir.resolve(), "/artifacts"),
        Mount(usage, USAGE_IN_SANDBOX),
        Mount(profile_file, PROFILE_IN_SANDBOX),
    ]
    sandbox = SandboxSpec(mounts=tuple(mounts), env=_env(LIB, SANDBOX_HOME))
    command = _command(
        EXERCISE_IN_SANDBOX.format(name=spec.name),
        "/artifacts",
        "/data",
        results_fd,
        INI_IN_SANDBOX,
        PROFILE_IN_SANDBOX,
    )
    command.insert(-1, f"--dg-stage1-usage={USAGE_IN_SANDBOX}")
    return bwrap_argv(sandbox, command, bwrap)


class _ChannelReader:
    """Drains the results pipe in a thread, so the check process never blocks on a full pipe;
    the Channel sees each whole snapshot and keeps only what the host needs (bounded memory)."""

    def __init__(self, read_fd: int, channel: Channel) -> None:
        self.channel = channel
        self._fd = read_fd
        self._thread = threading.Thread(target=self._run, name="stage2-results", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while chunk := os.read(self._fd, 1 << 16):
                self.channel.feed(chunk)
        except OSError:
            pass
        finally:
            os.close(self._fd)

    def finish(self) -> Channel:
        """What arrived, once every write end is closed (or after a grace period)."""
        self._thread.join(READER_GRACE_S)
        return self.channel


def _stop(outcome: ProcessOutcome, timeout_s: float, memory_mb: int) -> tuple[Verdict, str]:
    """Why the check process ended before its checks did: the verdict and what the checks did,
    for a student (they had been collected, so what stopped them was the student's files)."""
    if outcome.timed_out:
        return Verdict.CHECK_TIMEOUT, f"ran past their {timeout_s:.0f} s time limit"
    if outcome.oom_killed:
        return Verdict.ARTIFACT_REJECTED, f"ran out of memory (limit {memory_mb} MiB)"
    ended = f"crashed or were stopped (exit status {outcome.returncode})"
    return Verdict.ARTIFACT_REJECTED, ended


_ADVICE = {
    Verdict.CHECK_TIMEOUT: "your saved model or arrays took too long to load or use",
    Verdict.ARTIFACT_REJECTED: (
        "your saved files may be too large (an array or model far bigger than the exercise "
        "needs, or a compressed file that expands to far more) or damaged; save them with the "
        "locked cells as released"
    ),
}


def _stopped_report(
    checks: tuple[CheckResult, ...], unfinished: Sequence[str], verdict: Verdict, reason: str
) -> tuple[tuple[CheckResult, ...], str]:
    """The checks with messages saying where and why the run stopped, and the verdict's detail."""
    running = next(c for c in checks if c.check_id in unfinished)
    advice = _ADVICE[verdict]
    here = f"this check was stopped: the hidden checks {reason} here ({advice})"
    detail = (
        f"the hidden checks stopped at '{running.title}': they {reason} ({advice}); "
        f"the {len(unfinished)} check(s) that did not finish earn 0"
    )
    marked = tuple(
        replace(c, message=here if c is running else STOPPED_LATER)
        if c.check_id in unfinished
        else c
        for c in checks
    )
    return marked, detail


def _report(
    static: list[CheckResult],
    channel: Channel,
    outcome: ProcessOutcome,
    seconds: float,
    *,
    timeout_s: float,
    memory_mb: int,
) -> CheckReport:
    """Turn what the channel carried into a CheckReport; the verdict says whose fault a
    failure was: before the checks were collected the grader's, after it the student's."""
    fallback, stream = tuple(static), channel.stream
    if stream.first is None:
        why = f"pytest reported no checks (exit status {outcome.returncode})"
        if outcome.timed_out:
            why = f"the checks ran past their {timeout_s:.0f} s time limit before reporting any"
        return CheckReport(fallback, seconds, why, Verdict.GRADER_ERROR)
    try:
        first = decode_snapshot(stream.first)
    except ValueError as exc:
        why = f"the checks' first report is malformed: {exc}"
        return CheckReport(fallback, seconds, why, Verdict.GRADER_ERROR)
    problem = collection_problem(first, static)
    if problem:
        return CheckReport(fallback, seconds, problem, Verdict.GRADER_ERROR)
    # The checks were collected: the grader's part worked. What follows is the student's.
    problems = ["a results snapshot over the size limit"] if stream.oversized else []
    problems += channel.problems
    try:
        last = decode_snapshot(stream.last or b"")
    except ValueError as exc:
        problems.append(str(exc))
    else:
        verified = verify(last, static)
        problems += verified.problems
    if problems:
        rejected = tuple(replace(c, points=0.0, passed=False, message=REJECTED) for c in static)
        detail = (
            "the hidden checks' results failed validation, so nothing is awarded and a person "
            "should look at this submission: " + "; ".join(problems[:5])
        )
        return CheckReport(rejected, seconds, detail, Verdict.RESULTS_REJECTED)
    if not verified.unfinished:
        return CheckReport(
            verified.checks, seconds, None, None, last.measurements, last.summary, last.confusion
        )
    verdict, reason = _stop(outcome, timeout_s, memory_mb)
    checks, detail = _stopped_report(verified.checks, verified.unfinished, verdict, reason)
    return CheckReport(
        checks, seconds, detail, verdict, last.measurements, last.summary, last.confusion
    )


def run_checks(
    spec: ExerciseSpec,
    profile: GradingProfile,
    artifacts_dir: Path,
    *,
    workdir: Path,
    unsafe: bool = False,
    timeout_s: float = CHECK_TIMEOUT_S,
    cancel: threading.Event | None = None,
    stage1_usage: Mapping[str, Mapping[str, float]] | None = None,
) -> CheckReport:
    """Run spec's hidden checks on `artifacts_dir` in a fresh pytest; never raises for a bad
    submission: a run that could not finish comes back with `error` set, the checks that did
    not finish failed, and `verdict` saying whose fault it was.

    The checks read `profile` (resolved once, see deepgrade.profiles) from a read-only copy.
    Raises SandboxUnavailable when bwrap cannot run here and `unsafe` is False, InputError for
    a missing data file and DeepgradeError for another exercise's profile (the grader's own
    mistakes).
    """
    if profile.exercise != spec.name:
        raise DeepgradeError(f"the {profile.exercise} profile cannot check {spec.name}")
    data_files = profile.files
    for file in data_files:
        if not file.is_file():
            raise InputError(file, "data file not found")
    out = workdir / "checks"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ini = out / "pytest.ini"
    ini.write_text(INI, encoding="utf-8")
    empty = out / "empty"
    empty.mkdir()
    if not artifacts_dir.is_dir():  # stage 1 saved nothing: every check fails closed
        artifacts_dir = empty
    usage = _usage_file(out, stage1_usage)
    profile_file = profile.write(out / "profile.json")
    static = static_checks(spec.directory)
    read_fd, write_fd = os.pipe()  # both close-on-exec; pass_fds hands the write end over
    reader = _ChannelReader(read_fd, Channel(static))
    try:
        if unsafe:
            argv = _command(
                str(spec.directory.resolve()),
                str(artifacts_dir.resolve()),
                str(_data_dir(data_files, out)),
                write_fd,
                str(ini),
                str(profile_file),
            )
            argv.insert(-1, f"--dg-stage1-usage={usage}")
            env: Mapping[str, str] | None = {
                **_env(str(Path(deepgrade.__file__).parent.parent)),
                "HOME": os.environ.get("HOME", str(out)),
            }
        else:
            argv = _sandboxed_argv(
                spec, profile_file, artifacts_dir, data_files, ini, write_fd, empty, usage
            )
            env = None
        started = time.perf_counter()
        with (out / "pytest.log").open("wb") as log:
            outcome = run_limited(
                argv,
                timeout_s=timeout_s,
                memory_mb=profile.spec.memory_mb,
                max_pids=MAX_PIDS,
                file_size_mb=FILE_SIZE_MB,
                stdout=log,
                stderr=log,
                env=env,
                cwd=out,
                pass_fds=(write_fd,),
                cancel=cancel,  # an interrupted batch: killed at once, Cancelled raised
            )
        seconds = time.perf_counter() - started
    finally:
        os.close(write_fd)  # the reader sees the end of the stream once every copy is closed
        channel = reader.finish()
    return _report(
        static, channel, outcome, seconds, timeout_s=timeout_s, memory_mb=profile.spec.memory_mb
    )
