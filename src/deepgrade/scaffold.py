"""`deepgrade new`: a new exercise's files, from templates, ready to release and to grade.

It writes the master notebook (title, the tagged parameters cell with every name the grader
sets, locked setup, data-loading and preparing cells for the data set, a solution stub, the
locked cells that save answers.json, history.json and model.keras), a commented spec.toml with
both profiles, hidden checks on deepgrade's fixtures, samples.toml with one sample and a README
with the checks table and a calibration section, then releases the exercise. The exercise
starts as a draft (`draft = true`): its solution is a stub that raises, so the commands that
take every exercise (demo, check-solutions, release --check) leave it out until the author
writes the solution and deletes that line. docs/authoring.md walks through the rest.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from deepgrade import notebooks
from deepgrade.calibrate import CALIBRATION_BEGIN, CALIBRATION_END
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import PROFILES, ExerciseSpec, load_exercise
from deepgrade.project import Project

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TEMPLATES = "templates/new"
# The parameters every scaffolded notebook has, beside DATA_DIR, ARTIFACT_DIR and PROFILE.
PARAMETER_HELP = {
    "EPOCHS": "epochs of training (the grader sets it per profile)",
    "N_TRAIN": "training images used (the grader may use fewer)",
    "SEED": "the random seed (calibration varies it)",
}


@dataclass(frozen=True)
class DatasetTemplate:
    """What a scaffold needs to know about one data set: its images and how the notebook
    reads and prepares them."""

    name: str
    input_shape: tuple[int, ...]  # of one prepared image, as the model's Input takes it
    n_classes: int
    n_train: int  # the real training set's size (the full profile's N_TRAIN)
    imports: tuple[str, ...]  # the setup cell's import lines beyond keras, numpy, matplotlib
    stdlib: tuple[str, ...]  # standard-library modules the setup cell imports
    prepare: str  # IMAGES (uint8) -> float32 in [0, 1] with the channel axis
    intro: str  # the data section's text
    files_text: str  # the files, as the parameters cell names them
    smoke_sizes: Mapping[str, int] = field(default_factory=dict)  # {}: the real files' sizes


_SCALE = 'IMAGES.astype("float32") / 255.0'
DATASETS: Mapping[str, DatasetTemplate] = {
    "signs": DatasetTemplate(
        name="signs",
        input_shape=(64, 64, 3),
        n_classes=6,
        n_train=1080,
        files_text="train_signs.h5 / test_signs.h5",
        imports=("import h5py",),
        stdlib=("json", "os"),
        prepare=_SCALE,
        intro=(
            "SIGNS holds 64x64 colour photos of hands showing 0 to 5 fingers, in two HDF5 "
            "files: `train_signs.h5` (1,080 images) and `test_signs.h5` (120 images). Run the "
            "next cell to read them."
        ),
    ),
    "cifar10": DatasetTemplate(
        name="cifar10",
        input_shape=(32, 32, 3),
        n_classes=10,
        n_train=50000,
        files_text="data_batch_1..5 and test_batch",
        imports=(),
        stdlib=("json", "os", "pickle"),
        prepare=_SCALE,
        intro=(
            "CIFAR-10 holds 32x32 colour photos in 10 classes, in the python batches "
            "`data_batch_1` to `data_batch_5` (50,000 training images) and `test_batch` "
            "(10,000 test images) of the folder `cifar-10-batches-py`. Run the next cell to "
            "read them."
        ),
        smoke_sizes={"n_train": 5000, "n_test": 1000},
    ),
    "fashion_mnist": DatasetTemplate(
        name="fashion_mnist",
        input_shape=(28, 28, 1),
        n_classes=10,
        n_train=60000,
        files_text="the four Fashion-MNIST .gz files",
        imports=(),
        stdlib=("gzip", "json", "os"),
        prepare=f"({_SCALE})[..., np.newaxis]",
        intro=(
            "Fashion-MNIST holds 28x28 grey-level photos of clothes and shoes in 10 classes, in "
            "four gzip-compressed IDX files: `train-images-idx3-ubyte.gz`, "
            "`train-labels-idx1-ubyte.gz` (60,000 training images), `t10k-images-idx3-ubyte.gz` "
            "and `t10k-labels-idx1-ubyte.gz` (10,000 test images). Run the next cell to read "
            "them."
        ),
        smoke_sizes={"n_train": 5000, "n_test": 1000},
    ),
}

# Profile values of a new exercise when no --like exercise gives them.
_DEFAULT_PROFILES: Mapping[str, Mapping[str, Any]] = {
    "smoke": {
        "data": "synth",
        "cell_timeout_s": 300,
        "notebook_timeout_s": 600,
        "memory_mb": 4096,
        "artifact_cap_mb": 64,
        "gpus": 0.0,
        "EPOCHS": 5,
        "test_accuracy": 0.5,
    },
    "full": {
        "data": "real",
        "cell_timeout_s": 1800,
        "notebook_timeout_s": 3600,
        "memory_mb": 8192,
        "artifact_cap_mb": 64,
        "gpus": 0.25,
        "EPOCHS": 30,
        "test_accuracy": 0.8,
    },
}
_LIMITS = ("cell_timeout_s", "notebook_timeout_s", "memory_mb", "artifact_cap_mb")


@dataclass(frozen=True)
class Scaffold:
    """What `new` wrote: the files, and the release it made."""

    name: str
    written: tuple[Path, ...]
    released: tuple[Path, ...]


def check_name(project: Project, name: str) -> None:
    """Refuse a name that is not a lowercase identifier, or that an exercise already uses."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise DeepgradeError(
            f"{name!r} is not a valid exercise name: use lowercase letters, digits and "
            "underscores, starting with a letter (it names folders, the notebook and the "
            "checks' ids), e.g. shirts_dense"
        )
    for folder in (project.autograder, project.source, project.release, project.solutions):
        if (folder / name).exists():
            raise InputError(
                folder / name,
                f"exercise {name!r} already exists; choose another name or delete its folders "
                "(autograder/, source/, release/, solutions/) first",
            )


