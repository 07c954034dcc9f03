"""Resource limits for one child process tree: wall time, memory, process count, file size.

What the host offers is decided once (hostcheck.HostLimits); this module applies it to each
run. Memory and process limits use a cgroup per run where the host lets us write one (v1 memory
and pids controllers, or a v2 subtree), because a cgroup bounds the whole tree, counts OOM
kills, measures CPU time and can be emptied with certainty. Without one, RLIMIT_AS bounds each
process's address space (unusable with CUDA) and RLIMIT_NPROC the sandbox uid's processes (the
kernel ignores it for root). RLIMIT_FSIZE bounds every file the tree writes, and core dumps are
off. The limits in force are returned as readable strings, so every result records them.
"""

from __future__ import annotations

import contextlib
import errno
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

from deepgrade import hostcheck
from deepgrade.errors import Cancelled, LimitsUnavailable
from deepgrade.hostcheck import CgroupPlan, HostLimits

PARENT_NAME = hostcheck.RUNS_NAME
MIB = 1024 * 1024
V2_ENABLE = " ".join(f"+{c}" for c in hostcheck.V2_NEEDED)


@dataclass(frozen=True)
class ProcessOutcome:
    """How a limited run ended and under which limits."""

    returncode: int | None
    timed_out: bool
    oom_killed: bool
    seconds: float
    limits: tuple[str, ...]
    cpu_seconds: float | None = None  # the tree's CPU time from its cgroup; None: unmeasured
    peak_memory_mb: float | None = None  # the tree's peak memory from its cgroup; None: unknown


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError:
        return False
    return True


_prepare_lock = threading.Lock()
_prepared: set[Path] = set()


def prepare(host: HostLimits) -> None:
    """On cgroup v2, move the processes of our cgroup into the leaf once, then let the cgroup
    hand memory and pids to its children (a cgroup with processes cannot). Idempotent."""
    plan = host.cgroup
    if plan is None or plan.leaf is None:
        return
    leaf, parent = plan.leaf, plan.leaf.parent
    with _prepare_lock:
        if leaf in _prepared:
            return
        try:
            leaf.mkdir(exist_ok=True)
            for _ in range(20):  # processes may fork while we move them
                members = (parent / "cgroup.procs").read_text().split()
                if not members:
                    break
                for pid in members:
                    try:
                        (leaf / "cgroup.procs").write_text(pid)
                    except ProcessLookupError:
                        continue  # it exited meanwhile
            (parent / "cgroup.subtree_control").write_text(V2_ENABLE)
        except OSError as exc:
            raise LimitsUnavailable(
                f"could not move the grader into {leaf} to enable memory and pids limits in "
                f"{parent}: {exc}; {hostcheck.DELEGATE_FIX}"
            ) from exc
        _prepared.add(leaf)


def require(*, unsafe: bool, allow_unlimited: bool, gpu: bool) -> HostLimits:
    """Fail closed before grading starts when memory or process limits cannot be enforced.

    `unsafe` (trusted notebooks, no sandbox) and `allow_unlimited` (results marked) let it pass;
    otherwise LimitsUnavailable names each missing piece and how to fix the host.
    """
    host = hostcheck.current()
    refusal = host.refusal(sandboxed=False, gpu=gpu)  # the sandbox has its own check
    if refusal and not (unsafe or allow_unlimited):
        raise LimitsUnavailable(
            "this host cannot enforce the limits student code must run under, so nothing was "
            f"graded:\n{refusal}\nRun `deepgrade doctor` for the details. Fix the host, or pass "
            "--allow-unlimited to grade anyway (every result is then marked unlimited)."
        )
    prepare(host)
    return host


def _make_child(parent: Path, required: str, prepare_base: Callable[[Path], None]) -> Path:
    """Create parent/deepgrade/run-* and check that `required` (a control file) appears."""
    base = parent / PARENT_NAME
    child = base / f"run-{os.getpid()}-{secrets.token_hex(4)}"
    for _ in range(3):  # another run may remove an empty deepgrade/ between our two mkdirs
        try:
            base.mkdir(exist_ok=True)
            prepare_base(base)
            child.mkdir()
            break
        except FileNotFoundError:
            continue
    if (child / required).exists():
        return child
    _remove(child)
    raise OSError(errno.ENOENT, f"{child} has no {required}")


