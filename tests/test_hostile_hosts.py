"""Hosts that do not enforce what grading needs: grading refuses, or finds another way.

The threat: student code that forks without end or allocates without end reaches the host when
the grader runs on cgroup v2, as a non-root user, or with an older bubblewrap. The decision of
what a host enforces is made once (hostcheck.resolve) from files, so fake cgroup trees exercise
every branch; real runs check the limits on this machine (cgroup v1, root, bubblewrap 0.8) and
as an unprivileged user.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from deepgrade import hostcheck, limits, sandbox, seccomp
from deepgrade.cli import main
from deepgrade.hostcheck import HostLimits, resolve
from deepgrade.sandbox import SandboxSpec, bwrap_argv, python_mounts

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
NO_SANDBOX = (None, "bubblewrap (bwrap) is not installed")
INIT_NS = "0 0 4294967295"  # /proc/self/uid_map of the initial user namespace


def _writable_under(*roots: Path) -> Callable[[Path], bool]:
    """What a user may write: these folders and everything below them."""
    return lambda path: any(path == r or r in path.parents for r in roots)


def _v2_tree(root: Path, own: str, *, controllers: str, subtree: str = "", procs: str = "") -> Path:
    """A cgroup v2 mount: the root offers memory/pids/cpu, our cgroup offers `controllers`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (root / "cgroup.procs").write_text("")
    current = root / own.lstrip("/")
    current.mkdir(parents=True, exist_ok=True)
    if current != root:
        (current / "cgroup.controllers").write_text(controllers + "\n")
        (current / "cgroup.subtree_control").write_text(subtree + "\n")
        (current / "cgroup.procs").write_text(procs)
    return current


def _v1_tree(root: Path, controllers: Iterable[str] = ("memory", "pids", "cpuacct")) -> None:
    for controller in controllers:
        (root / controller).mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("1\n")


def _host(root: Path, own: str, *, uid: int, writable: Callable[[Path], bool], **kw: object):  # type: ignore[no-untyped-def]
    text = kw.pop("proc_cgroup", f"0::{own}\n")
    return resolve(
        cgroup_root=root,
        proc_cgroup=str(text),
        uid=uid,
        uid_map=str(kw.pop("uid_map", INIT_NS)),
        writable=writable,
        bwrap=kw.pop("bwrap", NO_SANDBOX),  # type: ignore[arg-type]
        dev=root / "dev",
    )


# --- cgroup v2 -------------------------------------------------------------------------------

USER_SCOPE = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"
SESSION = "/user.slice/user-1000.slice/session-3.scope"


