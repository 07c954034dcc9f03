"""Stage 1 end to end on tiny plain-Python notebooks: verdicts, artifacts and the sandbox."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepgrade import execute, fontcache, sandbox
from deepgrade.errors import InputError, SandboxUnavailable
from deepgrade.execute import execute_notebook, extract_results
from deepgrade.limits import ProcessOutcome
from deepgrade.results import ExecutionResult, Verdict

REPO = Path(__file__).resolve().parents[1]
SAVE = (
    "import json, os\n"
    "def save(name, value):\n"
    "    os.makedirs(ARTIFACT_DIR, exist_ok=True)\n"
    "    with open(os.path.join(ARTIFACT_DIR, name), 'w') as f:\n"
    "        json.dump(value, f)\n"
)


def _run(
    make_notebook: Callable[..., Path],
    tmp_path: Path,
    cells: Sequence[str],
    **kwargs: Any,
) -> ExecutionResult:
    data = tmp_path / "train.txt"
    data.write_text("grader data")
    options: dict[str, Any] = {
        "parameters": {"EPOCHS": 3},
        "data_files": [data],
        "workdir": tmp_path / "work",
        "cell_timeout_s": 20,
        "notebook_timeout_s": 60,
        "memory_mb": 1024,
        "artifact_cap_mb": 4,
    }
    options.update(kwargs)
    return execute_notebook(make_notebook([SAVE, *cells]), **options)


def _artifact(result: ExecutionResult, name: str) -> Any:
    return json.loads((result.artifacts_dir / name).read_text())


def test_a_clean_run_brings_its_artifacts_back(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    events: list[str] = []
    result = _run(
        make_notebook,
        tmp_path,
        ["save('params.json', {'epochs': EPOCHS, 'data': DATA_DIR, 'art': ARTIFACT_DIR,"
         " 'files': os.listdir(DATA_DIR), 'text': open(DATA_DIR + '/train.txt').read()})"],
        on_event=events.append,
    )  # fmt: skip
    assert result.verdict is Verdict.GRADED, result
    assert result.failed_cell is None and result.sandboxed
    assert _artifact(result, "params.json") == {
        "epochs": 3,
        "data": "/data",
        "art": "/artifacts",
        "files": ["train.txt"],
        "text": "grader data",
    }
    assert result.executed_notebook is not None and result.executed_notebook.is_file()
    assert any(text.startswith("sandbox: bubblewrap") for text in result.limits)
    assert "cell time 20 s" in result.limits and "artifacts 4 MiB" in result.limits
    assert events[-1] == "stage 1 done: graded"
    assert not (tmp_path / "work" / "stage1.tar").exists()


def test_sys_exit_is_a_cell_error_and_the_run_goes_on(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(make_notebook, tmp_path, ["import sys\nsys.exit(0)", "save('later.json', 1)"])
    assert result.verdict is Verdict.CELL_ERROR
    assert result.detail == "cell 3 raised SystemExit: 0"  # parameters, SAVE, then this one
    assert result.failed_cell == 3
    assert _artifact(result, "later.json") == 1


def test_the_first_error_is_reported(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    cells = ["x = 1", "1 / 0", "undefined_name", "save('later.json', 2)"]
    result = _run(make_notebook, tmp_path, cells)
    assert result.verdict is Verdict.CELL_ERROR
    assert result.failed_cell == 4
    assert result.detail == "cell 4 raised ZeroDivisionError: division by zero"
    assert _artifact(result, "later.json") == 2
    assert result.executed_notebook is not None
    executed = nbformat.read(result.executed_notebook, as_version=4)
    errors = [o.ename for c in executed.cells for o in c.get("outputs", []) if "ename" in o]
    assert errors == ["ZeroDivisionError", "NameError"]


def test_an_error_the_author_expects_is_not_a_failure(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_notebook([SAVE, "raise ValueError('expected')", "save('later.json', 9)"])
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    nbformat.write(nb, path)
    result = execute_notebook(
        path, parameters={}, data_files=[], workdir=tmp_path / "work", cell_timeout_s=20,
        notebook_timeout_s=60, memory_mb=1024, artifact_cap_mb=4,
    )  # fmt: skip
    assert result.verdict is Verdict.GRADED, result
    assert _artifact(result, "later.json") == 9


def test_os_exit_kills_the_kernel(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(make_notebook, tmp_path, ["save('early.json', 1)", "import os\nos._exit(1)"])
    assert result.verdict is Verdict.KERNEL_DIED
    assert result.failed_cell == 4
    assert "cell 4" in result.detail
    assert _artifact(result, "early.json") == 1  # what was saved before still counts


def test_the_kernel_is_killed_after_the_last_cell_not_asked_to_exit(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    """An interpreter holding TensorFlow spends about 2 CPU-seconds tearing itself down, so the
    kernel is killed once the last cell has replied: nothing of the student's runs after it
    (an atexit hook never writes), and what the cells saved is all there."""
    result = _run(
        make_notebook,
        tmp_path,
        ["import atexit\natexit.register(save, 'at_exit.json', 'too late')\nsave('last.json', 1)"],
    )
    assert result.verdict is Verdict.GRADED, result
    assert _artifact(result, "last.json") == 1
    assert not (result.artifacts_dir / "at_exit.json").exists()


def test_an_endless_cell_times_out_and_later_cells_run(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    start = time.monotonic()
    result = _run(
        make_notebook,
        tmp_path,
        ["while True:\n    pass", "save('later.json', 3)"],
        cell_timeout_s=2,
    )
    assert result.verdict is Verdict.TIMEOUT
    assert result.failed_cell == 3
    assert result.detail == "cell 3 ran longer than the 2 s cell limit"
    assert _artifact(result, "later.json") == 3
    assert time.monotonic() - start < 2 + 25  # kernel start (slow on a loaded CI box), interrupt


def test_the_whole_notebook_deadline_keeps_earlier_artifacts(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    cells = ["save('early.json', 4)", "import time\ntime.sleep(120)", "save('later.json', 5)"]
    start = time.monotonic()
    result = _run(make_notebook, tmp_path, cells, notebook_timeout_s=6)
    assert time.monotonic() - start < 6 + 25  # well under the 36 s hard limit outside
    assert result.verdict is Verdict.TIMEOUT
    assert "the notebook ran longer than its 6 s limit" in result.detail
    assert result.failed_cell == 4
    assert _artifact(result, "early.json") == 4
    assert not (result.artifacts_dir / "later.json").exists()


def test_a_memory_hog_runs_out_of_memory(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(
        make_notebook, tmp_path, ["hog = bytearray(2 * 1024**3)", "save('later.json', 6)"],
        memory_mb=512,
    )  # fmt: skip
    memory = next(text for text in result.limits if text.startswith("memory"))
    if "cgroup" in memory:
        assert result.verdict is Verdict.OUT_OF_MEMORY
        assert result.detail.startswith("ran out of memory (limit 512 MiB)")
    else:  # RLIMIT_AS: the allocation fails inside the kernel instead
        assert result.verdict is Verdict.CELL_ERROR and "MemoryError" in result.detail


def test_a_fork_bomb_is_contained(
    bwrap: str,
    make_notebook: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(execute, "MAX_PIDS", 40)
    bomb = (
        "import subprocess\nprocs = []\n"
        "for _ in range(200):\n    procs.append(subprocess.Popen(['sleep', '600']))\n"
    )
    result = _run(make_notebook, tmp_path, [bomb, "save('later.json', 7)"])
    limit = " ".join(result.limits)
    if "processes 40 (cgroup" not in limit:
        pytest.skip(reason="no pids cgroup on this host: the process count is not limited")
    assert result.verdict is Verdict.CELL_ERROR and "BlockingIOError" in result.detail
    assert _artifact(result, "later.json") == 7  # the kernel itself survived
    leftovers = [
        p for p in Path("/proc").iterdir()
        if p.name.isdigit() and _cmdline(p) == "sleep\x00600\x00"
    ]  # fmt: skip
    assert leftovers == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text()
    except OSError:
        return ""


PROBE = f"""
import socket, subprocess
report = {{}}
report["interfaces"] = [name for _, name in socket.if_nameindex()]
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2)
    report["network"] = "connected"
