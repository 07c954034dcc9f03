"""Stage 2 warm (deepgrade.checks.warm/server): the same reports as a fresh process, and
nothing of one submission reaching the next even when its checks run hostile code (as a
compromised model loader would). Tiny exercises reuse test_checks' helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_checks import _run_checks, _spec_dir

from deepgrade.checks.warm import CheckServer, CheckServers
from deepgrade.exercise import load_spec
from deepgrade.profiles import resolve_profile
from deepgrade.results import Verdict

THREE_CHECKS = '''
import pytest

@pytest.mark.points(2)
def test_first(answers):
    """First check."""
    assert answers["a"] == 1, "a is wrong"

@pytest.mark.points(1)
def test_second(answers):
    """Second check."""
    assert answers["b"] == 2, "b is wrong"

@pytest.mark.points(1)
def test_third(profile):
    """Third check."""
    assert profile.parameters["EPOCHS"] == 3, "the profile did not arrive"
'''

# What a compromised loader could do: look for what the last submission left, leave things
# for the next one (a file in each writable place, a process that outlives the checks).
SNOOP = '''
import json, os, subprocess
from pathlib import Path
import pytest

def _others():
    mine = {os.getpid(), os.getppid(), 1}
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            try:
                command = Path(f"/proc/{name}/cmdline").read_bytes()
                found.append(command.replace(b"\\0", b" ").decode())
            except OSError:
                pass
    return sorted(found)

@pytest.mark.points(1)
def test_snoop(artifacts_dir):
    """Reports what is left from before, then leaves things behind."""
    try:
        open(f"/proc/{os.getppid()}/mem", "rb").read(1)
        server_memory = "readable"
    except OSError as exc:
        server_memory = type(exc).__name__
    facts = {
        "artifacts": sorted(p.name for p in artifacts_dir.iterdir()),
        "tmp": sorted(p.name for p in Path("/tmp").iterdir()),
        "home": sorted(p.name for p in Path.home().iterdir()),
        "shm": sorted(p.name for p in Path("/dev/shm").iterdir()),
        "processes": _others(),
        "server_memory": server_memory,
    }
    for place in ("/tmp", str(Path.home()), "/dev/shm"):
        Path(place, "left-behind").write_text("secret of the previous student")
    subprocess.Popen(["sleep", "600"], start_new_session=True)
    pytest.fail(json.dumps(facts))
'''


def _when_told(name: str, action: str) -> str:
    """Two checks; the second does `action` when the artifacts hold a file called `name`."""
    return f'''
import os, signal, time
import pytest

@pytest.mark.points(1)
def test_first():
    """Runs."""

@pytest.mark.points(1)
def test_{name}(artifacts_dir):
    """Does something hostile when told to by the artifacts."""
    if (artifacts_dir / "{name}").exists():
        {action}
'''


KILL = "os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)"
HUNGRY = "assert [bytearray(64 * 1024 * 1024) for _ in range(64)]"  # 4 GiB, touched

SLOW = '''
import time
import pytest

@pytest.mark.points(1)
def test_slow(artifacts_dir):
    """Sleeps when the artifacts say so."""
    if (artifacts_dir / "slow").exists():
        time.sleep(120)
'''

# Imported (and rewritten by pytest) once in the server, before any child forks: the pid the
# module saw at import is its parent's, and pytest's assertion rewriting still applies.
PRECOLLECTED = '''
import os
import pytest

IMPORTED_IN = os.getpid()

@pytest.mark.points(1)
def test_imported_before_the_fork():
    """The module was imported by the server."""
    assert IMPORTED_IN == os.getppid(), f"imported in {IMPORTED_IN}, running in {os.getpid()}"

@pytest.mark.points(1)
def test_rewritten():
    """pytest rewrote its asserts."""
    assert "@py_builtins" in globals(), "not rewritten"
'''


def _server(tmp_path: Path, directory: Path, **kwargs: Any) -> CheckServer:
    data = tmp_path / "labels.txt"
    data.write_text("0 1 2")
    spec = load_spec(directory)
    profile = resolve_profile(spec, "smoke", data_files=[data])
    return CheckServer(spec, profile, workdir=tmp_path / "servers", **kwargs)


def _artifacts(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def test_warm_reports_equal_cold_ones(tmp_path: Path, bwrap: Any) -> None:
    directory = _spec_dir(tmp_path, THREE_CHECKS)
    (tmp_path / "artifacts" / "answers.json").write_text(json.dumps({"a": 1, "b": 3}))
    cold = _run_checks(tmp_path, directory)
    server = _server(tmp_path, directory)
    try:
        warm = server.check(tmp_path / "artifacts", workdir=tmp_path / "w1")
        again = server.check(tmp_path / "artifacts", workdir=tmp_path / "w2")
    finally:
        server.close()
    assert [(c.check_id, c.points, c.message) for c in warm.checks] == [
        (c.check_id, c.points, c.message) for c in cold.checks
    ]
    assert [c.points for c in warm.checks] == [2.0, 0.0, 1.0]
    assert warm.checks[1].message == "b is wrong"
    assert (warm.error, warm.verdict) == (cold.error, cold.verdict) == (None, None)
    assert again.checks == warm.checks and server.starts == 1
    assert "1 failed, 2 passed" in (tmp_path / "w2" / "checks" / "pytest.log").read_text()


def test_the_server_imports_the_checks_once_for_every_child(tmp_path: Path, bwrap: Any) -> None:
    directory = _spec_dir(tmp_path, PRECOLLECTED)
    server = _server(tmp_path, directory)
    try:
        reports = [server.check(tmp_path / "artifacts", workdir=tmp_path / f"w{i}") for i in (1, 2)]
    finally:
        server.close()
    for report in reports:
        assert [(c.points, c.message) for c in report.checks] == [(1.0, ""), (1.0, "")]
    assert server.starts == 1


def test_nothing_of_one_submission_reaches_the_next(tmp_path: Path, bwrap: Any) -> None:
    directory = _spec_dir(tmp_path, SNOOP)
    server = _server(tmp_path, directory)
    try:
        first = server.check(
            _artifacts(tmp_path, "ana", {"ana-model.txt": "ana"}), workdir=tmp_path / "ana-run"
        )
        second = server.check(
            _artifacts(tmp_path, "bo", {"bo-model.txt": "bo"}), workdir=tmp_path / "bo-run"
        )
    finally:
        server.close()
    seen = [json.loads(r.checks[0].message) for r in (first, second)]
    assert seen[0]["artifacts"] == ["ana-model.txt"] and seen[1]["artifacts"] == ["bo-model.txt"]
    for facts in seen:
        assert facts["processes"] == []  # ana's sleeper was killed before bo's checks
        assert "left-behind" not in facts["tmp"] + facts["home"] + facts["shm"]
        assert not any("ana" in name for name in facts["tmp"])
        assert facts["server_memory"] == "PermissionError"  # not dumpable: no ptrace, no mem
    assert server.starts == 1


@pytest.mark.parametrize(
    ("name", "action", "starts", "why"),
    [
        pytest.param("kill", KILL, 2, "crashed or were stopped", id="kills-its-server"),
        # the kernel takes the child (its OOM score is raised), not the server
        pytest.param("hungry", HUNGRY, 1, "ran out of memory", id="out-of-memory"),
    ],
)
def test_a_hostile_child_loses_only_its_own_checks(
    tmp_path: Path, bwrap: Any, name: str, action: str, starts: int, why: str
) -> None:
    directory = _spec_dir(tmp_path, _when_told(name, action))
    server = _server(tmp_path, directory)
    try:
        hostile = server.check(_artifacts(tmp_path, "bad", {name: ""}), workdir=tmp_path / "b")
        after = server.check(_artifacts(tmp_path, "fine", {"x": ""}), workdir=tmp_path / "f")
    finally:
        server.close()
    assert hostile.verdict is Verdict.ARTIFACT_REJECTED, hostile.error
    assert why in (hostile.error or "")
    assert [c.passed for c in hostile.checks] == [True, False]
    assert (after.verdict, [c.passed for c in after.checks]) == (None, [True, True])
    assert server.starts == starts


def test_a_slow_check_times_out_and_the_server_goes_on(tmp_path: Path, bwrap: Any) -> None:
    directory = _spec_dir(tmp_path, SLOW)
    server = _server(tmp_path, directory, timeout_s=4)
    try:
        slow = server.check(_artifacts(tmp_path, "slow", {"slow": ""}), workdir=tmp_path / "s")
        quick = server.check(_artifacts(tmp_path, "quick", {"x": ""}), workdir=tmp_path / "q")
    finally:
        server.close()
    assert slow.verdict is Verdict.CHECK_TIMEOUT, slow.error
    assert "ran past their 4 s time limit" in (slow.error or "")
    assert quick.verdict is None and quick.checks[0].passed
    assert server.starts == 1


def test_servers_are_per_thread_and_closed_with_the_batch(tmp_path: Path, bwrap: Any) -> None:
    directory = _spec_dir(tmp_path, THREE_CHECKS)
    (tmp_path / "artifacts" / "answers.json").write_text(json.dumps({"a": 1, "b": 2}))
    data = tmp_path / "labels.txt"
    data.write_text("0 1 2")
    spec = load_spec(directory)
    profile = resolve_profile(spec, "smoke", data_files=[data])
    with CheckServers() as servers:
        report = servers.run_checks(
            spec, profile, tmp_path / "artifacts", workdir=tmp_path / "runs" / "a"
        )
        assert [c.points for c in report.checks] == [2.0, 1.0, 1.0]
        (only,) = servers._servers.values()
        assert only._process is not None
    assert only._process is None  # closed: its sandbox is gone


def test_the_warm_server_module_refuses_a_bad_request(tmp_path: Path) -> None:
    from deepgrade.checks import server

    reply = server.serve_one(None, None, {"timeout_s": 1}, [])  # type: ignore[arg-type]
    assert reply == {"error": "expected 3 descriptors, got 0"}


def test_unsafe_mode_runs_the_same_and_leaves_no_run_folder(tmp_path: Path) -> None:
    """Without the sandbox (trusted solutions) the server cleans up only what it made."""
    directory = _spec_dir(tmp_path, THREE_CHECKS)
    (tmp_path / "artifacts" / "answers.json").write_text(json.dumps({"a": 1, "b": 2}))
    before = set(Path("/tmp").glob("dg-checks-*"))
    server = _server(tmp_path, directory, unsafe=True)
    try:
        reports = [
            server.check(tmp_path / "artifacts", workdir=tmp_path / f"w{i}") for i in range(2)
        ]
    finally:
        server.close()
    assert [[c.points for c in r.checks] for r in reports] == [[2.0, 1.0, 1.0]] * 2
    assert set(Path("/tmp").glob("dg-checks-*")) == before
