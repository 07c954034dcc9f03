"""The release engine: golden files on a tiny fixture exercise, properties of the real SIGNS one.

Refresh the golden files after an intended change with
`DEEPGRADE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_release.py` and review the diff.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from nbformat import NotebookNode

from deepgrade import notebooks as nbt
from deepgrade.errors import InputError
from deepgrade.exercise import load_exercise
from deepgrade.project import Project
from deepgrade.release import check_release, release_exercise, render_exercise

FIXTURE = Path(__file__).parent / "fixtures" / "release"
GOLDEN = FIXTURE / "golden"
REPO = Path(__file__).resolve().parents[1]
UPDATE_GOLDEN = os.environ.get("DEEPGRADE_UPDATE_GOLDEN") == "1"

SIGNS_LOCKED = {
    "setup",
    "load_data",
    "split_data",
    "save_scale",
    "save_one_hot",
    "self_check",
    "save_params",
    "save_training",
    "save_evaluation",
    "save_predictions",
    "save_activation_model",
    "save_img_tensor",
    "save_first_activation",
}
SIGNS_ANSWERS = {
    "x_train_range",
    "y_train_shape",
    "params_per_layer",
    "total_params",
    "evaluation",
    "img_tensor_shape",
    "first_activation_shape",
}


@pytest.fixture
def tiny(tmp_path: Path) -> Project:
    root = tmp_path / "course"
    shutil.copytree(FIXTURE / "project", root)
    return Project(root)


def _as_notebook(data: bytes) -> NotebookNode:
    nb: NotebookNode = nbformat.reads(data.decode("utf-8"), as_version=4)
    return nb


def _source_cells(project: Project) -> tuple[Path, NotebookNode]:
    path = project.source / "tiny" / "tiny.ipynb"
    return path, json.loads(path.read_text(encoding="utf-8"))


def _edit_source(project: Project, index: int, **changes: Any) -> Path:
    path, raw = _source_cells(project)
    raw["cells"][index].update(changes)
    path.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    return path


# The tiny fixture: golden files and the engine's behaviour


def test_release_matches_golden_files(tiny: Project) -> None:
    written = release_exercise(tiny, "tiny")
    produced = {path.relative_to(tiny.root).as_posix(): path.read_bytes() for path in written}
    if UPDATE_GOLDEN:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for relative, data in produced.items():
            (GOLDEN / relative).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / relative).write_bytes(data)
    expected = {
        path.relative_to(GOLDEN).as_posix(): path.read_bytes()
        for path in GOLDEN.rglob("*")
        if path.is_file()
    }
    assert sorted(produced) == sorted(expected)
    for relative, data in produced.items():
        assert data == expected[relative], f"{relative} differs from its golden file"


def test_release_clears_solutions_outputs_and_locks(tiny: Project) -> None:
    release_exercise(tiny, "tiny")
    nb = nbt.read_notebook(tiny.release / "tiny" / "tiny.ipynb")
    cells = {cell.id: cell for cell in nb.cells}
    assert nb.nbformat_minor == 5 and len(cells) == len(nb.cells)  # stable, unique ids added
    assert cells["add_one"].source == (
        'def add_one(x):\n    """x + 1."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
        "\n\n\n# YOUR CODE HERE\nraise NotImplementedError()\nprint(two)"
    )
    assert cells["why"].source == "Why one?\n\nYOUR ANSWER HERE"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "ExecuteTime" not in cell.metadata
    for gid in ("setup", "check_two"):  # locked, and grade cells are locked too
        meta = cells[gid].metadata
        assert meta.editable is False and meta.deletable is False
        assert meta.deepgrade.checksum == nbt.checksum(cells[gid])
    assert "deepgrade" not in cells["add_one"].metadata
    assert nb.metadata.deepgrade.exercise == "tiny"
    assert nb.metadata.deepgrade.version.startswith("sha256:")
    assert "papermill" not in nb.metadata