except OSError as exc:
    report["network"] = type(exc).__name__
report["autograder"] = os.path.exists({str(REPO / "autograder")!r})
report["home"] = os.environ["HOME"]
report["home_has_host_files"] = os.path.exists(os.path.expanduser("~/.pyenv"))
open(os.path.expanduser("~/scratch"), "w").write("ok")
try:
    open(DATA_DIR + "/train.txt", "a").write("tampered")
    report["data_write"] = "written"
except OSError as exc:
    report["data_write"] = exc.errno
try:
    with open(ARTIFACT_DIR + "/big.bin", "wb") as f:
        f.write(b"x" * 6 * 1024**2)
    report["over_cap"] = "written"
except OSError as exc:
    report["over_cap"] = exc.errno
os.remove(ARTIFACT_DIR + "/big.bin")
save("report.json", report)
"""


def test_inside_the_sandbox(bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path) -> None:
    """No network, no repository, a private HOME, read-only data, a capped artifact folder."""
    result = _run(make_notebook, tmp_path, [PROBE])
    assert result.verdict is Verdict.GRADED, result
    report = _artifact(result, "report.json")
    assert report["interfaces"] == ["lo"] and report["network"] != "connected"
    assert report["autograder"] is False
    assert report["home"] == "/home/grader" and report["home_has_host_files"] is False
    assert report["data_write"] == 30  # EROFS
    assert report["over_cap"] == 28  # ENOSPC: the artifact tmpfs is 4 MiB
    assert (tmp_path / "train.txt").read_text() == "grader data"


FONTS = """
import glob, time
config = os.environ["MPLCONFIGDIR"]
before = sorted(os.listdir(config))
started = time.process_time()
import matplotlib.font_manager
report = {"before": before, "after": sorted(os.listdir(config)),
          "writable": [os.access(path, os.W_OK) for path in glob.glob(config + "/fontlist-*")],
          "fonts": len(matplotlib.font_manager.fontManager.ttflist)}