class _Cgroup:
    """One run's cgroup(s): v2 has one directory, v1 one per controller."""

    def __init__(self, version: int, dirs: Mapping[str, Path], limits: Sequence[str]) -> None:
        self.version = version
        self.dirs = dict(dirs)
        self.limits = tuple(limits)

    @classmethod
    def create(cls, plan: CgroupPlan, memory_bytes: int, max_pids: int) -> _Cgroup:
        """The run's cgroup(s) as the plan says; LimitsUnavailable when the host refuses."""
        made: dict[str, Path] = {}
        try:
            if plan.version == 2:
                return cls._create_v2(plan, memory_bytes, max_pids)
            return cls._create_v1(plan, memory_bytes, max_pids, made)
        except OSError as exc:
            for directory in made.values():
                _remove(directory)
            places = ", ".join(sorted({str(p) for p in plan.parents.values()}))
            raise LimitsUnavailable(
                f"could not create this run's cgroup under {places}: {exc}"
            ) from exc

    @classmethod
    def _create_v2(cls, plan: CgroupPlan, memory_bytes: int, max_pids: int) -> _Cgroup:
        parent = plan.parents["memory"]

        def enable(base: Path) -> None:
            _write(parent / "cgroup.subtree_control", V2_ENABLE)  # already there after prepare
            (base / "cgroup.subtree_control").write_text(V2_ENABLE)

        child = _make_child(parent, "memory.max", enable)
        try:
            (child / "memory.max").write_text(str(memory_bytes))
            (child / "pids.max").write_text(str(max_pids))
        except OSError:
            _remove(child)
            raise
        # memory.oom.group stays 0: the OOM killer takes the biggest process (the kernel)
        # and the runner survives to send back the artifacts saved so far.
        swap = _write(child / "memory.swap.max", "0")
        limits = [
            f"memory {memory_bytes // MIB} MiB (cgroup v2{', swap off' if swap else ''})",
            f"processes {max_pids} (cgroup v2 pids)",
        ]
        return cls(2, {"unified": child}, limits)

    @classmethod
    def _create_v1(
        cls, plan: CgroupPlan, memory_bytes: int, max_pids: int, made: dict[str, Path]
    ) -> _Cgroup:
        limits: list[str] = []
        required = {
            "memory": "memory.limit_in_bytes",
            "pids": "pids.max",
            "cpuacct": "cpuacct.usage",
        }
        for controller, parent in plan.parents.items():
            made[controller] = _make_child(parent, required[controller], lambda b: None)
        if "memory" in made:
            mem = made["memory"]
            (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
            swap = _write(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
            _write(mem / "memory.swappiness", "0")
            mib = memory_bytes // MIB
            limits.append(f"memory {mib} MiB (cgroup v1{', swap off' if swap else ''})")
        if "pids" in made:
            (made["pids"] / "pids.max").write_text(str(max_pids))
            limits.append(f"processes {max_pids} (cgroup v1 pids)")
        return cls(1, made, limits)

    @property
    def limits_memory(self) -> bool:
        return any(text.startswith("memory") for text in self.limits)

    @property
    def limits_processes(self) -> bool:
        return any(text.startswith("processes") for text in self.limits)

    def joiner(self) -> Callable[[], None]:
        """A function moving the calling process in, for the child between fork and exec.

        It only makes system calls on values prepared here: the orchestrator runs workers in
        threads, and Python code that takes a lock (imports, logging, codecs) could deadlock
        in a child forked while another thread held it.
        """
        files = [os.fsencode(directory / "cgroup.procs") for directory in self.dirs.values()]

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
        for directory in self.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> None:
        """SIGKILL every member until none is left (members may fork while we read)."""
        if self.version == 2:
            _write(self.dirs["unified"] / "cgroup.kill", "1")  # Linux >= 5.14; the loop covers
        deadline = time.monotonic() + 10
        while (members := self.pids()) and time.monotonic() < deadline:
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def oom_kills(self) -> int:
        for directory in self.dirs.values():
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (directory / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU time the members used, exited ones included (None: not measurable)."""
        try:
            if self.version == 2:
                for line in (self.dirs["unified"] / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            if "cpuacct" in self.dirs:
                return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None
        return None

    def peak_memory_mb(self) -> float | None:
        """The members' peak memory (cgroup v2 memory.peak, Linux 5.19+; v1
        memory.max_usage_in_bytes), None where the host does not count it."""
        if self.version == 2:
            found = self.dirs["unified"] / "memory.peak"
        elif "memory" in self.dirs:
            found = self.dirs["memory"] / "memory.max_usage_in_bytes"
        else:
            return None
        try:
            return int(found.read_text().split()[0]) / MIB
        except (OSError, ValueError, IndexError):
            return None

    def remove(self) -> None:
        for directory in self.dirs.values():
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


def uid_threads(uid: int) -> int:
    """Threads (what RLIMIT_NPROC counts) the real uid runs now, all namespaces included."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"])
    return total


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