def test_v2_delegated_scope_with_processes_moves_them_into_a_leaf(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    current = _v2_tree(root, USER_SCOPE, controllers="cpu memory pids", procs="4242\n4243\n")
    host = _host(root, USER_SCOPE, uid=1000, writable=_writable_under(current))
    assert host.cgroup_version == 2
    assert host.memory == hostcheck.MEMORY_CGROUP_V2
    assert host.processes == hostcheck.PIDS_CGROUP_V2
    assert host.cpu_time == hostcheck.CPU_CGROUP_V2
    assert host.cgroup is not None
    assert host.cgroup.parents["memory"] == host.cgroup.parents["pids"] == current
    assert host.cgroup.leaf == current / hostcheck.LEAF_NAME  # no internal processes
    assert host.refusal(sandboxed=False, gpu=True) == ""
    # Preparing moves the processes first, then enables the controllers for the children.
    limits.prepare(host)
    assert (current / hostcheck.LEAF_NAME / "cgroup.procs").read_text() in {"4242", "4243"}
    assert (current / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_v2_a_grader_already_in_the_leaf_uses_its_parent(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    parent = _v2_tree(root, USER_SCOPE, controllers="memory pids", subtree="memory pids")
    own = f"{USER_SCOPE}/{hostcheck.LEAF_NAME}"
    _v2_tree(root, own, controllers="memory pids", procs="4242\n")
    host = _host(root, own, uid=1000, writable=_writable_under(parent))
    assert host.cgroup is not None and host.cgroup.leaf is None
    assert host.cgroup.parents["memory"] == parent


def test_v2_session_not_delegated_falls_back_to_rlimits_for_a_user(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v2_tree(root, SESSION, controllers="memory pids", procs="4242\n")
    host = _host(root, SESSION, uid=1000, writable=lambda p: False)
    assert host.cgroup is None
    assert host.memory == hostcheck.MEMORY_RLIMIT_AS
    assert host.processes == hostcheck.PIDS_RLIMIT_NPROC
    assert host.refusal(sandboxed=False) == ""  # CPU grading: both bounded by rlimits
    refusal = host.refusal(sandboxed=False, gpu=True)  # CUDA cannot live with RLIMIT_AS
    assert "memory with --gpus" in refusal
    assert "systemd-run --user --scope -p Delegate=yes" in refusal
    assert "not writable by uid" in refusal


def test_v2_without_delegated_pids_names_the_missing_controller(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    current = _v2_tree(root, USER_SCOPE, controllers="cpu memory")
    host = _host(root, USER_SCOPE, uid=1000, writable=_writable_under(current))
    assert host.cgroup is None
    assert "does not offer pids" in host.refusal(sandboxed=False, gpu=True)


def test_v2_root_uses_the_root_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v2_tree(root, SESSION, controllers="memory pids", procs="4242\n")
    host = _host(root, SESSION, uid=0, writable=lambda p: True, proc_cgroup="0::/\n")
    assert host.cgroup is not None and host.cgroup.parents["pids"] == root
    assert host.cgroup.leaf is None  # the real root may hold processes


def test_v2_root_cgroup_with_nothing_enabled_yet_needs_no_leaf(tmp_path: Path) -> None:
    """A bare VM (no systemd): root in the root cgroup, controllers not yet enabled for
    children. The root may hold processes (kernel threads, which cannot move) and children at
    once, so no leaf: the first run's cgroup enables memory and pids on the way."""
    root = tmp_path / "cg"
    _v2_tree(root, "/", controllers="")
    (root / "cgroup.subtree_control").write_text("\n")
    (root / "cgroup.procs").write_text("2\n4242\n")  # 2: kthreadd
    host = _host(root, "/", uid=0, writable=lambda p: True)
    assert host.cgroup is not None and host.cgroup.leaf is None
    assert host.cgroup.parents["memory"] == root
    assert host.refusal(sandboxed=False, gpu=True) == ""
    limits.prepare(host)  # nothing to move
    assert not (root / hostcheck.LEAF_NAME).exists()


def test_v2_root_in_a_container_without_a_writable_cgroup_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v2_tree(root, "/", controllers="")
    host = _host(root, "/", uid=0, writable=lambda p: False)
    assert host.processes == hostcheck.NOT_LIMITED  # root: RLIMIT_NPROC is ignored
    refusal = host.refusal(sandboxed=False)
    assert "fork bomb" in refusal and "--cgroupns=private" in refusal


def test_rootless_container_root_gets_rlimit_nproc(tmp_path: Path) -> None:
    """uid 0 mapped to an ordinary host uid: the kernel enforces RLIMIT_NPROC."""
    host = _host(tmp_path / "none", "/", uid=0, writable=lambda p: False, uid_map="0 1000 1")
    assert host.cgroup_version is None
    assert host.processes == hostcheck.PIDS_RLIMIT_NPROC


# --- cgroup v1 and no cgroups ----------------------------------------------------------------


def test_v1_writable_controllers_are_used(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v1_tree(root)
    text = "4:memory:/job\n8:pids:/\n2:cpu,cpuacct:/\n"
    host = _host(root, "/", uid=0, writable=lambda p: True, proc_cgroup=text)
    assert (host.memory, host.processes) == (hostcheck.MEMORY_CGROUP_V1, hostcheck.PIDS_CGROUP_V1)
    assert host.cpu_time == hostcheck.CPU_CGROUP_V1
    assert host.cgroup is not None
    assert host.cgroup.parents == {
        "memory": root / "memory",  # /job does not exist in the fake tree: the mount's root
        "pids": root / "pids",
        "cpuacct": root / "cpuacct",
    }


def test_v1_read_only_controllers_as_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v1_tree(root)
    host = _host(root, "/", uid=0, writable=lambda p: False, proc_cgroup="4:memory:/\n")
    assert host.cgroup is None and host.processes == hostcheck.NOT_LIMITED
    refusal = host.refusal()
    assert "sandbox:" in refusal and "processes:" in refusal and "read-only" in refusal
    assert host.cpu_time == hostcheck.NOT_LIMITED


def test_v1_runs_folder_an_administrator_chowned_is_used_by_a_user(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _v1_tree(root)
    granted = [root / c / hostcheck.RUNS_NAME for c in ("memory", "pids")]
    host = _host(root, "/", uid=1000, writable=_writable_under(*granted))
    assert host.memory == hostcheck.MEMORY_CGROUP_V1
    assert host.processes == hostcheck.PIDS_CGROUP_V1
    assert host.cpu_time == hostcheck.NOT_LIMITED  # cpuacct not granted


def test_no_cgroups_at_all(tmp_path: Path) -> None:
    host = _host(tmp_path / "none", "/", uid=1000, writable=lambda p: True)
    assert host.cgroup_version is None and host.cgroup is None
    assert host.memory == hostcheck.MEMORY_RLIMIT_AS
    assert host.processes == hostcheck.PIDS_RLIMIT_NPROC
    assert "no cgroup file system" in host.refusal(gpu=True)


def test_gpu_device_nodes_are_listed(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        (tmp_path / "dev" / name).write_text("")
    host = _host(tmp_path, "/", uid=1000, writable=lambda p: False)
    assert [Path(d).name for d in host.gpu_devices] == ["nvidia-uvm", "nvidia0", "nvidiactl"]
    assert not any(p.piece == "gpu" and "no NVIDIA" in p.why for p in host.problems)


def test_own_cgroups_parses_v1_and_v2_lines() -> None:
    text = "12:cpu,cpuacct:/a\n4:memory:/b\n1:name=systemd:/c\n0::/d\n"
    found = hostcheck.own_cgroups(text)
    assert (found["cpuacct"], found["cpu"], found["memory"], found[""]) == ("/a", "/a", "/b", "/d")


# --- fail closed through the CLI ---------------------------------------------------------------


def _unsafe_host(tmp_path: Path) -> HostLimits:
    """This machine's sandbox, but as root without cgroups: processes cannot be limited."""
    return resolve(
        cgroup_root=tmp_path / "no-cgroups",
        uid=0,
        uid_map=INIT_NS,
        bwrap=sandbox.sandbox_status(),
    )


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(ROOT), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_grade_refuses_a_host_without_process_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hostcheck, "current", lambda: _unsafe_host(tmp_path))
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "alice.ipynb").write_text("not json")
    book = tmp_path / "gb.db"
    code, _, err = _run_cli(
        capsys, "grade", str(folder), "--exercise", "signs_cnn", "--gradebook", str(book)
    )
    assert code == 2
    assert "processes:" in err and "fork bomb" in err and "--allow-unlimited" in err
    assert not book.exists()  # nothing graded, nothing recorded
    assert not (tmp_path / "cache").exists()  # refused before any data was made
    code, _, err = _run_cli(capsys, "check-solutions", "--exercise", "signs_cnn")
    assert code == 2 and "--allow-unlimited" in err


@pytest.mark.slow
def test_allow_unlimited_grades_and_marks_every_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("keras")
    monkeypatch.setattr(hostcheck, "current", lambda: _unsafe_host(tmp_path))
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "alice.ipynb").write_text("not json")  # stage 1 refuses it; stage 2 still runs
    book = tmp_path / "gb.db"
    args = ["grade", str(folder), "--exercise", "signs_cnn", "--gradebook", str(book)]
    code, out, err = _run_cli(
        capsys, *args, "--json", "--allow-unlimited", "--workdir", str(tmp_path / "w")
    )
    assert code == 0, err
    result = json.loads(out.splitlines()[0])
    assert result["unlimited"] is True and result["verdict"] == "invalid_notebook"
    csv_out = tmp_path / "grades.csv"
    code, _, err = _run_cli(
        capsys, "export", "--format", "csv", "--out", str(csv_out), "--gradebook", str(book)
    )
    assert code == 0, err
    with csv_out.open() as handle:
        assert [row["unlimited"] for row in csv.DictReader(handle)] == ["yes"]


def test_doctor_reports_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    host = hostcheck.current()
    code, out, _ = _run_cli(capsys, "doctor")
    assert code == (1 if host.refusal() else 0)
    assert out.startswith("sandbox:")
    for label in ("cgroups:", "memory:", "processes:", "cpu time:"):
        assert label in out
    code, out, _ = _run_cli(capsys, "doctor", "--json")
    report = json.loads(out)
    assert report["memory"] == host.memory and report["safe"] is (code == 0)


def test_doctor_fails_and_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hostcheck, "current", lambda: _unsafe_host(tmp_path))
    code, out, _ = _run_cli(capsys, "doctor")
    assert code == 1
    assert "PROBLEM (processes)" in out and "    fix: " in out and "NOT safe" in out


# --- real limits on this machine -----------------------------------------------------------------

FORK = """
import subprocess, sys
procs = []
try:
    for _ in range(int(sys.argv[1])):
        procs.append(subprocess.Popen(["sleep", "60"]))
    print("spawned", len(procs))
except OSError as exc:
    print("stopped after", len(procs), type(exc).__name__)
for p in procs:
    p.kill()
"""


def _sandboxed_fork(tmp_path: Path, tool: sandbox.Bwrap, count: int, max_pids: int) -> str:
    spec = SandboxSpec(mounts=python_mounts(), env={"PATH": "/usr/bin:/bin"})
    argv = bwrap_argv(spec, [sys.executable, "-c", FORK, str(count)], tool)
    log = tmp_path / "log"
    with log.open("wb") as out:
        outcome = limits.run_limited(
            argv, timeout_s=120, memory_mb=1024, max_pids=max_pids, file_size_mb=4,
            stdout=out, stderr=out,
        )  # fmt: skip
    return log.read_text() + "\n".join(outcome.limits)


def test_sandboxed_fork_bomb_stops_at_the_pids_limit(tmp_path: Path, bwrap: sandbox.Bwrap) -> None:
    host = hostcheck.current()
    if host.cgroup is None or "pids" not in host.cgroup.parents:
        pytest.skip(reason=f"no writable pids cgroup here (processes: {host.processes})")
    report = _sandboxed_fork(tmp_path, bwrap, 400, 100)
    assert "stopped after" in report and "BlockingIOError" in report, report
    assert "spawned" not in report
    assert "processes 100 (cgroup" in report


SETPRIV = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def _python_for_nobody() -> str | None:
    """An interpreter `nobody` can run whole, the system's first (deepgrade's limits and
    sandbox modules need only the standard library)."""
    probe = "import os, sys; assert sys.version_info >= (3, 11) and os.listdir(sys.base_prefix)"
    for python in ("/usr/bin/python3", sys.executable):
        check = [*SETPRIV, python, "-c", probe]
        done = subprocess.run(check, capture_output=True, timeout=60, check=False)
        if done.returncode == 0:
            return python
    return None


NONROOT = """
import sys
from deepgrade import hostcheck, limits, sandbox
host = hostcheck.current()
assert host.processes == hostcheck.PIDS_RLIMIT_NPROC, host
tool = sandbox.find_bwrap()
assert tool is not None, sandbox.unavailable_reason()
spec = sandbox.SandboxSpec(mounts=sandbox.python_mounts(), env={{"PATH": "/usr/bin:/bin"}})
argv = sandbox.bwrap_argv(spec, [sys.executable, "-c", {fork!r}, "3000"], tool)
with open("log", "wb") as out:
    outcome = limits.run_limited(
        argv, timeout_s=120, memory_mb=1024, max_pids=200, file_size_mb=4, stdout=out, stderr=out
    )
print(open("log").read() + "\\n".join(outcome.limits))
"""


def test_non_root_fork_of_3000_is_stopped_by_rlimit_nproc(tmp_path: Path, bwrap: object) -> None:
    """As an ordinary user (no writable cgroup), RLIMIT_NPROC stops a sandboxed fork bomb."""
    if os.getuid() != 0:
        pytest.skip(reason="needs root to switch to the unprivileged user `nobody`")
    if shutil.which("setpriv") is None:
        pytest.skip(reason="needs setpriv (util-linux) to run as another user")
    python = _python_for_nobody()
    if python is None:
        pytest.skip(reason="no Python 3.11+ that the user `nobody` may run (root's pyenv?)")
    tmp_path.chmod(0o777)
    code = NONROOT.format(fork=FORK)
    done = subprocess.run(
        [*SETPRIV, python, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped after" in done.stdout and "BlockingIOError" in done.stdout, done.stdout
    assert "processes 200 (RLIMIT_NPROC" in done.stdout


def test_cpu_time_is_measured_from_the_cgroup(tmp_path: Path) -> None:
    if hostcheck.current().cpu_time == hostcheck.NOT_LIMITED:
        pytest.skip(reason="no cgroup to measure CPU time with on this host")
    code = "import time\nwhile time.process_time() < 0.3:\n    pass\n"
    with (tmp_path / "log").open("wb") as out:
        outcome = limits.run_limited(
            [sys.executable, "-c", code], timeout_s=120, memory_mb=256, file_size_mb=1,
            stdout=out, stderr=out,
        )  # fmt: skip
    assert outcome.returncode == 0
    # at least the 0.3 s the process counted on its own clock, less the few milliseconds by
    # which cgroup v1's cpuacct and the process clock may disagree (0.29988 seen)
    assert outcome.cpu_seconds is not None and outcome.cpu_seconds >= 0.29


# --- bubblewrap as distributions ship it ------------------------------------------------------

FAKE_BWRAP = """#!/bin/sh
# bubblewrap 0.6.1 as Ubuntu 22.04 ships it: no --disable-userns.
if [ "$1" = "--version" ]; then echo "bubblewrap 0.6.1"; exit 0; fi
for arg in "$@"; do
  if [ "$arg" = "--disable-userns" ]; then
    echo "bwrap: Unknown option --disable-userns" >&2; exit 1
  fi
done
exec {real} "$@"
"""

USERNS = textwrap.dedent(
    """
    import ctypes, subprocess
    libc = ctypes.CDLL(None, use_errno=True)
    print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
    print("tool", subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode)
    print("child", subprocess.run(["true"]).returncode)
    """
)


@pytest.fixture
def old_bwrap(tmp_path: Path, bwrap: sandbox.Bwrap, monkeypatch: pytest.MonkeyPatch) -> str:
    fake = tmp_path / "bwrap-0.6.1"
    fake.write_text(FAKE_BWRAP.format(real=bwrap.path))
    fake.chmod(0o755)
    monkeypatch.setenv("DEEPGRADE_BWRAP", str(fake))
    sandbox._bwrap_status.cache_clear()
    yield str(fake)
    sandbox._bwrap_status.cache_clear()


def test_old_bubblewrap_grades_with_a_seccomp_filter(old_bwrap: str) -> None:
    if seccomp.unavailable_reason():
        pytest.skip(reason=seccomp.unavailable_reason())
    tool = sandbox.find_bwrap()
    assert tool is not None, sandbox.unavailable_reason()
    assert (tool.path, tool.version, tool.userns_guard) == (
        old_bwrap,
        (0, 6, 1),
        sandbox.GUARD_SECCOMP,
    )
    spec = SandboxSpec(mounts=python_mounts(), env={"PATH": "/usr/bin:/bin"})
    argv = bwrap_argv(spec, [sys.executable, "-c", USERNS], tool)
    assert "--disable-userns" not in argv and "--seccomp" in argv
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["unshare"] == "-1 1"  # EPERM: no user namespace from inside
    assert lines["tool"] != "0" and lines["child"] == "0"  # ordinary processes still work


def test_old_bubblewrap_without_libseccomp_is_refused_naming_the_version(
    old_bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seccomp, "unavailable_reason", lambda: "libseccomp is not installed")
    assert sandbox.find_bwrap() is None
    reason = sandbox.unavailable_reason()
    assert "0.6.1" in reason and "0.8.0" in reason and "libseccomp" in reason


def test_doctor_names_the_old_bubblewrap(
    old_bwrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if seccomp.unavailable_reason():
        pytest.skip(reason=seccomp.unavailable_reason())
    monkeypatch.setattr(hostcheck, "current", hostcheck.resolve)
    _, out, _ = _run_cli(capsys, "doctor")
    assert f"bubblewrap 0.6.1 at {old_bwrap}" in out and "seccomp filter" in out


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_sandbox_skips_locally_and_fails_in_ci(tmp_path: Path, ci: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(DEEPGRADE_BWRAP=str(tmp_path / "no-bwrap"), PYTHONPATH=str(SRC))
    if ci:
        env["CI"] = ci
    test = "tests/test_sandbox.py::test_inside_the_sandbox"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    if ci:
        assert done.returncode == 1 and "CI must have the sandbox" in done.stdout, done.stdout
    else:
        assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