def test_solution_is_the_release_filled_in(tiny: Project) -> None:
    release_exercise(tiny, "tiny")
    release = nbt.read_notebook(tiny.release / "tiny" / "tiny.ipynb")
    solution = nbt.read_notebook(tiny.solutions / "tiny" / "tiny.ipynb")
    assert nbt.find_tampering(solution, release) == []
    add_one = next(cell for cell in solution.cells if cell.id == "add_one")
    assert "return x + 1" in add_one.source
    assert "### BEGIN SOLUTION" not in add_one.source
    assert (tiny.solutions / "tiny" / "notes.txt").is_file()
    assert (tiny.release / "tiny" / "notes.txt").is_file()


def test_release_is_deterministic(tiny: Project, tmp_path: Path) -> None:
    first = {p: p.read_bytes() for p in release_exercise(tiny, "tiny")}
    second = {p: p.read_bytes() for p in release_exercise(tiny, "tiny")}
    assert first == second
    for data in first.values():
        assert data.endswith(b"\n")


def test_check_release_reports_missing_stale_and_extra_files(tiny: Project) -> None:
    assert check_release(tiny) == [
        "release/tiny/notes.txt",
        "release/tiny/tiny.ipynb",
        "solutions/tiny/notes.txt",
        "solutions/tiny/tiny.ipynb",
    ]
    release_exercise(tiny, "tiny")
    assert check_release(tiny) == []

    _edit_source(tiny, 2, source="# Locked: saves what the grader checks. Do not edit.\nx = 2")
    assert check_release(tiny) == ["release/tiny/tiny.ipynb", "solutions/tiny/tiny.ipynb"]
    release_exercise(tiny, "tiny")
    assert check_release(tiny) == []

    leftover = tiny.release / "tiny" / "old.txt"
    leftover.write_text("from an earlier release\n", encoding="utf-8")
    assert check_release(tiny) == ["release/tiny/old.txt"]
    release_exercise(tiny, "tiny")
    assert not leftover.exists()
    assert check_release(tiny) == []


@pytest.mark.parametrize(
    ("index", "changes", "problem"),
    [
        (3, {"source": "### BEGIN SOLUTION\nx = 1\n"}, r"cell 4 \(add_one\): line 1: ### BEGIN"),
        (3, {"source": "x = 1\n### END SOLUTION\n"}, r"cell 4 \(add_one\): line 2: ### END"),
        (3, {"source": "x = 1\n"}, r"cell 4 \(add_one\): solution cell without"),
        (5, {"source": "### BEGIN SOLUTION\n### END SOLUTION"}, r"cell 6 \(check_two\): solution"),
        (1, {"metadata": {}}, "no code cell tagged 'parameters'"),
        (
            5,
            {"metadata": {"nbgrader": {"grade_id": "setup", "locked": True}}},
            r"cell 6 \(setup\): grade_id 'setup' already used by cell 3",
        ),
        (5, {"metadata": {"nbgrader": {"locked": True}}}, "cell 6: nbgrader metadata without"),
        (  # nbgrader's own rules, so an nbgrader course can release the master as it is
            4,
            {"metadata": {"nbgrader": {"grade_id": "why", "solution": True, "grade": False}}},
            r"cell 5 \(why\): a markdown answer must also be a grade cell, as nbgrader requires",
        ),
        (
            0,
            {"metadata": {"nbgrader": {"grade_id": "intro", "grade": True, "points": 1}}},
            r"cell 1 \(intro\): a markdown grade cell must be a solution cell",
        ),
    ],
)
def test_bad_sources_are_refused_naming_file_and_cell(
    tiny: Project, index: int, changes: dict[str, Any], problem: str
) -> None:
    path = _edit_source(tiny, index, **changes)
    with pytest.raises(InputError, match=problem) as info:
        release_exercise(tiny, "tiny")
    assert info.value.path == path
    assert not (tiny.release / "tiny").exists()  # nothing half-written


