"""Stage 1: run a submission with papermill in the sandbox and collect what it saved.

The orchestrator side of stage 1. It lays out the sandbox (data read-only at /data, a
size-capped tmpfs at /artifacts, the notebook and the runner script read-only under
/opt/deepgrade), starts deepgrade/_stage1_runner.py in it under the resource limits, and turns
what comes back (a tar of artifacts, executed notebook and status, or nothing) into an
ExecutionResult. Limits decided outside the sandbox (out of memory, the hard wall-time limit)
win over whatever the runner reported, since code inside could have influenced the runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deepgrade import fontcache, limits, sandbox
from deepgrade.errors import DeepgradeError, InputError, SandboxUnavailable
from deepgrade.gpuslots import GpuSlot
from deepgrade.results import ExecutionResult, Verdict

RUNNER = Path(__file__).with_name("_stage1_runner.py")
GPU_PROBE = Path(__file__).with_name("_gpu_probe.py")
OPT = "/opt/deepgrade"
DATA_DIR = "/data"
ARTIFACT_DIR = "/artifacts"
MAX_PIDS = 512
GRACE_S = 30  # past the notebook deadline: the runner's own cleanup and tar
NOTEBOOK_ALLOWANCE_MB = 64  # executed notebook + status on top of the artifact cap
LOG_TAIL_CHARS = 4000
STARTED = b"stage1: runner started"
PASSTHROUGH_ENV = ("KERAS_BACKEND", "TF_DETERMINISTIC_OPS")
MIB = 1024 * 1024
# TensorFlow splits its CPU work by thread count, so the same seed trains differently with 1, 2
# or 4 threads; by default that count is the host's CPUs. Pinned, a grade is the same on a
# laptop, a 2-core CI runner and a 64-core server (same CPU family), and load changes only the
# time, never the numbers (measured: bench/README.md, reproducibility.py). 2: the smoke
# thresholds were calibrated with 2 threads.
KERNEL_THREADS = 2


def reproducible_env() -> dict[str, str]:
    """Thread counts and flags that make a seeded Keras run repeat bit for bit on CPU."""
    threads = str(KERNEL_THREADS)
    return {
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "TF_DETERMINISTIC_OPS": "1",
        "PYTHONHASHSEED": "0",
    }


def kernel_env(home: str, gpu: GpuSlot | None = None) -> dict[str, str]:
    """The whole environment of the runner and kernel: nothing of the grader's leaks in.

    A run on the CPU sees no GPU even where one exists (unsafe mode); a run on a GPU gets its
    CUDA variables and memory cap (gpuslots.GpuSlot.kernel_env).
    """
    venv_bin = str(Path(sys.executable).parent)  # not resolved: the venv's bin, not the base
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "USER": "grader",
        "LOGNAME": "grader",
        "LANG": "C.UTF-8",
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/{fontcache.MPLCONFIG_IN_HOME}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **reproducible_env(),
    }
    env.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
    env.update(gpu.kernel_env() if gpu is not None else {"CUDA_VISIBLE_DEVICES": ""})
    return env


@dataclass(frozen=True)
class _Job:
    """What the runner needs to know, wherever it runs."""

    params: Mapping[str, Any]
    cell_timeout_s: int
    notebook_timeout_s: int
    cap_bytes: int
    tar_fd: int
    hidden_fd: int | None = None  # a pipe holding the hidden values (JSON)
    gradetime_cells: int = 0  # the notebook's last N cells are the grader's
    student_artifacts: tuple[str, ...] = ()  # frozen when the grader's cells start
    gpu_probe: str | None = None  # where _gpu_probe.py is: the run needs its GPU

    def argv(
        self, runner: str, notebook: str, artifacts: str, cwd: str, sandboxed: bool
    ) -> list[str]:
        argv = [sys.executable, "-I", "-B", runner, "--notebook", notebook]
        argv += ["--parameters", json.dumps(dict(self.params))]
        argv += ["--cell-timeout", str(self.cell_timeout_s)]
        argv += ["--notebook-timeout", str(self.notebook_timeout_s)]
        argv += ["--artifacts", artifacts, "--artifact-cap", str(self.cap_bytes)]
        argv += ["--cwd", cwd, "--tar-fd", str(self.tar_fd)]
        argv += ["--gradetime-cells", str(self.gradetime_cells)]
        argv += ["--student-artifacts", json.dumps(list(self.student_artifacts))]
        argv += ["--hidden-fd", str(self.hidden_fd)] if self.hidden_fd is not None else []
        argv += ["--gpu-probe", self.gpu_probe] if self.gpu_probe else []
        return argv + (["--sandboxed"] if sandboxed else [])


@dataclass(frozen=True)
class _Plan:
    """The command to run and how: argv, its environment and folder, and where it runs."""

    argv: list[str]
    env: Mapping[str, str] | None
    cwd: Path | None
    where: str


def _sandbox_plan(job: _Job, notebook: Path, data: Sequence[Path], gpu: GpuSlot | None) -> _Plan:
    bwrap = sandbox.find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            f"cannot run {notebook} in the sandbox: {sandbox.unavailable_reason()}; "
            "pass unsafe=True (--unsafe) only for trusted notebooks"
        )
    job = replace(job, params={**job.params, "DATA_DIR": DATA_DIR, "ARTIFACT_DIR": ARTIFACT_DIR})
    runner, submission = f"{OPT}/stage1_runner.py", f"{OPT}/submission.ipynb"
    probe = f"{OPT}/gpu_probe.py"
    if gpu is not None:
        job = replace(job, gpu_probe=probe)
    inner = job.argv(runner, submission, ARTIFACT_DIR, sandbox.SANDBOX_HOME, sandboxed=True)
    mounts = [
        *sandbox.python_mounts(),
        sandbox.Mount(RUNNER.resolve(), runner),
        sandbox.Mount(notebook.resolve(), submission),
        *(sandbox.Mount(path, f"{DATA_DIR}/{path.name}") for path in data),
    ]
    fonts = fontcache.font_list()
    if fonts is not None:  # read-only: a kernel reads matplotlib's font list, never writes it
        home_config = f"{sandbox.SANDBOX_HOME}/{fontcache.MPLCONFIG_IN_HOME}"
        mounts.append(sandbox.Mount(fonts, f"{home_config}/{fonts.name}"))
    tmpfs = [(ARTIFACT_DIR, job.cap_bytes)]
    devices: tuple[tuple[str, str], ...] = ()
    if gpu is not None:  # its GPU only: one node, the control nodes, its driver entries
        mounts += [sandbox.Mount(GPU_PROBE.resolve(), probe), *gpu.view.mounts]
        tmpfs += gpu.view.masks
        devices = gpu.view.devices
    spec = sandbox.SandboxSpec(
        mounts=tuple(mounts),
        tmpfs=tuple(tmpfs),
        env=kernel_env(sandbox.SANDBOX_HOME, gpu),
        devices=devices,
    )
    where = "sandbox: bubblewrap, no network, read-only system and data"
    if gpu is not None:
        where += f", {gpu.gpu.label} only"
    return _Plan(sandbox.bwrap_argv(spec, inner, bwrap), None, None, where)


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account stage 1 runs as where no sandbox can start (a Gradescope
    container): it owns only the run's folders, so it cannot read what the grader keeps
    private (the hidden checks) and cannot signal the grader."""

    name: str
    uid: int
    gid: int

    @classmethod
    def lookup(cls, name: str) -> RunAs:
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise DeepgradeError(f"no user {name!r} on this host to run the notebook as") from None
        if entry.pw_uid == 0:
            raise DeepgradeError(f"user {name!r} is root: not an unprivileged account")
        return cls(name, entry.pw_uid, entry.pw_gid)

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run as this user (util-linux setpriv: no groups, no capabilities)."""
        setpriv = shutil.which("setpriv") or "setpriv"
        return [
            setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
            "--inh-caps=-all", "--", *argv,
        ]  # fmt: skip


def _unsafe_plan(
    job: _Job,
    notebook: Path,
    data: Sequence[Path],
    gpu: GpuSlot | None,
    root: Path,
    run_as: RunAs | None = None,
) -> _Plan:
    """The same runner on the host, for trusted notebooks: real folders under `root`; with
    `run_as`, as that user, who owns those folders and a copy of the notebook, nothing else."""
    for sub in ("home", "artifacts", "data"):
        (root / sub).mkdir(parents=True)
    for path in data:
        (root / "data" / path.name).symlink_to(path)
    artifacts, home = root / "artifacts", root / "home"
    owned = [root, home, artifacts, root / "data"]
    fonts = fontcache.font_list()
    if fonts is not None:  # a copy: trusted notebooks, but each run keeps its own HOME
        config = home / fontcache.MPLCONFIG_IN_HOME
        config.mkdir(parents=True)
        owned += [config.parent, config, Path(shutil.copy(fonts, config / fonts.name))]
    if run_as is not None:
        notebook = Path(shutil.copy(notebook, root / "submission.ipynb"))
        for path in (*owned, notebook):
            os.chown(path, run_as.uid, run_as.gid)
    job = replace(
        job,
        params={**job.params, "DATA_DIR": str(root / "data"), "ARTIFACT_DIR": str(artifacts)},
        gpu_probe=str(GPU_PROBE) if gpu is not None else None,
    )
    argv = job.argv(
        str(RUNNER), str(notebook.resolve()), str(artifacts), str(home), sandboxed=False
    )
    if run_as is None:
        return _Plan(argv, kernel_env(str(home), gpu), home, "no sandbox (unsafe)")
    where = f"no sandbox: run as the unprivileged user {run_as.name}, who cannot read the checks"
    return _Plan(run_as.wrap(argv), kernel_env(str(home), gpu), home, where)


def _hidden_pipe(hidden: Mapping[str, Any], notebook: Path) -> int:
    """The read end of a pipe holding `hidden` as JSON, its write end already closed: the
    runner drains it before the kernel starts, so no later process finds anything there."""
    try:
        data = json.dumps(dict(hidden)).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(notebook, f"hidden values are not plain JSON data: {exc}") from None
    read, write = os.pipe()
    try:
        os.set_blocking(write, False)
        written = os.write(write, data)
    except BlockingIOError:
        written = 0
    finally:
        os.close(write)
    if written != len(data):
        os.close(read)
        raise InputError(notebook, f"hidden values too large ({len(data)} bytes as JSON)")
    return read


def _check_inputs(notebook: Path, data_files: Sequence[Path]) -> list[Path]:
    if not notebook.is_file():
        raise InputError(notebook, "notebook to execute does not exist")
    resolved = [Path(p).resolve() for p in data_files]
    for original, path in zip(data_files, resolved, strict=True):
        if not path.exists():
            raise InputError(original, "data file does not exist")
    names = [p.name for p in resolved]
    if len(set(names)) != len(names):
        raise InputError(resolved[0].parent, f"data files share a name: {names}")
    return resolved


@contextlib.contextmanager
def _closing_fd(fd: int | None) -> Iterator[None]:
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _clean(workdir: Path) -> None:
    """Remove what an earlier run of stage 1 left here (only our own outputs)."""
    for name in ("artifacts", "unsafe"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    for name in ("executed.ipynb", "status.json", "stage1.tar", "stage1.log"):
        (workdir / name).unlink(missing_ok=True)


def extract_results(tar_path: Path, workdir: Path, max_bytes: int) -> tuple[dict[str, Any], str]:
    """Unpack the runner's tar into workdir: artifacts/, executed.ipynb, status.json.

    Only regular files and folders under those names, at most `max_bytes` in all, with the
    "data" filter's guarantees (no absolute paths, no "..", no links or devices) also where
    Python lacks tarfile.data_filter (Debian 12's 3.11.2): see deepgrade.tarsafe. Returns the
    status (empty when missing) and a problem description ("" when the tar was complete).
    """
    from deepgrade import tarsafe

    top = ("executed.ipynb", "status.json")
    problems = tarsafe.extract(tar_path, workdir, files=top, tree="artifacts", max_bytes=max_bytes)
    status: dict[str, Any] = {}
    status_path = workdir / "status.json"
    if status_path.is_file():
        try:
            loaded = json.loads(status_path.read_text(encoding="utf-8"))
            status = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as exc:
            problems.append(f"unreadable status.json: {exc}")
    return status, "; ".join(problems)


USAGE_KEYS = ("cpu_s", "wall_s", "nonce")


def cell_usage(status: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The runner's measurements of the measured cells, only well-formed entries kept."""
    raw = status.get("cell_usage")
    found: dict[str, dict[str, float]] = {}
    if not isinstance(raw, dict):
        return found
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        values = {key: entry.get(key) for key in USAGE_KEYS}
        numbers = {
            key: float(v)
            for key, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 2**53
        }
        if len(numbers) == len(USAGE_KEYS):
            found[str(name)] = numbers
    return found


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-LOG_TAIL_CHARS:].decode("utf-8", errors="replace")


