"""Exercise specs: the real ones load, and every malformed spec names the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepgrade.errors import InputError
from deepgrade.exercise import load_exercise, load_spec
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name = "ex"
title = "An exercise"
notebook = "ex.ipynb"
datasets = ["signs"]
artifacts = ["model.keras"]

[profiles.smoke]
data = "synth"
cell_timeout_s = 10
notebook_timeout_s = 60
memory_mb = 1024
artifact_cap_mb = 8
parameters = { EPOCHS = 2 }
thresholds = { test_accuracy = 0.5 }

[hidden]
n = [1, 2]
"""


def write_spec(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "ex"
    directory.mkdir()
    (directory / "spec.toml").write_text(text)
    return directory


def test_every_exercise_in_the_repository_loads() -> None:
    project = Project(ROOT)
    names = project.exercise_names()
    assert "signs_cnn" in names
    for name in names:
        spec = load_exercise(project.autograder, name)
        assert set(spec.profiles) == {"smoke", "full"}
        assert spec.profile("smoke").data == "synth"


def test_good_spec_round_trip(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, GOOD))
    smoke = spec.profile("smoke")
    assert smoke.parameters["EPOCHS"] == 2
    assert smoke.thresholds["test_accuracy"] == 0.5
    assert spec.hidden["n"] == [1, 2]
    assert spec.gradetime_cells is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('name = "ex"', 'name = "other"'), "differs from the folder name"),
        (('data = "synth"', 'data = "web"'), "data must be one of"),
        (("memory_mb = 1024", "memory_mb = -1"), "memory_mb must be positive"),
        (("cell_timeout_s = 10", 'cell_timeout_s = "10"'), "'cell_timeout_s' must be int"),
        (("[profiles.smoke]", "[profiles.huge]"), "unknown profiles"),
        (('title = "An exercise"\n', ""), "missing key 'title'"),
        (('notebook = "ex.ipynb"', 'notebook = "ex.ipynb"\ngradetime_cells = "x.py"'), "x.py"),
        (("[hidden]", "[hidden"), "not valid TOML"),
    ],
)
def test_bad_spec_names_file_and_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    directory = write_spec(tmp_path, GOOD.replace(*change))
    with pytest.raises(InputError) as info:
        load_spec(directory)
    assert str(directory / "spec.toml") in str(info.value)
    assert message in str(info.value)


def test_unknown_exercise_lists_known_ones(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD)
    with pytest.raises(InputError, match="known: ex"):
        load_exercise(tmp_path, "nope")


def test_unknown_profile(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, GOOD))
    with pytest.raises(InputError, match="no profile 'full'"):
        spec.profile("full")


def test_drafts_are_left_out_of_every_exercise(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()
    for name, extra in (("done", ""), ("wip", "draft = true\n")):
        (tmp_path / "autograder" / name).mkdir(parents=True)
        text = GOOD.replace('name = "ex"', f'name = "{name}"\n{extra}')
        (tmp_path / "autograder" / name / "spec.toml").write_text(text)
    project = Project(tmp_path)
    assert project.exercise_names() == ["done"]
    assert project.exercise_names(include_drafts=True) == ["done", "wip"]
    assert load_exercise(project.autograder, "wip").draft


def test_profile_data_sizes(tmp_path: Path) -> None:
    text = GOOD.replace(
        "[hidden]", "[profiles.smoke.data_sizes]\nsigns = { n_train = 64 }\n\n[hidden]"
    )
    spec = load_spec(write_spec(tmp_path, text))
    assert spec.profile("smoke").data_sizes["signs"]["n_train"] == 64
    bad = GOOD.replace(
        "[hidden]", "[profiles.smoke.data_sizes]\nsigns = { n_train = 0 }\n\n[hidden]"
    )
    (tmp_path / "bad").mkdir()
    with pytest.raises(InputError, match="data_sizes"):
        load_spec(write_spec(tmp_path / "bad", bad))


INPUTS_MODULE = '''"""Hidden inputs from hidden values: no values here."""

import numpy as np


def images(seed, count):
    return np.random.default_rng(seed).integers(1, 256, size=(count, 4, 4), dtype=np.uint8)
'''


def test_hidden_module_is_written_once_for_checks_and_gradetime_cells(tmp_path: Path) -> None:
    """The grade-time cells call the module as `_dg_inputs` (a module object: a student's
    `images` is not overwritten) and the checks import the same file by name."""
    import importlib.util

    from deepgrade.grade import gradetime_cells, gradetime_sources
    from deepgrade.redact import exercise_secrets

    directory = write_spec(
        tmp_path,
        GOOD.replace(
            'notebook = "ex.ipynb"',
            'notebook = "ex.ipynb"\ngradetime_cells = "g.py"\nhidden_module = "hidden_inputs.py"',
        ).replace("n = [1, 2]", "n = [7, 3]"),
    )
    (directory / "hidden_inputs.py").write_text(INPUTS_MODULE)
    (directory / "g.py").write_text(
        "# %% calls=images\nmade = _dg_inputs.images(*HIDDEN['n'])  # noqa: F821\n"
        "mine = images(0, 0)  # noqa: F821 (the student's)\n"
    )
    spec = load_spec(directory)
    assert spec.hidden_module == directory / "hidden_inputs.py"
    namespace: dict[str, object] = {"images": lambda *_: "student's"}
    for source in gradetime_sources(spec):
        exec(source, namespace)
    loaded = importlib.util.spec_from_file_location("hidden_inputs", spec.hidden_module)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    assert (namespace["made"] == module.images(7, 3)).all()  # type: ignore[attr-defined]
    assert namespace["mine"] == "student's"
    loader_cell = gradetime_cells(spec)[0][0]
    assert "_dg_inputs" in loader_cell and "[7, 3]" not in loader_cell  # values come by pipe
    assert exercise_secrets(spec).reveals(
        "line 7: return np.random.default_rng(seed).integers(1, 256, size=(count, 4, 4), "
        "dtype=np.uint8)"
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('"missing.py"', "does not exist"),
        ('"inputs.txt"', "must name a .py file"),
        ('"my-inputs.py"', "importable by name"),
        ('"test_inputs.py"', "not a test or conftest"),
        ("3", "must name a .py file"),
    ],
)
def test_bad_hidden_module_names_file_and_fix(tmp_path: Path, value: str, words: str) -> None:
    directory = write_spec(
        tmp_path,
        GOOD.replace('notebook = "ex.ipynb"', f"notebook = 'ex.ipynb'\nhidden_module = {value}"),
    )
    for name in ("inputs.txt", "my-inputs.py", "test_inputs.py"):
        (directory / name).write_text("")
    with pytest.raises(InputError) as raised:
        load_spec(directory)
    assert raised.value.path == directory / "spec.toml" and words in raised.value.problem
    assert "hidden_inputs.py" in raised.value.problem  # the example of a right value