try:
    open(glob.glob(config + "/fontlist-*")[0], "a").write("poison")
    report["poisoned"] = True
except OSError as exc:
    report["poisoned"] = exc.errno
save("fonts.json", report)
"""


def test_kernels_read_the_hosts_font_list_and_cannot_change_it(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    """matplotlib finds its font list ready (no scan of the fonts per submission), read-only."""
    fonts = fontcache.font_list()
    assert fonts is not None, "matplotlib is installed with deepgrade: its font list builds"
    text = fonts.read_text()
    result = _run(make_notebook, tmp_path, [FONTS])
    assert result.verdict is Verdict.GRADED, result
    report = _artifact(result, "fonts.json")
    assert report["before"] == report["after"] == [fonts.name]  # nothing rebuilt or added
    assert report["writable"] == [False] and report["poisoned"] == 30  # EROFS
    assert report["fonts"] > 0 and fonts.read_text() == text


GARBAGE = """
import glob
os.write(1, b"garbage on fd 1" * 1000)
sys.__stdout__.write("garbage on sys.__stdout__\\n")
opened = []
for path in glob.glob("/proc/[0-9]*/fd/*"):  # every other process's descriptors
    if path.startswith(f"/proc/{os.getpid()}/"):
        continue
    try:
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, b"garbage" * 1000)
        opened.append(path)
    except OSError:
        pass
