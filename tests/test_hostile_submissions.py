"""Threat: a submissions folder shaped to fool or crash the grader.

A symbolic link to the reference solution was graded as a submission (23/23); a notebook
without `cells` crashed the grader (AttributeError -> grader_error, exit 1); file names are
whatever students and LMS exports make them. Discovery takes only what is really there (links
are reported, never followed), any name prints, and any file a student hands in becomes a
notebook or `invalid_notebook` with a message before anything runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import deepgrade
from deepgrade import notebooks
from deepgrade.errors import InputError
from deepgrade.exercise import load_exercise
from deepgrade.gpubatch import GpuRequest
from deepgrade.grade import GradeSettings, prepare_notebook, run_stage1
from deepgrade.profiles import resolve_profile
from deepgrade.results import Verdict
from deepgrade.submissions import Submission, discover

SRC = Path(deepgrade.__file__).resolve().parents[1]  # the deepgrade under test

SPEC = """\
name = "tiny"
title = "A tiny exercise for hostile folders"
notebook = "tiny.ipynb"
datasets = []
artifacts = ["answers.json"]
[profiles.smoke]
data = "synth"
cell_timeout_s = 120
notebook_timeout_s = 300
memory_mb = 2048
artifact_cap_mb = 1
parameters = {}
thresholds = {}
"""
CHECKS = '''\
import pytest


@pytest.mark.points(1)
def test_x(answers):
    """x is 1."""
    assert answers["x"] == 1, "x should be 1"
'''
SAVE = (
    "import json, os\n"
    "os.makedirs(ARTIFACT_DIR, exist_ok=True)\n"
    "with open(os.path.join(ARTIFACT_DIR, 'answers.json'), 'w') as f:\n"
    "    json.dump({'x': x}, f)"
)


def _notebook(x: int) -> nbformat.NotebookNode:
    """The tiny exercise: locked parameters, text, save and grade cells around one answer."""

    def cell(kind: str, source: str, gid: str, **flags: Any) -> nbformat.NotebookNode:
        new = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        made = new(source)
        made.id = gid
        made.metadata["nbgrader"] = {"grade_id": gid, "locked": True, **flags}
        return made

    nb = nbformat.v4.new_notebook()
    params = cell("code", 'ARTIFACT_DIR = "artifacts"\nDATA_DIR = "."', "params")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        cell("markdown", "# Tiny\nSet `x`.", "intro"),
        cell("code", f"x = {x}", "answer", locked=False, solution=True),
        cell("code", SAVE, "save"),
        cell("code", "assert isinstance(x, int)", "check", grade=True, points=1),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return nb


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A course repository with one tiny exercise (no data sets, plain-Python checks)."""
    root = tmp_path / "course"
    exercise = root / "autograder" / "tiny"
    exercise.mkdir(parents=True)
    (exercise / "spec.toml").write_text(SPEC)
    (exercise / "test_hidden.py").write_text(CHECKS)
    (root / "source" / "tiny").mkdir(parents=True)
    for folder, x in (("release", 0), ("solutions", 1)):
        (root / folder / "tiny").mkdir(parents=True)
        nbformat.write(_notebook(x), root / folder / "tiny" / "tiny.ipynb")
    return root


def _settings(project: Path, tmp_path: Path) -> GradeSettings:
    spec = load_exercise(project / "autograder", "tiny")
    return GradeSettings(
        spec=spec,
        profile=resolve_profile(spec, "smoke"),
        release_notebook=project / "release" / "tiny" / "tiny.ipynb",
        workdir=tmp_path / "runs",
    )


def _hostile_folder(project: Path, subs: Path) -> None:
    """Links to the solution at both levels, odd names, and notebooks with no cells."""
    solution = project / "solutions" / "tiny" / "tiny.ipynb"
    subs.mkdir()
    (subs / "link-to-solution.ipynb").symlink_to(solution)
    (subs / "linked-folder").symlink_to(solution.parent, target_is_directory=True)
    (subs / "bob").mkdir()
    (subs / "bob" / "tiny.ipynb").symlink_to(solution)  # bob's only notebook is a link
    (subs / "notes[").mkdir()
    (subs / "notes[" / "].ipynb").symlink_to(solution)  # prints as notes[/].ipynb: markup
    (subs / "carol").mkdir()
    (subs / "carol" / "tiny.ipynb").symlink_to(solution)
    nbformat.write(_notebook(0), subs / "carol" / "mine.ipynb")  # her own one is graded
    (subs / "dave").mkdir()  # an empty folder
    no_cells = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}}
    (subs / "no cells.ipynb").write_text(json.dumps(no_cells))
    (subs / "élève ünïcode.ipynb").write_text("[]")
    (subs / "ctrl\x1b[2J\rname.txt").write_text("x")
    os.close(os.open(os.fsencode(subs) + b"/bytes\xff.ipynb", os.O_CREAT | os.O_WRONLY, 0o644))
    (subs / "[bold red]styled.txt").write_text("x")
    os.mkfifo(subs / "pipe.ipynb")


