"""The errors a new author meets name the file, the cell or key, and the fix."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepgrade.errors import InputError
from deepgrade.exercise import load_exercise, load_spec
from deepgrade.project import Project
from deepgrade.release import render_exercise
from deepgrade.samples import Edit, Sample, apply_edits
from deepgrade.scaffold import new_exercise


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "autograder").mkdir()
    (tmp_path / "source").mkdir()
    made = Project(tmp_path)
    new_exercise(made, "shirts", "fashion_mnist", release=False)
    return made


def _edit_master(project: Project, change: Callable[[list[dict[str, Any]]], None]) -> Path:
    path = project.source / "shirts" / "shirts.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    change(nb["cells"])
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _cell(cells: list[dict[str, Any]], grade_id: str) -> dict[str, Any]:
    return next(c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _position(project: Project, grade_id: str) -> int:
    nb = json.loads((project.source / "shirts" / "shirts.ipynb").read_text(encoding="utf-8"))
    cells = nb["cells"]
    return cells.index(_cell(cells, grade_id)) + 1


def test_unknown_exercise_lists_the_known_ones(project: Project) -> None:
    with pytest.raises(InputError, match=r"no exercise 'shirt' here \(known: shirts\)") as err:
        load_exercise(project.autograder, "shirt")
    assert err.value.path == project.autograder / "shirt"


@pytest.mark.parametrize(
    ("table", "key", "says"),
    [
        (None, "title", "a one-line title for reports"),
        ("smoke", "memory_mb", "`memory_mb = 4096`"),
        ("full", "data", 'e.g. `data = "synth"`'),
    ],
)
def test_a_missing_spec_key_says_what_it_means(
    project: Project, table: str | None, key: str, says: str
) -> None:
    path = project.autograder / "shirts" / "spec.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    section = "" if table is None else f"[profiles.{table}]"
    current = ""
    kept = []
    for line in lines:
        if line.startswith("["):
            current = line.strip()
        if current == section and re.match(rf"{key}\s*=", line):
            continue
        kept.append(line)
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    assert key in (raw if table is None else raw["profiles"][table])
    where = "top level" if table is None else f"[profiles.{table}]"
    with pytest.raises(InputError, match=re.escape(f"{where}: missing key {key!r} (")) as err:
        load_spec(path.parent)
    assert err.value.path == path
    assert says in err.value.problem and "docs/authoring.md" in err.value.problem


def test_missing_parameters_cell(project: Project) -> None:
    def untag(cells: list[dict[str, Any]]) -> None:
        for cell in cells:
            cell["metadata"].pop("tags", None)

    path = _edit_master(project, untag)
    with pytest.raises(InputError, match="no code cell tagged 'parameters'") as err:
        render_exercise(project, "shirts")
    assert err.value.path == path
    assert "give it the tag parameters" in err.value.problem


def test_a_profile_parameter_missing_from_the_parameters_cell(project: Project) -> None:
    def drop_n_train(cells: list[dict[str, Any]]) -> None:
        params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        text = "".join(params["source"])
        params["source"] = "\n".join(
            line for line in text.split("\n") if not line.startswith("N_TRAIN")
        )

    path = _edit_master(project, drop_n_train)
    with pytest.raises(InputError, match="does not assign N_TRAIN") as err:
        render_exercise(project, "shirts")
    assert err.value.path == path
    assert "cell 3 (the parameters cell)" in err.value.problem
    assert "[profiles.smoke] parameters" in err.value.problem
    assert "`N_TRAIN = 5000`" in err.value.problem


def test_solution_cell_without_region(project: Project) -> None:
    def unmark(cells: list[dict[str, Any]]) -> None:
        cell = _cell(cells, "train")
        cell["source"] = "".join(cell["source"]).replace("### BEGIN SOLUTION\n", "")
        cell["source"] = cell["source"].replace("\n### END SOLUTION", "")

    path = _edit_master(project, unmark)
    with pytest.raises(InputError, match="solution cell without a ### BEGIN SOLUTION") as err:
        render_exercise(project, "shirts")
    assert err.value.path == path
    assert f"cell {_position(project, 'train')} (train)" in err.value.problem
    assert "put the reference code between" in err.value.problem


def test_region_in_a_cell_not_marked_as_solution(project: Project) -> None:
    def unflag(cells: list[dict[str, Any]]) -> None:
        _cell(cells, "train")["metadata"]["nbgrader"]["solution"] = False

    path = _edit_master(project, unflag)
    with pytest.raises(InputError, match="not marked as a solution") as err:
        render_exercise(project, "shirts")
    assert err.value.path == path
    assert f"cell {_position(project, 'train')} (train)" in err.value.problem
    assert '"solution": true' in err.value.problem


def test_missing_grade_id(project: Project) -> None:
    position = _position(project, "save_training")

    def drop(cells: list[dict[str, Any]]) -> None:
        del _cell(cells, "save_training")["metadata"]["nbgrader"]["grade_id"]

    path = _edit_master(project, drop)
    with pytest.raises(InputError, match=f"cell {position}: nbgrader metadata without") as err:
        render_exercise(project, "shirts")
    assert err.value.path == path
    assert "give the cell a unique grade_id" in err.value.problem


def test_sample_pointing_at_an_unknown_grade_id(project: Project, tmp_path: Path) -> None:
    from deepgrade.release import release_exercise

    release_exercise(project, "shirts")
    solution = project.solutions / "shirts" / "shirts.ipynb"
    sample = Sample("typo", "a typo", (Edit(cell="trian", insert="pass"),), "graded", ())
    with pytest.raises(InputError, match="sample 'typo': no cell with grade_id 'trian'") as err:
        apply_edits(solution, sample, tmp_path / "out.ipynb")
    assert err.value.path == solution