save("opened.json", opened)
"""


def test_student_output_cannot_corrupt_the_result_stream(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(make_notebook, tmp_path, ["import sys", GARBAGE])
    assert result.verdict is Verdict.GRADED, result
    assert (result.artifacts_dir / "opened.json").is_file()


def test_links_in_the_artifacts_are_not_followed(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    cells = [
        "save('real.json', 8)\n"
        "os.symlink('/etc/passwd', ARTIFACT_DIR + '/passwd')\n"
        "os.symlink('/etc', ARTIFACT_DIR + '/etc')\n"
        "os.mkfifo(ARTIFACT_DIR + '/fifo')\n"
    ]
    result = _run(make_notebook, tmp_path, cells)
    assert result.verdict is Verdict.GRADED, result
    assert sorted(p.name for p in result.artifacts_dir.iterdir()) == ["real.json"]
    assert "passwd: not a regular file" in result.log_tail


def test_killing_the_runner_fails_closed(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(make_notebook, tmp_path, ["save('a.json', 1)", "os.kill(os.getppid(), 9)"])
    assert result.verdict is Verdict.KERNEL_DIED
    assert "without results" in result.detail
    assert list(result.artifacts_dir.iterdir()) == []


def test_unsafe_runs_the_same_runner_without_bwrap(
    make_notebook: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_bwrap() -> str:
        raise AssertionError("unsafe mode must not use bwrap")

    monkeypatch.setattr(sandbox, "find_bwrap", no_bwrap)
    result = _run(
        make_notebook, tmp_path,
        ["save('where.json', {'data': DATA_DIR, 'files': os.listdir(DATA_DIR)})", "1/0"],
        unsafe=True,
    )  # fmt: skip
    assert not result.sandboxed and "no sandbox (unsafe)" in result.limits
    assert result.verdict is Verdict.CELL_ERROR and result.failed_cell == 4
    where = _artifact(result, "where.json")
    assert where["files"] == ["train.txt"] and where["data"] != "/data"
    assert not (tmp_path / "work" / "unsafe").exists()


def test_refuses_without_a_sandbox(
    make_notebook: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    with pytest.raises(SandboxUnavailable, match="unsafe"):
        _run(make_notebook, tmp_path, ["pass"])


def test_missing_inputs_are_input_errors(
    make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="data file does not exist"):
        _run(make_notebook, tmp_path, ["pass"], data_files=[tmp_path / "nope.h5"])
    with pytest.raises(InputError, match="notebook to execute does not exist"):
        execute_notebook(
            tmp_path / "missing.ipynb", parameters={}, data_files=[], workdir=tmp_path / "w",
            cell_timeout_s=1, notebook_timeout_s=1, memory_mb=64, artifact_cap_mb=1,
        )  # fmt: skip


def test_the_kernel_runs_the_venvs_python() -> None:
    assert execute.kernel_env("/home/grader")["PATH"].startswith(str(Path(sys.executable).parent))


def _tar(tmp_path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes]]) -> Path:
    path = tmp_path / "stage1.tar"
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_extraction_refuses_links_escapes_and_oversize(tmp_path: Path) -> None:
    status = json.dumps({"verdict": "graded"}).encode()
    tar = _tar(
        tmp_path,
        [
            (_member("artifacts/ok.json"), b"{}"),
            (_member("artifacts/passwd", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (_member("artifacts/hard", tarfile.LNKTYPE, "/etc/passwd"), b""),
            (_member("artifacts/../../escape.txt"), b"x"),
            (_member("/tmp/absolute.txt"), b"x"),
            (_member("elsewhere.txt"), b"x"),
            (_member("artifacts/huge.bin"), b"x" * 2000),
            (_member("status.json"), status),
        ],
    )
    work = tmp_path / "work"
    work.mkdir()
    found, problem = extract_results(tar, work, max_bytes=1000)
    assert found == {"verdict": "graded"}
    assert sorted(p.name for p in (work / "artifacts").iterdir()) == ["ok.json"]
    assert sorted(p.name for p in work.iterdir()) == ["artifacts", "status.json"]
    assert not (tmp_path / "escape.txt").exists()
    for name in ("passwd", "hard", "escape.txt", "absolute.txt", "elsewhere.txt", "huge.bin"):
        assert name in problem


def test_extraction_of_a_truncated_stream(tmp_path: Path) -> None:
    tar = _tar(tmp_path, [(_member("artifacts/a.bin"), b"x" * 5000)])
    tar.write_bytes(tar.read_bytes()[:1024])
    work = tmp_path / "work"
    work.mkdir()
    found, problem = extract_results(tar, work, max_bytes=10**6)
    assert found == {} and "incomplete result stream" in problem


def _outcome(**kwargs: Any) -> ProcessOutcome:
    values: dict[str, Any] = {
        "returncode": 0, "timed_out": False, "oom_killed": False, "seconds": 1.0, "limits": ()
    }  # fmt: skip
    values.update(kwargs)
    return ProcessOutcome(**values)


@pytest.mark.parametrize(
    ("outcome", "status", "log", "verdict"),
    [
        (_outcome(oom_killed=True), {"verdict": "kernel_died", "failed_cell": 2}, b"", "oom"),
        (_outcome(timed_out=True, returncode=-9), {}, b"stage1: runner started", "timeout"),
        (_outcome(), {"verdict": "cell_error", "detail": "d", "failed_cell": 2}, b"", "cell"),
        (_outcome(returncode=1), {}, b"bwrap: Can't mount proc", "grader"),
        (_outcome(returncode=-9), {}, b"stage1: runner started\n", "died"),
        (_outcome(), {"verdict": "forged"}, b"", "grader"),
    ],
)
def test_outcome_to_verdict(
    tmp_path: Path, outcome: ProcessOutcome, status: dict[str, Any], log: bytes, verdict: str
) -> None:
    """Limits seen from outside win over the runner's status; no status fails closed."""
    expected = {
        "oom": Verdict.OUT_OF_MEMORY,
        "timeout": Verdict.TIMEOUT,
        "cell": Verdict.CELL_ERROR,
        "grader": Verdict.GRADER_ERROR,
        "died": Verdict.KERNEL_DIED,
    }[verdict]
    log_path = tmp_path / "stage1.log"
    log_path.write_bytes(log)
    found, detail, _ = execute._verdict(
        outcome, status, "", log_path, memory_mb=512, notebook_timeout_s=60
    )
    assert found is expected
    assert detail


def test_a_font_list_that_cannot_be_built_leaves_kernels_to_build_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "read-only-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DEEPGRADE_CACHE", str(blocked / "cache"))  # mkdir fails: NotADirectory
    fontcache.font_list.cache_clear()
    try:
        assert fontcache.font_list() is None
    finally:
        fontcache.font_list.cache_clear()
