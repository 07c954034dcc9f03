"""Unit tests of deepgrade.notebooks on tiny notebooks built in the test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import NotebookNode

from deepgrade import notebooks as nbt
from deepgrade.errors import InputError


def _code(source: str, cell_id: str, **grader: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if grader:
        metadata["nbgrader"] = {"schema_version": 3, **grader}
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": metadata,
        "outputs": [],
        "source": source,
    }


def _notebook(*cells: dict[str, Any]) -> NotebookNode:
    raw = {
        "cells": list(cells),
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    nb: NotebookNode = nbformat.from_dict(raw)
    return nb


def _release() -> NotebookNode:
    return _notebook(
        _code("x = 1", "a"),
        _code("save(x)\n", "b", grade_id="save_x", locked=True, solution=False, grade=False),
        _code("y = 2", "c", grade_id="answer", solution=True, grade=False, locked=False),
        _code("save(y)", "d", grade_id="save_y", locked=True, solution=False, grade=False),
    )


# read_notebook


def test_read_notebook_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(nbformat.writes(_release()), encoding="utf-8")
    nb = nbt.read_notebook(path)
    assert [cell["id"] for cell in nb.cells] == ["a", "b", "c", "d"]
    assert nb.cells[1]["source"] == "save(x)\n"  # stored as a list of lines, read as one string


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('{"nbformat": 3, "cells": []}', "nbformat 4"),
        ("[1, 2]", "nbformat 4"),
        ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"x": 1}]}', "valid"),
    ],
)
def test_read_notebook_rejects_bad_files(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=problem) as info:
        nbt.read_notebook(path)
    assert info.value.path == path


def test_read_notebook_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such notebook"):
        nbt.read_notebook(tmp_path / "absent.ipynb")


# metadata accessors


def test_nbgrader_accessors() -> None:
    nb = _release()
    assert nbt.nbgrader(nb.cells[0]) == {}
    assert nbt.nbgrader(nb.cells[1])["grade_id"] == "save_x"
    assert list(nbt.locked_cells(nb)) == ["save_x", "save_y"]


def test_grade_cells_are_locked_and_solutions_never() -> None:
    grade = _code("assert x", "g", grade_id="g", grade=True, solution=False, points=1)
    both = _code("x", "s", grade_id="s", grade=True, solution=True, locked=True, points=1)
    assert nbt.is_locked(grade)
    assert not nbt.is_locked(both)


# checksum


def test_checksum_ignores_trailing_whitespace_only() -> None:
    cell = _release().cells[1]
    same = copy.deepcopy(cell)
    same["source"] = "save(x)   \n\n\n"
    changed = copy.deepcopy(cell)
    changed["source"] = "save(x + 1)"
    indented = copy.deepcopy(cell)
    indented["source"] = "  save(x)"
    assert nbt.checksum(cell) == nbt.checksum(same)
    assert nbt.checksum(cell) != nbt.checksum(changed)
    assert nbt.checksum(cell) != nbt.checksum(indented)
    assert nbt.checksum(cell).startswith("sha256:")


def test_checksum_covers_flags_and_points() -> None:
    cell = _code("assert x", "g", grade_id="g", grade=True, solution=False, points=1)
    unlocked = copy.deepcopy(cell)
    unlocked["metadata"]["nbgrader"]["grade"] = False
    more_points = copy.deepcopy(cell)
    more_points["metadata"]["nbgrader"]["points"] = 5
    assert len({nbt.checksum(c) for c in (cell, unlocked, more_points)}) == 3


# find_tampering


def test_untouched_submission_is_clean() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells[2]["source"] = "y = 3  # my answer"
    submission.cells.insert(1, nbformat.v4.new_code_cell("print('scratch')"))
    submission.cells[2]["source"] += "   \n"  # trailing whitespace is not tampering
    assert nbt.find_tampering(submission, release) == []


def test_changed_locked_cell_names_grade_id_and_position() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells[3]["source"] = "save(99)"
    [message] = nbt.find_tampering(submission, release)
    assert "'save_y'" in message
    assert "cell 4" in message
    assert "changed" in message


def test_unlocking_a_cell_is_tampering() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells[1]["metadata"]["nbgrader"]["locked"] = False
    [message] = nbt.find_tampering(submission, release)
    assert "'save_x'" in message


def test_deleted_locked_cell() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    del submission.cells[1]
    [message] = nbt.find_tampering(submission, release)
    assert "'save_x'" in message
    assert "deleted" in message
    assert "cell 2" in message


def test_removed_grade_id() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    del submission.cells[3]["metadata"]["nbgrader"]
    [message] = nbt.find_tampering(submission, release)
    assert "'save_y'" in message
    assert "grade_id" in message
    assert "cell 4" in message


def test_duplicated_locked_cell() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells.append(copy.deepcopy(submission.cells[1]))
    [message] = nbt.find_tampering(submission, release)
    assert "'save_x'" in message
    assert "2 times" in message


def test_moved_locked_cells() -> None:
    release = _release()
    submission = copy.deepcopy(release)
    submission.cells[1], submission.cells[3] = submission.cells[3], submission.cells[1]
    messages = nbt.find_tampering(submission, release)
    assert len(messages) == 1
    assert "moved" in messages[0]


# split_cells and append_cells


def test_split_cells_drops_header_and_blank_cells() -> None:
    text = "# header comment\nimport os\n\n# %%\nx = 1\n\n# %% second\n\ny = 2\nz = 3\n# %%\n\n"
    assert nbt.split_cells(text) == ["x = 1", "y = 2\nz = 3"]


def test_split_cells_without_separator_is_empty() -> None:
    assert nbt.split_cells("x = 1\n") == []


def test_append_cells_returns_a_tagged_copy() -> None:
    release = _release()
    combined = nbt.append_cells(release, ["HIDDEN = 1", "use(HIDDEN)"], "deepgrade-gradetime")
    assert len(release.cells) == 4
    assert [cell["source"] for cell in combined.cells[4:]] == ["HIDDEN = 1", "use(HIDDEN)"]
    for cell in combined.cells[4:]:
        assert cell["metadata"]["tags"] == ["deepgrade-gradetime"]
        assert cell["cell_type"] == "code"
    ids = [cell["id"] for cell in combined.cells]
    assert len(set(ids)) == len(ids)
    nbformat.validate(combined)


# solution regions


def test_clear_solutions_code_keeps_indentation() -> None:
    source = (
        "def f(x):\n"
        '    """Doc."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return x + 1\n"
        "    ### END SOLUTION\n"
        "\n"
        "### BEGIN SOLUTION\n"
        "y = f(1)\n"
        "### END SOLUTION"
    )
    assert nbt.clear_solutions(source, "code") == (
        "def f(x):\n"
        '    """Doc."""\n'
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()\n"
        "\n"
        "# YOUR CODE HERE\n"
        "raise NotImplementedError()"
    )


def test_clear_solutions_markdown() -> None:
    source = "Which axis?\n\n### BEGIN SOLUTION\nAxis 1, the classes.\n### END SOLUTION\n"
    assert nbt.clear_solutions(source, "markdown") == "Which axis?\n\nYOUR ANSWER HERE\n"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "without ### END"),
        ("x = 1\n### END SOLUTION\n", "without ### BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the region"),
    ],
)
def test_unbalanced_markers(source: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        nbt.clear_solutions(source, "code")
    with pytest.raises(ValueError, match=problem):
        nbt.strip_solution_markers(source)


def test_strip_solution_markers_keeps_the_code() -> None:
    source = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    assert nbt.strip_solution_markers(source) == "def f():\n    return 1\n"