def _verdict(
    outcome: limits.ProcessOutcome, status: Mapping[str, Any], problem: str, log: Path,
    *, memory_mb: int, notebook_timeout_s: int,
) -> tuple[Verdict, str, int | None]:  # fmt: skip
    """The verdict: limits seen from outside first, then the runner's status, then why
    there is none."""
    failed = status.get("failed_cell")
    failed = failed if isinstance(failed, int) and not isinstance(failed, bool) else None
    if outcome.oom_killed:
        where = f" while running cell {failed}" if failed and not status.get("errors") else ""
        return Verdict.OUT_OF_MEMORY, f"ran out of memory (limit {memory_mb} MiB){where}", failed
    if outcome.timed_out:
        detail = f"the notebook ran longer than its {notebook_timeout_s} s limit and was stopped"
        return Verdict.TIMEOUT, detail, failed
    if status:
        try:
            verdict = Verdict(str(status.get("verdict")))
        except ValueError:
            return Verdict.GRADER_ERROR, f"runner reported {status.get('verdict')!r}", None
        return verdict, str(status.get("detail", "")), failed
    try:
        started = STARTED in log.read_bytes()
    except OSError:
        started = False
    if not started:
        last = _tail(log).strip().splitlines()
        reason = last[-1] if last else f"exit status {outcome.returncode}"
        return Verdict.GRADER_ERROR, f"the sandbox could not start the notebook: {reason}", None
    detail = f"the run ended without results (exit status {outcome.returncode})"
    return Verdict.KERNEL_DIED, detail + (f": {problem}" if problem else ""), None