def test_a_source_that_is_not_a_notebook_is_refused(tiny: Project) -> None:
    path = tiny.source / "tiny" / "tiny.ipynb"
    path.write_text("not a notebook", encoding="utf-8")
    with pytest.raises(InputError) as info:
        release_exercise(tiny, "tiny")
    assert info.value.path == path


def test_a_missing_exercise_is_refused(tiny: Project) -> None:
    with pytest.raises(InputError, match="no exercise 'nope'"):
        release_exercise(tiny, "nope")


# The real SIGNS exercise


@pytest.fixture(scope="module")
def signs() -> dict[str, Any]:
    project = Project(REPO)
    spec = load_exercise(project.autograder, "signs_cnn")
    outputs = render_exercise(project, "signs_cnn")
    source = nbt.read_notebook(project.source / "signs_cnn" / spec.notebook)
    release_path = project.release / "signs_cnn" / spec.notebook
    solution_path = project.solutions / "signs_cnn" / spec.notebook
    return {
        "project": project,
        "spec": spec,
        "outputs": outputs,
        "source": source,
        "release": _as_notebook(outputs[release_path]),
        "solution": _as_notebook(outputs[solution_path]),
        "released_files": {p: d for p, d in outputs.items() if p.is_relative_to(project.release)},
    }


def test_committed_signs_release_is_up_to_date(signs: dict[str, Any]) -> None:
    stale = [
        str(path)
        for path, data in signs["outputs"].items()
        if not path.is_file() or path.read_bytes() != data
    ]
    assert stale == [], "run `deepgrade release` and commit the result"


def test_signs_render_is_deterministic(signs: dict[str, Any]) -> None:
    assert render_exercise(signs["project"], "signs_cnn") == signs["outputs"]


def _solution_lines(source: NotebookNode) -> tuple[set[str], set[str]]:
    """(lines inside solution regions, lines outside them) of the master notebook."""
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in source.cells:
        lines = cell.source.split("\n")
        regions = nbt.solution_regions(cell.source) if nbt.is_solution(cell) else []
        in_region = {i for begin, end in regions for i in range(begin, end + 1)}
        for i, line in enumerate(lines):
            (inside if i in in_region else outside).add(line.strip())
    return inside, outside


def _leaks(source: NotebookNode, released: NotebookNode) -> set[str]:
    inside, outside = _solution_lines(source)
    secret = {
        line
        for line in inside - outside
        if line and not line.startswith("#") and not line.startswith(nbt.BEGIN_SOLUTION[:3])
    }
    shown = {line.strip() for cell in released.cells for line in cell.source.split("\n")}
    return secret & shown


def test_no_solution_line_is_released(signs: dict[str, Any]) -> None:
    assert _leaks(signs["source"], signs["release"]) == set()
    # The same check does see the solutions in the solution notebook: it can fail.
    assert "img_tensor = np.expand_dims(X_test[index], axis=0)" in _leaks(
        signs["source"], signs["solution"]
    )
    for path, data in signs["released_files"].items():
        if path.suffix != ".ipynb":
            inside, outside = _solution_lines(signs["source"])
            text_lines = {line.strip() for line in data.decode("utf-8").splitlines()}
            assert not (inside - outside - {""}) & text_lines, path


def _hidden_forms(value: Any) -> set[str]:
    forms = {json.dumps(value), repr(value)}
    if isinstance(value, list):
        forms |= {repr(tuple(value)), ",".join(map(str, value)), ", ".join(map(str, value))}
    return forms


def test_no_hidden_value_is_released(signs: dict[str, Any]) -> None:
    hidden = signs["spec"].hidden
    assert hidden, "the SIGNS spec has hidden values to protect"
    for name, value in hidden.items():
        for path, data in signs["released_files"].items():
            text = data.decode("utf-8")
            for form in _hidden_forms(value):
                assert form not in text, f"hidden {name} ({form}) appears in {path}"