class LimitedProcess:
    """A process tree started under the limits (start_limited): wait for it, talk to it, and
    finish it, which kills whatever is left and reads what its cgroup counted."""

    def __init__(
        self, proc: subprocess.Popen[bytes], cgroup: _Cgroup | None, limits: Sequence[str]
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.limits = tuple(limits)
        self._cgroup = cgroup
        self._start = time.monotonic()
        self._outcome: ProcessOutcome | None = None

    def wait(self, timeout_s: float, cancel: threading.Event | None = None) -> bool:
        """True once it exited (not reaped), False after `timeout_s`; Cancelled if `cancel`."""
        return _wait_unreaped(self.pid, timeout_s, cancel)

    def exited(self) -> bool:
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def oom_kills(self) -> int:
        """OOM kills in its cgroup so far (0 without one): a diff tells one request's."""
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    def finish(self, *, timed_out: bool = False) -> ProcessOutcome:
        """Kill its group and every cgroup member, reap it, and say how it ended. Idempotent."""
        if self._outcome is not None:
            return self._outcome
        try:
            _kill_group(self.pid)  # the whole tree on timeout, else what it left behind
            returncode = self.proc.wait()
            seconds = time.monotonic() - self._start
        finally:
            oom, cpu, peak = False, None, None
            if self._cgroup is not None:
                self._cgroup.kill_all()
                oom = self._cgroup.oom_kills() > 0
                cpu = self._cgroup.cpu_seconds()
                peak = self._cgroup.peak_memory_mb()
                self._cgroup.remove()
        self._outcome = ProcessOutcome(returncode, timed_out, oom, seconds, self.limits, cpu, peak)
        return self._outcome


def start_limited(
    argv: Sequence[str],
    *,
    timeout_s: float,
    memory_mb: int,
    max_pids: int = 512,
    file_size_mb: int,
    stdout: BinaryIO | int,
    stderr: BinaryIO | int,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
    rlimit_as: bool = True,
    host: HostLimits | None = None,
) -> LimitedProcess:
    """Start `argv` under the limits (see run_limited) and return at once; the caller must
    `finish()` it. `timeout_s` only goes into the limits' description: the caller waits."""
    host = host or hostcheck.current()
    cgroup = None
    if host.cgroup is not None:
        prepare(host)
        cgroup = _Cgroup.create(host.cgroup, memory_mb * MIB, max_pids)
    limits = [f"wall time {timeout_s:g} s"]
    no_cgroup_memory = cgroup is None or not cgroup.limits_memory
    use_rlimit_as = no_cgroup_memory and rlimit_as
    if cgroup is not None:
        limits += cgroup.limits
    if use_rlimit_as:
        limits.append(f"memory {memory_mb} MiB per process (RLIMIT_AS, CPU only)")
    elif no_cgroup_memory:
        limits.append("memory: not limited (no writable memory cgroup; RLIMIT_AS breaks CUDA)")
    nproc = None
    if cgroup is None or not cgroup.limits_processes:
        if host.processes == hostcheck.PIDS_RLIMIT_NPROC:
            running = uid_threads(os.getuid())
            nproc = running + max_pids
            limits.append(f"processes {max_pids} (RLIMIT_NPROC {nproc}: {running} already ran)")
        else:
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
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

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
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise
    return LimitedProcess(proc, cgroup, limits)


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
    host: HostLimits | None = None,
) -> ProcessOutcome:
    """Run `argv` to completion under the limits; nothing it started outlives the call.

    The child leads its own session, so a timeout kills its whole process group; with a
    cgroup every member is killed too, even those that left the group (a sandbox's
    processes live in their own session). `pass_fds` are inherited (all others are closed).
    Without a memory cgroup, RLIMIT_AS stands in unless `rlimit_as` is False (CUDA needs
    huge address ranges): then memory is not limited, and the limits say so. Without a pids
    cgroup, RLIMIT_NPROC allows the uid `max_pids` threads more than it runs now (the kernel
    counts every process of the uid, and ignores the limit for root). `host` defaults to
    this host as resolved once (hostcheck.current()). Raises LimitsUnavailable when the
    host's cgroups refuse what the resolution promised.
    """
    process = start_limited(
        argv, timeout_s=timeout_s, memory_mb=memory_mb, max_pids=max_pids,
        file_size_mb=file_size_mb, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
        pass_fds=pass_fds, rlimit_as=rlimit_as, host=host,
    )  # fmt: skip
    timed_out = False
    try:
        timed_out = not process.wait(timeout_s, cancel)
    finally:  # also when cancelled or on Ctrl-C: leave nothing running
        outcome = process.finish(timed_out=timed_out)
    return outcome
