"""Finding submissions: both LMS layouts, and everything else reported, never dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepgrade.errors import InputError
from deepgrade.submissions import discover, student_id


def test_both_layouts_and_problems(tmp_path: Path) -> None:
    (tmp_path / "ana.ipynb").write_text("{}")
    (tmp_path / "bo").mkdir()
    (tmp_path / "bo" / "whatever.ipynb").write_text("{}")
    (tmp_path / "cy").mkdir()
    (tmp_path / "cy" / "signs_cnn.ipynb").write_text("{}")
    (tmp_path / "cy" / "scratch.ipynb").write_text("{}")
    (tmp_path / "dee").mkdir()
    (tmp_path / "dee" / "a.ipynb").write_text("{}")
    (tmp_path / "dee" / "b.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".hidden.ipynb").write_text("{}")
    found = discover(tmp_path, "signs_cnn.ipynb")
    assert [(s.student, s.path.name) for s in found.submissions] == [
        ("ana", "ana.ipynb"),
        ("bo", "whatever.ipynb"),
        ("cy", "signs_cnn.ipynb"),
    ]
    assert len(found.problems) == 2
    assert any("dee" in p and "2 notebooks" in p for p in found.problems)
    assert any("notes.txt" in p for p in found.problems)


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "ana.ipynb").write_text("{}")
    first = discover(tmp_path, "x.ipynb").submissions[0].content_hash
    (tmp_path / "ana.ipynb").write_text('{"a": 1}')
    assert discover(tmp_path, "x.ipynb").submissions[0].content_hash != first


def test_student_ids_are_safe() -> None:
    assert student_id("Ana Souza (late)") == "Ana_Souza_late"
    assert student_id("../../etc") == "etc"
    assert student_id("...") == "unnamed"


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder of submissions"):
        discover(tmp_path / "missing", "x.ipynb")