def test_signs_locked_cells_are_checksummed(signs: dict[str, Any]) -> None:
    locked = nbt.locked_cells(signs["release"])
    assert set(locked) == SIGNS_LOCKED
    for gid, cell in locked.items():
        assert cell.metadata.deepgrade.checksum == nbt.checksum(cell), gid
        assert cell.metadata.editable is False
        assert cell.source.startswith("# Locked:"), gid
    assert nbt.find_tampering(signs["solution"], signs["release"]) == []


def test_signs_locked_cells_save_every_artifact_and_answer(signs: dict[str, Any]) -> None:
    locked_text = "\n".join(cell.source for cell in nbt.locked_cells(signs["release"]).values())
    gradetime = {"hidden_model.keras"}  # saved by the grade-time cells, not the notebook
    for artifact in set(signs["spec"].artifacts) - gradetime:
        assert f'"{artifact}"' in locked_text, artifact
    for key in SIGNS_ANSWERS:
        assert re.search(rf'save_answer\(\s*"{key}"', locked_text), key
    assert "keras.utils.set_random_seed(SEED)" in locked_text


def test_every_signs_solution_cell_is_a_stub_in_the_release(signs: dict[str, Any]) -> None:
    solutions = [cell for cell in signs["release"].cells if nbt.is_solution(cell)]
    assert len(solutions) >= 12
    for cell in solutions:
        stub = nbt.CODE_STUB[1] if cell.cell_type == "code" else nbt.MARKDOWN_STUB
        assert stub in cell.source, cell.id


def _imported_modules(nb: NotebookNode) -> set[str]:
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):  # also proves there are no magics
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules.add((node.module or "").split(".")[0])
    return modules


def test_signs_release_imports_only_course_packages(signs: dict[str, Any]) -> None:
    modules = _imported_modules(signs["release"])
    allowed = {"keras", "numpy", "h5py", "matplotlib"} | set(sys.stdlib_module_names)
    assert modules <= allowed, modules - allowed
    assert {"keras", "numpy", "h5py", "matplotlib"} <= modules


def test_signs_parameters_cell_is_the_contract(signs: dict[str, Any]) -> None:
    [cell] = [
        cell for cell in signs["source"].cells if "parameters" in cell.metadata.get("tags", [])
    ]
    tree = ast.parse(cell.source)
    assigned = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        target = node.targets[0]
        assert isinstance(target, ast.Name)
        assigned[target.id] = ast.literal_eval(node.value)
    assert assigned == {"DATA_DIR": ".", "ARTIFACT_DIR": "artifacts", "EPOCHS": 40, "SEED": 0}


def _tiny_signs_data(directory: Path) -> None:
    """Random arrays in the SIGNS format: enough to run the notebook up to the first stub."""
    import h5py

    rng = np.random.default_rng(0)
    classes = np.arange(6, dtype=np.int64)
    for split, n in (("train", 1000), ("test", 12)):
        with h5py.File(directory / f"{split}_signs.h5", "w") as handle:
            handle[f"{split}_set_x"] = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
            handle[f"{split}_set_y"] = rng.integers(0, 6, n).astype(np.int64)
            handle["list_classes"] = classes


@pytest.mark.slow
def test_released_signs_notebook_stops_at_the_first_stub(
    signs: dict[str, Any], tmp_path: Path
) -> None:
    import papermill

    _tiny_signs_data(tmp_path)
    release = signs["project"].release / "signs_cnn" / signs["spec"].notebook
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(release),
            str(tmp_path / "out.ipynb"),
            parameters={"DATA_DIR": str(tmp_path), "ARTIFACT_DIR": str(tmp_path / "art")},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp_path),
        )
    assert info.value.ename == "NotImplementedError"
    executed = nbt.read_notebook(tmp_path / "out.ipynb")
    failed = [
        cell
        for cell in executed.cells
        if any(o.output_type == "error" for o in cell.get("outputs", []))
    ]
    assert [nbt.grade_id(cell) for cell in failed] == ["scale"]
