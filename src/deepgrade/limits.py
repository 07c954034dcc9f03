"""Resource limits for one child process tree: wall time, memory, process count, file size.

Memory and process limits use a cgroup per run when the host lets us write one (v2 unified
hierarchy, or v1 memory and pids controllers), because a cgroup bounds the whole tree, counts
OOM kills and can be emptied with certainty. Without a writable cgroup, RLIMIT_AS bounds each
process's address space instead: good enough for TensorFlow on CPU, unusable with CUDA, which
reserves huge address ranges. RLIMIT_FSIZE bounds every file the tree writes (including the
stdout and stderr files handed in), and core dumps are off. The limits actually in force are
returned as readable strings, so every result records what it ran under.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from deepgrade.errors import Cancelled

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_NAME = "deepgrade"
MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcessOutcome:
    """How a limited run ended and under which limits."""

    returncode: int | None
    timed_out: bool
    oom_killed: bool
    seconds: float
    limits: tuple[str, ...]
    cpu_seconds: float | None = None  # the tree's CPU time, where the host can measure it


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError:
        return False
    return True


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path in the hierarchy of `controller` ("" = the v2 one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller == "" and names == "") or controller in names.split(","):
            return path
    return "/"


def _parent_candidates(mount: Path, controller: str) -> list[Path]:
    """Nest under our own cgroup (enclosing limits keep applying), else the mount's root."""
    own = mount / _own_cgroup(controller).lstrip("/")
    return list(dict.fromkeys([own, mount]))


def _make_child(parents: Sequence[Path], required: str, prepare: Callable[[Path], None]) -> Path:
    """Create deepgrade/run-* under the first parent where `required` appears in the child."""
    name = f"run-{os.getpid()}-{secrets.token_hex(4)}"
    for parent in parents:
        base = parent / PARENT_NAME
        for _ in range(3):  # another run may remove an empty deepgrade/ between our two mkdirs
            try:
                base.mkdir(exist_ok=True)
                prepare(base)
                (base / name).mkdir()
                break
            except FileNotFoundError:
                continue
            except OSError:
                break
        child = base / name
        if (child / required).exists():
            return child
        with contextlib.suppress(OSError):
            child.rmdir()
            base.rmdir()
    raise OSError(f"no writable cgroup with {required}")