def test_discovery_never_follows_links_and_reports_each(project: Path, tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    _hostile_folder(project, subs)
    found = discover(subs, "tiny.ipynb")
    assert [(s.student, s.path.name) for s in found.submissions] == [
        ("bytes", os.fsdecode(b"bytes\xff.ipynb")),
        ("carol", "mine.ipynb"),
        ("no_cells", "no cells.ipynb"),
        ("élève_ünïcode", "élève ünïcode.ipynb"),
    ]
    for submission in found.submissions:
        assert not submission.path.is_symlink()
        assert subs in submission.path.parents
    problems = "\n".join(found.problems)
    for name in ("link-to-solution.ipynb", "linked-folder", "bob/tiny.ipynb", "notes[/].ipynb"):
        assert f"{name}: a symbolic link, skipped" in problems, name
    assert "carol/tiny.ipynb: a symbolic link" in problems
    assert "bob: no notebook" in problems and "dave: no notebook" in problems
    assert "pipe.ipynb: not a regular file or folder" in problems
    assert "ctrl\\x1b[2J\\rname.txt: not a notebook" in problems
    assert all(line.isprintable() for line in found.problems)


def test_a_notebook_without_cells_is_invalid_not_a_crash(project: Path, tmp_path: Path) -> None:
    path = tmp_path / "nocells.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}))
    result = run_stage1(Submission("s", path), _settings(project, tmp_path), tmp_path / "w")
    assert result.verdict is Verdict.INVALID_NOTEBOOK
    assert "cells" in result.detail and "save the notebook again" in result.detail


# --- fuzzing everything grade.py does with a notebook before it runs -------------------------

DELETE = object()
DEEP_LIST: Any = []
for _ in range(300):
    DEEP_LIST = [DEEP_LIST]
DEEP_DICT: Any = {}
for _ in range(300):
    DEEP_DICT = {"a": DEEP_DICT}
REPLACEMENTS: tuple[Any, ...] = (
    DELETE,
    None,
    True,
    0,
    -1,
    2**70,
    1.5e308,
    float("nan"),
    "",
    "x" * 200_000,
    "\ud800",
    [],
    {},
    [None, 1],
    {"x": [None]},
    DEEP_LIST,
    DEEP_DICT,
)
RAW_FILES: tuple[bytes, ...] = (
    b"",
    b"\xff\xfe\x00{",
    b"{",
    b"[]",
    b"null",
    b'"notebook"',
    b"1" * 5000,
    b'{"nbformat": 4, "nbformat_minor": ' + b"9" * 5000 + b', "cells": []}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
    b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {}}',
    b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [1, "x"]}',
    b'{"nbformat": 3, "nbformat_minor": 0, "worksheets": []}',
    b'{"nbformat": "4", "nbformat_minor": 5, "metadata": {}, "cells": []}',
    b'{"nbformat": 4.0, "nbformat_minor": 5.5, "metadata": {}, "cells": []}',
    b'{"nbformat": 4, "nbformat_minor": -1, "metadata": {}, "cells": []}',
    b'{"nbformat": 4, "nbformat_minor": 99, "metadata": {}, "cells": []}',
    b'{"nbformat": 4, "nbformat_minor": null, "metadata": {}, "cells": []}',
    b'{"nbformat": 4, "nbformat_minor": 5, "metadata": NaN, "cells": Infinity}',
    b'{"nbformat": 4, "nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": []}',
    '{"nbformat": 4, "nbformat_minor": 4, "metadata": {"é": "ü"}, "cells": []}'.encode("cp1252"),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in the JSON tree (the first lines of a multi-line source stand for all)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:6]):
            yield from _paths(value, (*prefix, index))


