"""`deepgrade new`: a scaffolded exercise is a valid draft that releases at once, copies --like's
profile values, and refuses bad names and unknown data sets without writing anything."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from deepgrade import notebooks
from deepgrade.cli import main
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import PROFILES, load_exercise
from deepgrade.project import Project
from deepgrade.release import check_release, render_exercise
from deepgrade.samples import load_samples
from deepgrade.scaffold import DATASETS, new_exercise

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A copy of this repository's exercises (the folders `new` and `release` touch)."""
    for folder in ("autograder", "source", "release", "solutions"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return Project(tmp_path)


def _files(project: Project) -> set[Path]:
    return {p for p in project.root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_new_writes_a_draft_that_releases(project: Project, dataset: str) -> None:
    made = new_exercise(project, "my_ex", dataset, title="My exercise")
    spec = load_exercise(project.autograder, "my_ex")
    assert spec.draft and spec.title == "My exercise" and spec.datasets == (dataset,)
    assert set(spec.profiles) == set(PROFILES)
    assert {"answers.json", "history.json", "model.keras"} <= set(spec.artifacts)
    # The release it made is exactly what `release` renders, and every other exercise still
    # passes `release --check`.
    assert set(made.released) == set(render_exercise(project, "my_ex"))
    for path, data in render_exercise(project, "my_ex").items():
        assert path.read_bytes() == data
    assert check_release(project) == []
    assert "my_ex" not in project.exercise_names()  # a draft
    assert "my_ex" in project.exercise_names(include_drafts=True)

    nb = notebooks.read_notebook(project.source / "my_ex" / "my_ex.ipynb")
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assigned = {
        node.targets[0].id  # type: ignore[attr-defined]
        for node in ast.parse(params.source).body
        if isinstance(node, ast.Assign)
    }
    for profile in spec.profiles.values():
        assert set(profile.parameters) | {"DATA_DIR", "ARTIFACT_DIR", "PROFILE"} <= assigned
    locked = notebooks.locked_cells(nb)
    assert {"setup", "load_data", "prepare_data", "save_training", "save_evaluation"} <= set(locked)
    for name in spec.artifacts:
        assert any(name in str(cell.source) for cell in locked.values()), name
    for cell in nb.cells:
        if cell.cell_type == "code":
            ast.parse(notebooks.strip_solution_markers(str(cell.source)))
    # The checks are plain pytest files that compile; the one sample edits a real cell.
    for path in spec.directory.glob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"))
        assert "from conftest import" not in path.read_text(encoding="utf-8")
    (sample,) = load_samples(spec.directory)
    assert {edit.cell for edit in sample.edits} <= {notebooks.grade_id(c) for c in nb.cells}
    assert "## Calibration" in (spec.directory / "README.md").read_text(encoding="utf-8")


def test_new_like_copies_profile_values(project: Project) -> None:
    new_exercise(project, "catdog_two", None, like="catdog_split")
    spec = load_exercise(project.autograder, "catdog_two")
    like = load_exercise(project.autograder, "catdog_split")
    assert spec.datasets == like.datasets
    for name in PROFILES:
        mine, theirs = spec.profile(name), like.profile(name)
        assert mine.cell_timeout_s == theirs.cell_timeout_s
        assert mine.notebook_timeout_s == theirs.notebook_timeout_s
        assert mine.memory_mb == theirs.memory_mb
        assert mine.gpus == theirs.gpus
        assert mine.data_sizes == theirs.data_sizes
        assert mine.parameters["EPOCHS"] == theirs.parameters["EPOCHS"]
        assert mine.thresholds["test_accuracy"] == theirs.thresholds["test_accuracy"]


@pytest.mark.parametrize(
    ("name", "dataset", "like", "error", "says"),
    [
        ("signs_cnn", "signs", None, InputError, "already exists"),
        ("Bad-Name", "signs", None, DeepgradeError, "not a valid exercise name"),
        ("class", "signs", None, DeepgradeError, "not a valid exercise name"),
        ("2fast", "signs", None, DeepgradeError, "not a valid exercise name"),
        ("fresh", "mnist", None, DeepgradeError, "unknown data set 'mnist'"),
        ("fresh", None, None, DeepgradeError, "--dataset"),
        ("fresh", None, "no_such", InputError, "no exercise 'no_such'"),
    ],
)
def test_new_refuses_bad_input_and_writes_nothing(
    project: Project,
    name: str,
    dataset: str | None,
    like: str | None,
    error: type[Exception],
    says: str,
) -> None:
    before = _files(project)
    with pytest.raises(error, match=says):
        new_exercise(project, name, dataset, like=like)
    assert _files(project) == before


def test_cli_new(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(project.root)
    assert main(["--root", root, "new", "shirts", "--dataset", "fashion_mnist"]) == 0
    out = capsys.readouterr().out
    assert "autograder/shirts/spec.toml" in out and "is a draft" in out
    assert main(["--root", root, "release", "--check"]) == 0
    assert main(["--root", root, "new", "shirts", "--dataset", "fashion_mnist"]) == 2
    assert "already exists" in capsys.readouterr().err