class _Cgroup:
    """One run's cgroup(s): v2 has one directory, v1 one per controller (memory, pids)."""

    def __init__(self, version: int, dirs: Sequence[Path], limits: Sequence[str]) -> None:
        self.version = version
        self.dirs = tuple(dirs)
        self.limits = tuple(limits)

    @classmethod
    def create(cls, memory_bytes: int, max_pids: int) -> _Cgroup | None:
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists():
            return cls._create_v2(controllers, memory_bytes, max_pids)
        return cls._create_v1(memory_bytes, max_pids)

    @classmethod
    def _create_v2(cls, controllers: Path, memory_bytes: int, max_pids: int) -> _Cgroup | None:
        available = controllers.read_text().split()
        if "memory" not in available:
            return None
        wanted = " ".join(f"+{c}" for c in ("memory", "pids") if c in available)

        def enable(base: Path) -> None:
            _write(base.parent / "cgroup.subtree_control", wanted)  # may fail: then try next
            _write(base / "cgroup.subtree_control", wanted)

        try:
            child = _make_child(_parent_candidates(CGROUP_ROOT, ""), "memory.max", enable)
        except OSError:
            return None
        mib = memory_bytes // MIB
        limits = []
        if _write(child / "memory.max", str(memory_bytes)):
            # memory.oom.group stays 0: the OOM killer takes the biggest process (the kernel)
            # and the runner survives to send back the artifacts saved so far.
            swap = _write(child / "memory.swap.max", "0")
            limits.append(f"memory {mib} MiB (cgroup v2{', swap off' if swap else ''})")
        if _write(child / "pids.max", str(max_pids)):
            limits.append(f"processes {max_pids} (cgroup v2 pids)")
        return cls(2, [child], limits)

    @classmethod
    def _create_v1(cls, memory_bytes: int, max_pids: int) -> _Cgroup | None:
        dirs: list[Path] = []
        limits: list[str] = []
        mem_mount, pids_mount = CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"
        if os.access(mem_mount / "cgroup.procs", os.W_OK):
            try:
                mem = _make_child(
                    _parent_candidates(mem_mount, "memory"), "memory.limit_in_bytes", lambda b: None
                )
            except OSError:
                mem = None
            if mem is not None and _write(mem / "memory.limit_in_bytes", str(memory_bytes)):
                swap = _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
                _write(mem / "memory.swappiness", "0")
                dirs.append(mem)
                mib = memory_bytes // MIB
                limits.append(f"memory {mib} MiB (cgroup v1{', swap off' if swap else ''})")
            elif mem is not None:
                _remove(mem)
        if os.access(pids_mount / "cgroup.procs", os.W_OK):
            try:
                pids = _make_child(
                    _parent_candidates(pids_mount, "pids"), "pids.max", lambda b: None
                )
            except OSError:
                pids = None
            if pids is not None and _write(pids / "pids.max", str(max_pids)):
                dirs.append(pids)
                limits.append(f"processes {max_pids} (cgroup v1 pids)")
            elif pids is not None:
                _remove(pids)
        return cls(1, dirs, limits) if dirs else None

    @property
    def limits_memory(self) -> bool:
        return any(text.startswith("memory") for text in self.limits)

    def joiner(self) -> Callable[[], None]:
        """A function moving the calling process in, for the child between fork and exec.

        It only makes system calls on values prepared here: the orchestrator runs workers in
        threads, and Python code that takes a lock (imports, logging, codecs) could deadlock
        in a child forked while another thread held it.
        """
        files = [os.fsencode(directory / "cgroup.procs") for directory in self.dirs]

        def join() -> None:
            pid = b"%d" % os.getpid()
            for path in files:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> None:
        """SIGKILL every member until none is left (members may fork while we read)."""
        if self.version == 2:
            _write(self.dirs[0] / "cgroup.kill", "1")  # Linux >= 5.14; the loop covers older
        deadline = time.monotonic() + 10
        while (members := self.pids()) and time.monotonic() < deadline:
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def oom_kills(self) -> int:
        for directory in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (directory / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def remove(self) -> None:
        for directory in self.dirs:
            _remove(directory)


def _remove(directory: Path) -> None:
    """rmdir the run's cgroup, then deepgrade/ if no other run is using it."""
    for _ in range(50):  # a killed process leaves the cgroup shortly after it is reaped
        try:
            directory.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.02)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _wait_unreaped(pid: int, timeout_s: float, cancel: threading.Event | None = None) -> bool:
    """Wait for `pid` to exit without reaping it, so its pid (= its group id) cannot be
    reused while we kill what is left of its group. False on timeout; raises Cancelled as soon
    as `cancel` is set (within one pause, at most 0.1 s)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if cancel is None:
            time.sleep(min(pause, left))
        elif cancel.wait(min(pause, left)):
            raise Cancelled(f"process {pid} stopped: the batch was interrupted")
        pause = min(pause * 2, 0.1)


def run_limited(
    argv: Sequence[str],
    *,
    timeout_s: float,
    memory_mb: int,
    max_pids: int = 512,
    file_size_mb: int,
    stdout: BinaryIO,
    stderr: BinaryIO,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
    rlimit_as: bool = True,
    cancel: threading.Event | None = None,
) -> ProcessOutcome:
    """Run `argv` to completion under the limits; nothing it started outlives the call.

    The child leads its own session, so a timeout kills its whole process group; with a
    cgroup every member is killed too, even those that left the group (a sandbox's
    processes live in their own session). `pass_fds` are inherited (all others are closed).
    Without a memory cgroup, RLIMIT_AS stands in unless `rlimit_as` is False (CUDA needs
    huge address ranges): then memory is not limited, and the limits say so. Setting `cancel`
    (an interrupted batch) kills the tree at once and raises Cancelled; once set, nothing starts.
    """
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{argv[0]} not started: the batch was interrupted")
    cgroup = _Cgroup.create(memory_mb * MIB, max_pids)
    limits = [f"wall time {timeout_s:g} s"]
    no_cgroup_memory = cgroup is None or not cgroup.limits_memory
    use_rlimit_as = no_cgroup_memory and rlimit_as
    if cgroup is not None:
        limits += cgroup.limits
    if use_rlimit_as:
        limits.append(f"memory {memory_mb} MiB per process (RLIMIT_AS, CPU only)")
    elif no_cgroup_memory:
        limits.append("memory: not limited (no writable memory cgroup; RLIMIT_AS breaks CUDA)")
    if cgroup is None or not any(text.startswith("processes") for text in cgroup.limits):
        limits.append("processes: not limited (no writable pids cgroup)")
    limits += [f"file size {file_size_mb} MiB (RLIMIT_FSIZE)", "core dumps off"]
    fsize = file_size_mb * MIB

    join = cgroup.joiner() if cgroup is not None else None

    def in_child() -> None:  # system calls only: see _Cgroup.joiner
        if join is not None:
            join()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        if use_rlimit_as:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MIB, memory_mb * MIB))

    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=in_child,  # joining the cgroup must happen before exec
            pass_fds=tuple(pass_fds),
        )
        try:
            timed_out = not _wait_unreaped(proc.pid, timeout_s, cancel)
        finally:  # also when cancelled or on Ctrl-C: leave nothing running
            _kill_group(proc.pid)  # the whole tree on timeout, else what it left behind
            returncode = proc.wait()
        seconds = time.monotonic() - start
    finally:
        oom = False
        if cgroup is not None:
            cgroup.kill_all()
            oom = cgroup.oom_kills() > 0
            cgroup.remove()
    return ProcessOutcome(returncode, timed_out, oom, seconds, tuple(limits))