def _mutated(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> bytes:
    data = json.loads(json.dumps(base))
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(data).encode()


def _files(base: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    for number, raw in enumerate(RAW_FILES):
        yield f"raw file {number}", raw
    for path in _paths(base):
        if not path:
            continue
        for number, value in enumerate(REPLACEMENTS):
            yield f"{'/'.join(map(str, path))} <- replacement {number}", _mutated(base, path, value)
        if isinstance(_get(base, path), dict):
            yield f"{'/'.join(map(str, path))} <- extra key", _mutated(base, (*path, "zz"), 1)


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def test_no_shape_of_file_is_anything_but_a_notebook_or_an_input_error(
    project: Path, tmp_path: Path
) -> None:
    """read_notebook, find_tampering, append_cells and the grader's copy, on every mutation."""
    settings = _settings(project, tmp_path)
    base = json.loads((project / "solutions" / "tiny" / "tiny.ipynb").read_text())
    path, out = tmp_path / "student.ipynb", tmp_path / "prepared" / "graded-input.ipynb"
    outcomes = {"refused": 0, "tampered": 0, "prepared": 0}
    for name, data in _files(base):
        path.write_bytes(data)
        out.unlink(missing_ok=True)
        try:
            with warnings.catch_warnings():
                # nbformat warns about missing ids; outside tests a warning is not an error
                warnings.simplefilter("ignore")
                problems = prepare_notebook(path, settings, out)
        except InputError as exc:
            assert exc.path == path and exc.problem, name
            outcomes["refused"] += 1
            continue
        except Exception as exc:  # the bug this test exists for
            pytest.fail(f"{name}: {type(exc).__name__}: {exc}"[:500])
        assert all(isinstance(p, str) and p for p in problems), name
        outcomes["tampered" if problems else "prepared"] += 1
        if not problems:
            assert notebooks.read_notebook(out).cells[-1].source, name
    assert min(outcomes.values()) > 0, outcomes  # every outcome was reached


def test_an_oversize_notebook_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebooks, "MAX_NOTEBOOK_BYTES", 1000)
    path = tmp_path / "big.ipynb"
    nb = _notebook(0)
    nb.cells[2].source = "x = 0  # " + "y" * 2000
    nbformat.write(nb, path)
    with pytest.raises(InputError, match="over 0 MiB"):
        notebooks.read_notebook(path)


# --- end to end through the real command ----------------------------------------------------


def test_grade_a_hostile_folder_end_to_end(bwrap: str, project: Path, tmp_path: Path) -> None:
    """`deepgrade grade` in the sandbox: links skipped with a reason, no-cells notebook
    invalid_notebook, odd names printed, the real submission graded, exit status 0."""
    subs = tmp_path / "subs"
    _hostile_folder(project, subs)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(SRC),
        "DEEPGRADE_CACHE": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
        "COLUMNS": "400",  # rich wraps at the terminal width, mid-path
    }
    command = [sys.executable, "-m", "deepgrade", "--root", str(project), "grade", str(subs)]
    command += ["--exercise", "tiny", "--json", "--gradebook", str(tmp_path / "book.db")]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,  # a hang guard only: the run takes seconds
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["student"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert sorted(results) == ["bytes", "carol", "no_cells", "élève_ünïcode"]
    assert results["carol"]["verdict"] == "graded", results["carol"]
    assert results["carol"]["points"] == 0 and results["carol"]["max_points"] == 1
    for student in ("bytes", "no_cells", "élève_ünïcode"):
        assert results[student]["verdict"] == "invalid_notebook", results[student]
        assert results[student]["detail"], student
    assert "cells" in results["no_cells"]["detail"]
    assert not any(r["points"] for r in results.values())  # the solution was never graded
    log = done.stderr
    for name in ("link-to-solution.ipynb", "linked-folder", "notes[/].ipynb", "bob/tiny.ipynb"):
        assert f"{name}: a symbolic link, skipped" in log, name
    assert "[bold red]styled.txt" in log
    assert "dave: no notebook" in log
    assert "ctrl\\x1b[2J\\rname.txt: not a notebook" in log  # escaped, never sent raw
    assert "\x1b" not in done.stderr and "\r" not in done.stderr


def test_an_empty_folder_says_so(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from deepgrade import batch
    from deepgrade.project import Project

    (tmp_path / "empty").mkdir()
    console = Console(record=True, width=200)
    settings = _settings(project, tmp_path)
    monkeypatch.setattr(batch, "Console", lambda **_: console)
    monkeypatch.setattr(batch, "batch_settings", lambda *args, **kwargs: settings)
    status = batch.grade_folder(
        Project(project),
        tmp_path / "empty",
        exercise="tiny",
        profile="smoke",
        workers=1,
        gpus=GpuRequest(),
        gradebook_path=tmp_path / "book.db",
        unsafe=True,
        force=False,
        as_json=False,
    )
    assert status == 0
    assert "no submissions found in" in console.export_text()