def execute_notebook(
    notebook: Path,
    *,
    parameters: Mapping[str, Any],
    data_files: Sequence[Path],
    workdir: Path,
    cell_timeout_s: int,
    notebook_timeout_s: int,
    memory_mb: int,
    artifact_cap_mb: int,
    unsafe: bool = False,
    gpu: GpuSlot | None = None,
    on_event: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    hidden: Mapping[str, Any] | None = None,
    gradetime_cells: int = 0,
    student_artifacts: Sequence[str] = (),
    run_as: RunAs | None = None,
) -> ExecutionResult:
    """Run `notebook` in the sandbox (or, with unsafe=True, without it; with `run_as` too, as
    that unprivileged user) and collect the results.

    DATA_DIR and ARTIFACT_DIR are always set here (/data and /artifacts in the sandbox, real
    folders under workdir in unsafe mode), whatever `parameters` says. The notebook's last
    `gradetime_cells` cells are the grader's: `hidden` reaches the runner on a private pipe and
    the first of them (grade.HIDDEN_LOADER) only; `student_artifacts` changed while they run
    are not collected. Raises SandboxUnavailable when bwrap cannot be used and unsafe is False.
    """
    emit = on_event or (lambda _: None)
    data = _check_inputs(notebook, data_files)
    workdir = workdir.absolute()  # the unsafe runner works in another folder
    workdir.mkdir(parents=True, exist_ok=True)
    _clean(workdir)
    cap_bytes = artifact_cap_mb * MIB
    tar_path, log_path = workdir / "stage1.tar", workdir / "stage1.log"
    hidden_fd = _hidden_pipe(hidden, notebook) if hidden is not None else None
    with (
        tar_path.open("wb") as tar_out,
        log_path.open("wb") as log,
        _closing_fd(hidden_fd),
    ):
        job = _Job(
            dict(parameters), cell_timeout_s, notebook_timeout_s, cap_bytes, tar_out.fileno(),
            hidden_fd, gradetime_cells, tuple(student_artifacts),
        )  # fmt: skip
        if unsafe:
            plan = _unsafe_plan(job, notebook, data, gpu, workdir / "unsafe", run_as)
        else:
            plan = _sandbox_plan(job, notebook, data, gpu)
        emit(f"running the notebook: {plan.where}")
        outcome = limits.run_limited(
            plan.argv,
            timeout_s=notebook_timeout_s + GRACE_S,
            memory_mb=memory_mb,
            max_pids=MAX_PIDS,
            file_size_mb=artifact_cap_mb + NOTEBOOK_ALLOWANCE_MB,
            stdout=log,
            stderr=log,
            env=plan.env,
            cwd=plan.cwd,
            pass_fds=(tar_out.fileno(), *([hidden_fd] if hidden_fd is not None else [])),
            rlimit_as=gpu is None,
            cancel=cancel,  # an interrupted batch: killed at once, Cancelled raised
        )
    emit("collecting the artifacts")
    status, problem = extract_results(tar_path, workdir, cap_bytes + NOTEBOOK_ALLOWANCE_MB * MIB)
    if not problem:
        tar_path.unlink(missing_ok=True)
    shutil.rmtree(workdir / "unsafe", ignore_errors=True)  # its artifacts were copied out
    (workdir / "artifacts").mkdir(exist_ok=True)
    verdict, detail, failed = _verdict(
        outcome, status, problem, log_path, memory_mb=memory_mb,
        notebook_timeout_s=notebook_timeout_s,
    )  # fmt: skip
    skipped = status.get("skipped_artifacts") or []
    log_tail = _tail(log_path)
    if skipped or problem:
        log_tail += "\n[deepgrade] " + "; ".join([*map(str, skipped), problem]).strip("; ")
    usage_problems = status.get("usage_problems") or []
    if usage_problems:
        log_tail += "\n[deepgrade] measured cells: " + "; ".join(map(str, usage_problems))
    executed = workdir / "executed.ipynb"
    emit(f"stage 1 done: {verdict}")
    return ExecutionResult(
        verdict=verdict,
        detail=detail,
        artifacts_dir=workdir / "artifacts",
        executed_notebook=executed if executed.is_file() else None,
        seconds=outcome.seconds,
        failed_cell=failed,
        limits=(
            plan.where,
            *outcome.limits,
            f"cell time {cell_timeout_s} s",
            f"notebook time {notebook_timeout_s} s",
            f"artifacts {artifact_cap_mb} MiB",
        ),
        sandboxed=not unsafe,
        log_tail=log_tail,
        cpu_seconds=outcome.cpu_seconds,
        peak_memory_mb=outcome.peak_memory_mb,
        cell_usage=cell_usage(status),
    )
