"""Threat: a hostile result tar from stage 1, unpacked on a Python without tarfile.data_filter.

The tar comes back from inside the sandbox, so anything in it is the student's to shape. Debian
12's own python3 (3.11.2) has no `tarfile.data_filter` and no `filter` argument to extractall;
extraction must give the same guarantees there as on a newer Python: regular files and folders
only, under the allowed names, no absolute paths or "..", no links or devices, each name once,
within the size cap, with sane modes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import deepgrade
from deepgrade.execute import extract_results

SRC = Path(deepgrade.__file__).resolve().parents[1]  # the deepgrade under test
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> Any:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def _tar(path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _hostile(path: Path) -> Path:
    status = json.dumps({"verdict": "graded"}).encode()
    return _tar(
        path,
        [
            (_info("artifacts", tarfile.DIRTYPE, mode=0o777), b""),
            (_info("artifacts/ok.json"), b"{}"),
            (_info("artifacts/run.sh", mode=0o6777), b"#!/bin/sh\n"),  # setuid, o+w
            (_info("artifacts/sub", tarfile.DIRTYPE), b""),
            (_info("artifacts/sub/deep.txt", mode=0o600), b"deep"),
            (_info("/tmp/absolute.txt"), b"x"),
            (_info("artifacts/../../escape.txt"), b"x"),
            (_info("artifacts/./dot.txt"), b"x"),
            (_info("artifacts/passwd", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (_info("artifacts/hard", tarfile.LNKTYPE, "artifacts/ok.json"), b""),
            (_info("artifacts/null", tarfile.CHRTYPE), b""),
            (_info("artifacts/fifo", tarfile.FIFOTYPE), b""),
            (_info("artifacts/ok.json"), b"second copy"),  # a duplicate must not replace
            (_info("artifacts/sub", tarfile.REGTYPE), b"file over a folder"),
            (_info("elsewhere.txt"), b"x"),
            (_info("executed.ipynb/inner", tarfile.REGTYPE), b"x"),
            (_info("artifacts/huge.bin"), b"x" * 4000),
            (_info("status.json"), status),
        ],
    )


REFUSED = (
    "absolute.txt",
    "escape.txt",
    "dot.txt",
    "passwd",
    "'artifacts/hard'",
    "null",
    "fifo",
    "'artifacts/ok.json': a second member",
    "'artifacts/sub': a second member",
    "elsewhere.txt",
    "executed.ipynb/inner",
    "huge.bin",
)


def _old_extractall(
    self: tarfile.TarFile, path: str = ".", members: Any = None, *, numeric_owner: bool = False
) -> None:
    raise AssertionError("the fallback must not call extractall (no filter on Python 3.11.2)")


@pytest.fixture(params=["data_filter", "no_data_filter"])
def python_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both extraction paths: this Python's data_filter, and one shaped like Debian's 3.11.2."""
    if request.param == "data_filter":
        if not hasattr(tarfile, "data_filter"):
            pytest.skip(reason="this Python has no tarfile.data_filter (the fallback is tested)")
    else:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        monkeypatch.setattr(tarfile.TarFile, "extractall", _old_extractall)
    return str(request.param)


def _tree(root: Path) -> dict[str, int]:
    """Every path under root with its mode bits; links show up as such (never followed)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if path.is_dir() else "file"
        found[f"{path.relative_to(root)} {kind}"] = stat.S_IMODE(st.st_mode)
    return found


def _check_hostile_result(work: Path, found: dict[str, Any], problem: str) -> None:
    assert found == {"verdict": "graded"}
    tree = _tree(work)
    assert sorted(tree) == [
        "artifacts dir",
        "artifacts/ok.json file",
        "artifacts/run.sh file",
        "artifacts/sub dir",
        "artifacts/sub/deep.txt file",
        "status.json file",
    ]
    assert (work / "artifacts/ok.json").read_bytes() == b"{}"
    assert (work / "artifacts/sub/deep.txt").read_bytes() == b"deep"
    for name, mode in tree.items():
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH), name
    assert tree["artifacts/run.sh file"] & 0o700 == 0o700  # the owner's bits are kept
    assert not (work.parent / "escape.txt").exists()
    for name in REFUSED:
        assert name in problem, (name, problem)


def test_hostile_members_are_refused(python_kind: str, tmp_path: Path) -> None:
    tar = _hostile(tmp_path / "stage1.tar")
    work = tmp_path / "work"
    work.mkdir()
    found, problem = extract_results(tar, work, max_bytes=1000)
    _check_hostile_result(work, found, problem)


def test_a_file_where_the_artifacts_folder_goes_is_refused(
    python_kind: str, tmp_path: Path
) -> None:
    tar = _tar(tmp_path / "t.tar", [(_info("artifacts"), b"not a folder")])
    work = tmp_path / "work"
    work.mkdir()
    found, problem = extract_results(tar, work, max_bytes=1000)
    assert found == {} and "'artifacts'" in problem
    assert not (work / "artifacts").exists()


def test_a_truncated_stream_keeps_what_came_before(python_kind: str, tmp_path: Path) -> None:
    tar = _tar(
        tmp_path / "t.tar",
        [(_info("artifacts/a.json"), b"{}"), (_info("artifacts/b.bin"), b"x" * 50_000)],
    )
    tar.write_bytes(tar.read_bytes()[:8192])
    work = tmp_path / "work"
    work.mkdir()
    found, problem = extract_results(tar, work, max_bytes=10**6)
    assert found == {} and "incomplete result stream" in problem
    assert (work / "artifacts/a.json").read_bytes() == b"{}"


def test_the_fallback_never_writes_through_a_link(tmp_path: Path) -> None:
    """A link already in the destination (it cannot come from the tar) is not followed."""
    from deepgrade import tarsafe

    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "artifacts").symlink_to(outside)
    tar = _tar(tmp_path / "t.tar", [(_info("artifacts/x.json"), b"{}")])
    with tarfile.open(tar) as opened:
        member = opened.getmember("artifacts/x.json")
        with pytest.raises(tarsafe.Refused, match="not a folder"):
            tarsafe._write_member(opened, member, work, "artifacts/x.json")
    assert list(outside.iterdir()) == []


@pytest.mark.skipif(
    not SYSTEM_PYTHON.exists() or shutil.which(str(SYSTEM_PYTHON)) is None,
    reason="no system /usr/bin/python3 on this host",
)
def test_with_the_system_python(tmp_path: Path) -> None:
    """The same hostile tar through the system's own python3 (Debian 12: 3.11.2, no filter)."""
    script = (
        "import json, sys, tarfile\n"
        "from pathlib import Path\n"
        "from deepgrade.execute import extract_results\n"
        "found, problem = extract_results(Path(sys.argv[1]), Path(sys.argv[2]), 1000)\n"
        "print(json.dumps([found, problem, hasattr(tarfile, 'data_filter')]))\n"
    )
    tar = _hostile(tmp_path / "stage1.tar")
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", script, str(tar), str(work)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found, problem, has_filter = json.loads(done.stdout)
    _check_hostile_result(work, found, problem)
    assert isinstance(has_filter, bool)  # False on Debian 12's 3.11.2: the fallback ran
