"""Stage 2 for a batch: a warm check server per worker (deepgrade.checks.server) instead of a
fresh pytest per submission, with the same sandbox, limits, channel and verdicts.

The server sandbox binds what every submission of the batch shares (deepgrade, the exercise's
checks, the data files); what belongs to one submission travels with its request on a private
socket: the results pipe's write end, the artifacts as a tar on a pipe (to the child only),
its pytest log, the resolved profile and stage 1's measurements. A server that dies (a
student's file can crash or hang the child, and the child can kill its parent) is replaced
for the next submission; the one it was checking gets the verdict a fresh process would.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import deepgrade
from deepgrade.checks import runner as cold
from deepgrade.checks.verify import Channel, static_checks
from deepgrade.errors import Cancelled, DeepgradeError, InputError
from deepgrade.exercise import ExerciseSpec
from deepgrade.limits import LimitedProcess, ProcessOutcome, start_limited
from deepgrade.profiles import GradingProfile
from deepgrade.results import CheckReport

READY_TIMEOUT_S = 300  # importing Keras on a loaded 2-core host
# On top of the profile's memory_mb: the server's own imports (~700 MB resident with
# TensorFlow), shared copy-on-write with each child, which a fresh process paid inside the limit.
SERVER_ALLOWANCE_MB = 768
REPLY_GRACE_S = 30  # past the checks' own limit, for the server's clean-up and reply
SERVER_LIFETIME_S = 7 * 24 * 3600  # the server lives as long as its batch; requests have limits
MAX_REPLY_BYTES = 1 << 16


class ServerFailed(DeepgradeError):
    """The warm check server could not start: the grader's fault, never the student's."""


def _stream_tar(folder: Path, fd: int) -> None:
    """Write `folder` as a tar of artifacts/... to `fd` (regular files and folders only, as
    stage 1 extracted them) and close it; a reader that died early is no error of ours."""
    try:
        with os.fdopen(fd, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
            if folder.is_dir():
                tar.add(folder, arcname="artifacts", recursive=True)
    except (BrokenPipeError, OSError):
        pass


class CheckServer:
    """One warm stage-2 process and its sandbox, for one worker of one batch."""

    def __init__(
        self,
        spec: ExerciseSpec,
        profile: GradingProfile,
        *,
        workdir: Path,
        unsafe: bool = False,
        timeout_s: float = cold.CHECK_TIMEOUT_S,
    ) -> None:
        self.spec, self.profile, self.unsafe = spec, profile, unsafe
        self.timeout_s = timeout_s
        self.workdir = workdir
        self._process: LimitedProcess | None = None
        self._socket: socket.socket | None = None
        self.starts = 0  # how many servers this worker needed (1 unless one died)

    # ------------------------------------------------------------------ the server's life

    def _argv(self, control_fd: int, files: Path) -> tuple[list[str], Mapping[str, str] | None]:
        spec, data_files = self.spec, self.profile.files
        ini = files / "pytest.ini"
        ini.write_text(cold.INI, encoding="utf-8")
        module = [sys.executable, "-m", "deepgrade.checks.server", "--control-fd", str(control_fd)]
        if self.unsafe:
            argv = [
                *module, "--exercise", str(spec.directory.resolve()),
                "--data", str(cold._data_dir(data_files, files)), "--ini", str(ini),
            ]  # fmt: skip
            env = {
                **cold._env(str(Path(deepgrade.__file__).parent.parent)),
                "HOME": os.environ.get("HOME", str(files)),
            }
            return argv, env
        from deepgrade.sandbox import SANDBOX_HOME, SandboxSpec, bwrap_argv

        bwrap = cold.require_bwrap()
        empty = files / "empty"
        empty.mkdir(exist_ok=True)
        mounts = cold.shared_mounts(spec, data_files, ini, empty)
        sandbox = SandboxSpec(mounts=tuple(mounts), env=cold._env(cold.LIB, SANDBOX_HOME))
        inner = [
            *module, "--exercise", cold.EXERCISE_IN_SANDBOX.format(name=spec.name),
            "--data", "/data", "--ini", cold.INI_IN_SANDBOX, "--sandboxed",
        ]  # fmt: skip
        return bwrap_argv(sandbox, inner, bwrap), None

    def _start(self, cancel: threading.Event | None) -> None:
        for file in self.profile.files:
            if not file.is_file():
                raise InputError(file, "data file not found")
        self.starts += 1
        name = f"{os.getpid()}-{threading.get_ident()}-{self.starts}"
        files = self.workdir / "_check-servers" / name  # its files and log, for the instructor
        files.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv, env = self._argv(theirs.fileno(), files)
            with (files / "server.log").open("wb") as log:
                self._process = start_limited(
                    argv,
                    timeout_s=self.timeout_s,
                    memory_mb=self.profile.spec.memory_mb + SERVER_ALLOWANCE_MB,
                    max_pids=cold.MAX_PIDS,
                    file_size_mb=cold.FILE_SIZE_MB,
                    stdout=log,
                    stderr=log,
                    env=env,
                    cwd=files,
                    pass_fds=(theirs.fileno(),),
                )
        finally:
            theirs.close()
        self._socket = ours
        reply = self._receive(READY_TIMEOUT_S, cancel)
        if reply is None or not reply.get("ready"):
            log_tail = (files / "server.log").read_bytes()[-2000:].decode(errors="replace")
            self._stop()
            raise ServerFailed(
                f"the warm check server for {self.spec.name} did not start: "
                f"{log_tail.strip().splitlines()[-1:] or 'no output'}"
            )

    def _receive(self, timeout_s: float, cancel: threading.Event | None) -> dict[str, Any] | None:
        """The server's next reply; None when it died or `timeout_s` passed."""
        assert self._socket is not None and self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self._stop()
                raise Cancelled("stage 2 stopped: the batch was interrupted")
            ready, _, _ = select.select([self._socket], [], [], 0.1)
            if ready:
                try:
                    data = self._socket.recv(MAX_REPLY_BYTES)
                except OSError:
                    return None
                if not data:
                    return None
                try:
                    reply = json.loads(data)
                except ValueError:
                    return None
                return reply if isinstance(reply, dict) else None
            if self._process.exited():
                return None
        return None

    def _stop(self) -> ProcessOutcome | None:
        outcome = None
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
        if self._process is not None:  # killed at once: it holds nothing worth a clean exit,
            outcome = self._process.finish()  # and an interrupted batch must stop in seconds
            self._process = None
        return outcome

    def close(self) -> None:
        self._stop()

    # ------------------------------------------------------------------ one submission

    def check(
        self,
        artifacts_dir: Path,
        *,
        workdir: Path,
        profile: GradingProfile | None = None,
        cancel: threading.Event | None = None,
        stage1_usage: Mapping[str, Mapping[str, float]] | None = None,
    ) -> CheckReport:
        """The hidden checks on `artifacts_dir`, as run_checks would report them. `profile`
        (default: the server's) may differ in its parameters, e.g. a borderline re-run's seed;
        the checks read it from the request."""
        profile = profile or self.profile
        if self._process is None or self._process.exited():
            self._stop()
            self._start(cancel)
        assert self._socket is not None and self._process is not None
        out = workdir / "checks"
        out.mkdir(parents=True, exist_ok=True)
        static = static_checks(self.spec.directory)
        read_fd, write_fd = os.pipe()
        reader = cold._ChannelReader(read_fd, Channel(static))
        tar_read, tar_write = os.pipe()
        log = (out / "pytest.log").open("wb")
        request = {
            "timeout_s": self.timeout_s,
            "max_bytes": profile.spec.artifact_cap_mb * 1024 * 1024,
            "usage": {str(k): dict(v) for k, v in (stage1_usage or {}).items()},
            "profile": profile.to_json(),
        }
        oom_before = self._process.oom_kills()
        started = time.perf_counter()
        writer: threading.Thread | None = None
        reply: dict[str, Any] | None = None
        try:
            fds = [write_fd, tar_read, log.fileno()]
            socket.send_fds(self._socket, [json.dumps(request).encode()], fds)
            os.close(write_fd)
            os.close(tar_read)
            write_fd = tar_read = -1
            log.close()
            # daemon: a writer stuck on a pipe nobody drains must never keep deepgrade alive
            writer = threading.Thread(
                target=_stream_tar, args=(artifacts_dir, tar_write), daemon=True
            )
            tar_write = -1
            writer.start()
            reply = self._receive(self.timeout_s + REPLY_GRACE_S, cancel)
        except OSError:
            reply = None
        finally:
            for fd in (write_fd, tar_read, tar_write):
                if fd >= 0:
                    os.close(fd)
            log.close()
            if reply is None:  # dead or hung: this server is done; the next request starts one
                self._stop()
            if writer is not None:
                writer.join(10)
            channel = reader.finish()
        seconds = time.perf_counter() - started
        outcome = self._outcome(reply, seconds, oom_before)
        memory = self.profile.spec.memory_mb
        return cold._report(
            static, channel, outcome, seconds, timeout_s=self.timeout_s, memory_mb=memory
        )

    def _outcome(
        self, reply: dict[str, Any] | None, seconds: float, oom_before: int
    ) -> ProcessOutcome:
        limits = self._process.limits if self._process is not None else ()
        if reply is None or "returncode" not in reply:
            timed_out = seconds >= self.timeout_s
            return ProcessOutcome(None, timed_out, False, seconds, limits)
        assert self._process is not None
        oom = self._process.oom_kills() > oom_before
        code = reply.get("returncode")
        cpu = reply.get("cpu_s")
        return ProcessOutcome(
            code if isinstance(code, int) else None,
            reply.get("timed_out") is True,
            oom,
            seconds,
            limits,
            float(cpu) if isinstance(cpu, int | float) else None,
        )


class CheckServers:
    """The warm servers of one batch: one per worker thread (and per profile's files), made
    on first use and closed with the batch."""

    def __init__(self) -> None:
        self._servers: dict[tuple[Any, ...], CheckServer] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> CheckServers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run_checks(
        self,
        spec: ExerciseSpec,
        profile: GradingProfile,
        artifacts_dir: Path,
        *,
        workdir: Path,
        unsafe: bool = False,
        cancel: threading.Event | None = None,
        stage1_usage: Mapping[str, Mapping[str, float]] | None = None,
    ) -> CheckReport:
        """run_checks' contract, on this thread's warm server."""
        if profile.exercise != spec.name:
            raise DeepgradeError(f"the {profile.exercise} profile cannot check {spec.name}")
        key = (threading.get_ident(), spec.directory, profile.files, profile.spec.memory_mb, unsafe)
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = CheckServer(spec, profile, workdir=workdir.parent, unsafe=unsafe)
                self._servers[key] = server
        return server.check(
            artifacts_dir, workdir=workdir, profile=profile, cancel=cancel,
            stage1_usage=stage1_usage,
        )  # fmt: skip

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