def dataset_template(name: str) -> DatasetTemplate:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DeepgradeError(
            f"unknown data set {name!r} for deepgrade new (known: {known})"
        ) from None


def _profile_values(like: ExerciseSpec | None, dataset: DatasetTemplate) -> list[dict[str, Any]]:
    """Both profiles' values: the defaults, or those of the --like exercise where it has them."""
    profiles = []
    for pname in PROFILES:
        values = dict(_DEFAULT_PROFILES[pname])
        sizes = dict(dataset.smoke_sizes) if pname == "smoke" else {}
        source = like.profiles.get(pname) if like is not None else None
        if source is not None:
            values.update({key: getattr(source, key) for key in _LIMITS})
            values["data"] = source.data
            values["gpus"] = source.gpus
            for key in ("EPOCHS",):
                if isinstance(source.parameters.get(key), int):
                    values[key] = source.parameters[key]
            if "test_accuracy" in source.thresholds:
                values["test_accuracy"] = source.thresholds["test_accuracy"]
            if dataset.name in source.data_sizes:
                sizes = dict(source.data_sizes[dataset.name])
        n_train = sizes.get("n_train", dataset.n_train)
        if like is not None and source is not None:
            n_train = int(source.parameters.get("N_TRAIN", n_train))
        values.update(
            name=pname,
            parameters={"EPOCHS": values["EPOCHS"], "N_TRAIN": n_train, "SEED": 0},
            data_sizes=sizes,
            data_help=(
                f"the {dataset.name} look-alike made by deepgrade"
                if values["data"] == "synth"
                else f"the real files, imported with `deepgrade datasets import {dataset.name}`"
            ),
            threshold_help=(
                "Calibrate with `deepgrade calibrate` (README.md, Calibration)."
                if pname == "smoke"
                else "The course's figure, less a margin for the seed (README.md, Thresholds)."
            ),
        )
        profiles.append(values)
    return profiles


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("deepgrade", _TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Python, TOML and Markdown, never HTML
    )


