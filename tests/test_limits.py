"""Resource limits: wall time kills the tree, memory, processes and file size are bounded."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from deepgrade import hostcheck, limits
from deepgrade.limits import ProcessOutcome, run_limited


def _run(tmp_path: Path, code: str, **kwargs: object) -> tuple[ProcessOutcome, str]:
    options: dict[str, object] = {"timeout_s": 20, "memory_mb": 256, "file_size_mb": 4}
    options.update(kwargs)
    log = tmp_path / "log"
    with log.open("wb") as out:
        outcome = run_limited([sys.executable, "-c", code], stdout=out, stderr=out, **options)  # type: ignore[arg-type]
    return outcome, log.read_text()


def _memory_limit(outcome: ProcessOutcome) -> str:
    return next(text for text in outcome.limits if text.startswith("memory"))


def test_a_normal_run_reports_its_limits(tmp_path: Path) -> None:
    outcome, log = _run(tmp_path, "print('hi')")
    assert outcome.returncode == 0 and not outcome.timed_out and not outcome.oom_killed
    assert log == "hi\n"
    assert "wall time 20 s" in outcome.limits
    assert "file size 4 MiB (RLIMIT_FSIZE)" in outcome.limits
    assert _memory_limit(outcome).startswith("memory 256 MiB")


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = (
        "import subprocess, time\n"
        f"p = subprocess.Popen(['sleep', '60'])\nopen({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    outcome, _ = _run(tmp_path, code, timeout_s=1.5)
    assert outcome.timed_out and outcome.returncode == -9
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"


def test_processes_left_behind_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = (
        "import subprocess\n"
        f"p = subprocess.Popen(['sleep', '60'])\nopen({str(pidfile)!r}, 'w').write(str(p.pid))\n"
    )
    outcome, _ = _run(tmp_path, code)
    assert outcome.returncode == 0 and not outcome.timed_out
    stat = Path(f"/proc/{int(pidfile.read_text())}/stat")
    assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"


def test_memory_hog_is_stopped(tmp_path: Path) -> None:
    outcome, log = _run(tmp_path, "b = bytearray(1024 * 1024 * 1024)\nprint('survived')")
    assert "survived" not in log
    if "cgroup" in _memory_limit(outcome):
        assert outcome.oom_killed and outcome.returncode == -9
    else:
        assert "MemoryError" in log and not outcome.oom_killed


def _no_cgroups(tmp_path: Path, uid: int = 0) -> hostcheck.HostLimits:
    """This host as if it had no cgroups, as root (uid 0 mapped to 0: RLIMIT_NPROC ignored)."""
    return hostcheck.resolve(
        cgroup_root=tmp_path / "no-cgroups", uid=uid, uid_map="0 0 4294967295", bwrap=(None, "")
    )


def test_without_cgroups_rlimit_as_bounds_memory(tmp_path: Path) -> None:
    outcome, log = _run(tmp_path, "b = bytearray(1024 * 1024 * 1024)", host=_no_cgroups(tmp_path))
    assert "memory 256 MiB per process (RLIMIT_AS, CPU only)" in outcome.limits
    assert "processes: not limited (no writable pids cgroup)" in outcome.limits
    assert "MemoryError" in log and outcome.returncode == 1
    assert outcome.cpu_seconds is None  # nothing to measure it with


def test_without_cgroups_and_rlimit_as_memory_is_said_unlimited(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, "pass", rlimit_as=False, host=_no_cgroups(tmp_path))
    assert _memory_limit(outcome).startswith("memory: not limited")


def test_process_count_is_bounded(tmp_path: Path) -> None:
    code = (
        "import subprocess\nprocs = []\n"
        "for _ in range(60):\n    procs.append(subprocess.Popen(['sleep', '30']))\n"
        "print('spawned all')\n"
    )
    outcome, log = _run(tmp_path, code, max_pids=20)
    if "processes 20 (cgroup" in " ".join(outcome.limits):
        assert "spawned all" not in log and "BlockingIOError" in log
    else:  # running as root, RLIMIT_NPROC would not hold: the limits must say so
        assert "processes: not limited (no writable pids cgroup)" in outcome.limits


def test_file_size_is_bounded(tmp_path: Path) -> None:
    target = tmp_path / "big"
    outcome, log = _run(tmp_path, f"open({str(target)!r}, 'wb').write(b'x' * 5 * 2**20)")
    assert outcome.returncode == 1 and "File too large" in log
    assert target.stat().st_size <= 4 * 2**20


def test_passed_fds_reach_the_child(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        outcome, _ = _run(
            tmp_path, f"import os; os.write({write_end}, b'tar')", pass_fds=[write_end]
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"tar"
    assert outcome.returncode == 0


def test_cgroups_are_removed_after_the_run(tmp_path: Path) -> None:
    outcome, _ = _run(tmp_path, "pass")
    if not any("cgroup" in text for text in outcome.limits):
        pytest.skip(reason="no writable cgroups on this host: nothing to clean up")
    plan = hostcheck.current().cgroup
    assert plan is not None
    places = list(plan.parents.values())
    leftovers = [
        p for place in places for p in place.glob(f"{limits.PARENT_NAME}/run-{os.getpid()}-*")
    ]
    assert leftovers == []


def test_concurrent_runs_from_threads(tmp_path: Path) -> None:
    """Workers are threads: runs started at once each get their own limits and finish."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> ProcessOutcome:
        folder = tmp_path / str(i)
        folder.mkdir()
        return _run(folder, "import time; time.sleep(0.2)")[0]

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert [o.returncode for o in outcomes] == [0] * 8
    assert not any(o.timed_out or o.oom_killed for o in outcomes)


@pytest.mark.parametrize(
    ("version", "files", "expected"),
    [
        (2, {"unified/memory.peak": "104857600\n"}, 100.0),  # cgroup v2, Linux 5.19+
        (2, {}, None),  # older v2 kernels do not count a peak
        (1, {"memory/memory.max_usage_in_bytes": "52428800\n"}, 50.0),
        (1, {"memory/memory.max_usage_in_bytes": "garbage"}, None),
    ],
)
def test_peak_memory_from_fake_cgroup_trees(
    tmp_path: Path, version: int, files: dict[str, str], expected: float | None
) -> None:
    from deepgrade.limits import _Cgroup

    dirs = {"unified": tmp_path / "unified"} if version == 2 else {"memory": tmp_path / "memory"}
    for folder in dirs.values():
        folder.mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert _Cgroup(version, dirs, ()).peak_memory_mb() == expected


def test_a_limited_run_reports_its_peak_memory_where_the_host_counts_it(tmp_path: Path) -> None:
    host = hostcheck.current()
    if host.memory not in (hostcheck.MEMORY_CGROUP_V1, hostcheck.MEMORY_CGROUP_V2):
        pytest.skip(reason=f"this host limits memory without a cgroup ({host.memory}): no peak")
    code = "x = bytearray(80 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    outcome, log = _run(tmp_path, code, memory_mb=512)
    assert outcome.returncode == 0, log
    if host.memory == hostcheck.MEMORY_CGROUP_V2 and outcome.peak_memory_mb is None:
        pytest.skip(reason="cgroup v2 before Linux 5.19 has no memory.peak")
    assert outcome.peak_memory_mb is not None and outcome.peak_memory_mb >= 80
