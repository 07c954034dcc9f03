"""The bwrap command line, the mounts it gets, and what code inside can and cannot reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deepgrade import sandbox
from deepgrade.errors import SandboxUnavailable
from deepgrade.sandbox import Mount, SandboxSpec, bwrap_argv, python_mounts

REPO = Path(__file__).resolve().parents[1]


def _pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def test_argv_isolates_by_default() -> None:
    argv = bwrap_argv(SandboxSpec(env={"A": "1"}), ["python", "-c", "pass"], "/usr/bin/bwrap")
    assert argv[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--clearenv" in argv
    assert ("A", "1") in _pairs(argv, "--setenv")
    assert ("HOME", "/home/grader") in _pairs(argv, "--setenv")
    tmpfs = {argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"}
    assert {"/tmp", "/home/grader", "/dev/shm"} <= tmpfs
    i = argv.index("--remount-ro")
    assert argv[i + 1 : i + 3] == ["/", "--chdir"]  # the root is read-only, after all mounts
    assert argv[argv.index("--") :] == ["--", "python", "-c", "pass"]


def test_argv_network_mounts_and_gpu() -> None:
    spec = SandboxSpec(
        mounts=(
            Mount(Path("/tmp/venv"), "/tmp/venv"),  # under a tmpfs: must come after it
            Mount(Path("/srv/out"), "/out", writable=True),
            Mount(Path("usr/lib"), "/lib", symlink=True),
        ),
        tmpfs=(("/artifacts", 1024), ("/tmp", 2048)),
        network=True,
        devices=(("/srv/dev/nvidia0", "/dev/nvidia0"), ("/dev/nvidiactl", "/dev/nvidiactl")),
        chdir="/out",
    )
    argv = bwrap_argv(spec, ["true"], "bwrap")
    assert "--share-net" in argv
    assert ("/tmp/venv", "/tmp/venv") in _pairs(argv, "--ro-bind")
    assert ("/srv/out", "/out") in _pairs(argv, "--bind")
    assert ("usr/lib", "/lib") in _pairs(argv, "--symlink")
    assert _pairs(argv, "--dev-bind") == [
        ("/srv/dev/nvidia0", "/dev/nvidia0"),
        ("/dev/nvidiactl", "/dev/nvidiactl"),
    ]
    assert argv.index("/tmp/venv") > argv.index("/tmp")  # parents first
    sizes = {argv[i + 3]: argv[i + 1] for i, a in enumerate(argv) if a == "--size"}
    assert sizes["/artifacts"] == "1024" and sizes["/tmp"] == "2048"  # spec overrides default
    assert argv[argv.index("--chdir") + 1] == "/out"


def test_python_mounts_bind_the_interpreter_not_the_repository() -> None:
    mounts = python_mounts()
    dests = {m.dest for m in mounts if not m.symlink}
    assert all(not m.writable for m in mounts)
    assert sys.prefix in dests or any(sys.prefix.startswith(d + "/") for d in dests)
    assert sys.base_prefix in dests or any(sys.base_prefix.startswith(d + "/") for d in dests)
    for dest in dests:  # nothing that contains the repository, or anything in it but a venv
        assert not (Path(dest) == REPO or Path(dest) in REPO.parents), dest
        if Path(dest).is_relative_to(REPO):
            assert Path(dest) == Path(sys.prefix), dest
    etc = {Path(d).name for d in dests if d.startswith("/etc/")}
    assert etc <= set(sandbox.ETC_ALLOWED)
    assert "shadow" not in etc and "/etc" not in dests


def test_python_mounts_refuse_an_environment_holding_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(sys.prefix)
    with pytest.raises(SandboxUnavailable, match="contains the working directory"):
        python_mounts()


def test_find_bwrap_reports_a_missing_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEPGRADE_BWRAP", str(tmp_path / "no-such-bwrap"))
    sandbox._bwrap_status.cache_clear()
    try:
        assert sandbox.find_bwrap() is None
        assert "no-such-bwrap" in sandbox.unavailable_reason()
    finally:
        monkeypatch.undo()
        sandbox._bwrap_status.cache_clear()


PROBE = """
import json, os, socket, subprocess
report = {}
report["interfaces"] = [name for _, name in socket.if_nameindex()]
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2)
    report["outside"] = "connected"
except OSError as exc:
    report["outside"] = type(exc).__name__
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname(), timeout=2)
report["loopback"] = True
report["repo"] = os.listdir(REPO) if os.path.isdir(REPO) else []
report["autograder_visible"] = os.path.exists(os.path.join(REPO, "autograder"))
report["home"] = os.listdir(os.environ["HOME"])
open(os.path.join(os.environ["HOME"], "x"), "w").write("ok")
report["shadow"] = os.path.exists("/etc/shadow")
for target in ("/newfile", "/usr/newfile", PREFIX + "/newfile"):
    try:
        open(target, "w")
        report[target] = "written"
    except OSError as exc:
        report[target] = exc.errno
report["userns"] = subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode
report["pid"] = os.getpid()
report["caps"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
report["env"] = sorted(os.environ)
print(json.dumps(report))
"""


def test_inside_the_sandbox(bwrap: str) -> None:
    """No network but loopback, no repository, an empty writable HOME, a read-only system."""
    code = f"REPO = {str(REPO)!r}\nPREFIX = {sys.prefix!r}\n" + textwrap.dedent(PROBE)
    spec = SandboxSpec(mounts=python_mounts(), env={"PATH": "/usr/bin:/bin"})
    done = subprocess.run(
        bwrap_argv(spec, [sys.executable, "-c", code], bwrap),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SECRET_TOKEN": "x"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["interfaces"] == ["lo"]
    assert report["outside"] != "connected"
    assert report["loopback"] is True
    assert report["autograder_visible"] is False
    # Only a mount point for a venv that lives in the repository, never the repository itself.
    assert set(report["repo"]) <= {Path(sys.prefix).name}
    assert report["home"] == []
    assert report["shadow"] is False
    assert report["/newfile"] == report["/usr/newfile"] == report[sys.prefix + "/newfile"] == 30
    assert report["userns"] != 0  # no nested namespaces
    assert report["pid"] != 1  # bwrap's init is pid 1: the runner may kill(-1) safely
    assert int(report["caps"], 16) == 0
    assert "SECRET_TOKEN" not in report["env"]