def _notebook(text: str) -> Any:
    """The master notebook from the rendered `# %% cell=KIND [grade_id=ID]` file."""
    import nbformat

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for pos, (source, options) in enumerate(notebooks.split_marked_cells(text), 1):
        kind = options.get("cell", "code")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)  # type: ignore[no-untyped-call]
        else:
            cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
        if kind == "parameters":
            cell.metadata["tags"] = ["parameters"]
        elif kind in ("locked", "solution"):
            cell.metadata["nbgrader"] = {
                "grade": False,
                "grade_id": options["grade_id"],
                "locked": kind == "locked",
                "schema_version": 3,
                "solution": kind == "solution",
            }
        cell["id"] = options.get("grade_id", f"cell-{pos}")  # stable: same name, same file
        nb.cells.append(cell)
    return nb


def render(
    project: Project,
    name: str,
    dataset: str | None,
    *,
    like: str | None = None,
    title: str | None = None,
) -> dict[Path, str]:
    """Every file `new` writes, in memory: {path: text}. The data set defaults to the --like
    exercise's first one."""
    import nbformat

    check_name(project, name)
    like_spec = load_exercise(project.autograder, like) if like else None
    if dataset is None:
        if like_spec is None:
            raise DeepgradeError(
                "give the exercise's data set: --dataset NAME (or --like EXERCISE)"
            )
        dataset = like_spec.datasets[0]
    template = dataset_template(dataset)
    shape = template.input_shape
    values: dict[str, Any] = {
        "name": name,
        "title": title or name.replace("_", " ").capitalize(),
        "dataset": dataset,
        "like": like,
        "n_classes": template.n_classes,
        "input_shape": repr(shape),
        "input_shape_text": "x".join(map(str, shape)),
        "prepare_expression": template.prepare,
        "data_intro": textwrap.fill(template.intro, 96),
        "imports": sorted(
            (
                "import keras",
                "import matplotlib.pyplot as plt",
                "import numpy as np",
                *template.imports,
            ),
            key=lambda line: line.split()[1],
        ),
        "stdlib_imports": template.stdlib,
        "parameter_help": PARAMETER_HELP,
        "data_files": template.files_text,
        "calibration_begin": CALIBRATION_BEGIN,
        "calibration_end": CALIBRATION_END,
        "total_points": 6,
    }
    profiles = _profile_values(like_spec, template)
    values["profiles"] = profiles
    values["parameters"] = profiles[-1]["parameters"]  # the notebook shows the full profile's
    values["smoke_threshold"] = profiles[0]["test_accuracy"]
    values["full_threshold"] = profiles[-1]["test_accuracy"]
    env = _environment()
    load_cell = resources.files("deepgrade").joinpath(f"{_TEMPLATES}/load/{dataset}.cell")
    values["load_cell"] = load_cell.read_text(encoding="utf-8").rstrip("\n")
    nb = _notebook(env.get_template("notebook.py.j2").render(values))
    autograder = project.autograder / name
    files = {
        project.source / name / f"{name}.ipynb": nbformat.writes(nb) + "\n",  # type: ignore[no-untyped-call]
        autograder / "spec.toml": env.get_template("spec.toml.j2").render(values),
        autograder / "conftest.py": env.get_template("conftest.py.j2").render(values),
        autograder / "test_training.py": env.get_template("test_training.py.j2").render(values),
        autograder / "test_answers.py": env.get_template("test_answers.py.j2").render(values),
        autograder / "samples.toml": env.get_template("samples.toml.j2").render(values),
        autograder / "README.md": env.get_template("README.md.j2").render(values),
    }
    return files


def new_exercise(
    project: Project,
    name: str,
    dataset: str | None,
    *,
    like: str | None = None,
    title: str | None = None,
    release: bool = True,
) -> Scaffold:
    """Write the exercise's files and (by default) release it; nothing is written when any
    input is refused."""
    files = render(project, name, dataset, like=like, title=title)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    released: list[Path] = []
    if release:
        from deepgrade.release import release_exercise

        released = release_exercise(project, name)
    return Scaffold(name, tuple(files), tuple(released))
