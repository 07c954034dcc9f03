"""A throwaway course whose one exercise costs the grader almost nothing but its own overhead.

Its notebook trains nothing: it computes a linear model's weights in closed form with numpy
and saves them (`model.npz`) in about a second, most of it the kernel's start; its one check
reads them. The cluster tests and `bench/scale.py` grade hundreds of these, so what they
measure is deepgrade's cost per submission (sandbox, kernel, checks, gradebook), not a
network's training. An optional data set (a small SIGNS look-alike) gives the profile a file
to mount, so a cluster's nodes have something to fetch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EXERCISE = "tiny"
NOTEBOOK = "tiny.ipynb"

SPEC = """\
name = "tiny"
title = "Save a small model (a throwaway exercise for scale)"
notebook = "tiny.ipynb"
datasets = [{datasets}]
artifacts = ["model.npz"]

[profiles.smoke]
data = "synth"
cell_timeout_s = 300
notebook_timeout_s = 600
memory_mb = 1024
artifact_cap_mb = 1
cpus = 1
parameters = {{ UNITS = 3 }}  # SLEEP stays the submission's: the tests' slow students
{sizes}
"""

CHECKS = '''"""The tiny exercise's one check: the saved weights solve the toy regression."""

import numpy as np
import pytest


@pytest.mark.points(1)
def test_weights(artifact):
    """model.npz holds W (4, UNITS) and b (UNITS,) that fit the toy data"""
    saved = np.load(artifact("model.npz"), allow_pickle=False)
    assert saved["W"].shape == (4, 3), "W should be (4, UNITS)"
    assert np.allclose(saved["W"], np.arange(12.0).reshape(4, 3) / 10, atol=1e-6), "W is off"
    assert np.allclose(saved["b"], 1.0, atol=1e-6), "b is off"
'''

PARAMETERS = 'DATA_DIR = "."\nARTIFACT_DIR = "artifacts"\nUNITS = 3\nSLEEP = 0\n'

ANSWER = """\
import os, time
import numpy as np

time.sleep(SLEEP)
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4))
true_w, true_b = np.arange(4.0 * UNITS).reshape(4, UNITS) / 10, np.ones(UNITS)
y = x @ true_w + true_b
design = np.hstack([x, np.ones((64, 1))])
solved = np.linalg.lstsq(design, y, rcond=None)[0]
os.makedirs(ARTIFACT_DIR, exist_ok=True)
np.savez(os.path.join(ARTIFACT_DIR, "model.npz"), W=solved[:4{wrong}], b=solved[4])
"""


def _notebook(path: Path, source: str, sleep_s: float = 0) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    sleep = PARAMETERS.replace("SLEEP = 0", f"SLEEP = {sleep_s}")
    parameters = nbformat.v4.new_code_cell(sleep)  # type: ignore[no-untyped-call]
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(source)]  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


def write_course(root: Path, *, with_data: bool = False) -> Path:
    """The course at `root` (autograder/tiny, release/tiny); returns `root`."""
    exercise = root / "autograder" / EXERCISE
    exercise.mkdir(parents=True, exist_ok=True)
    sizes = "data_sizes = { signs = { n_train = 12, n_test = 6 } }" if with_data else ""
    datasets = '"signs"' if with_data else ""
    (exercise / "spec.toml").write_text(SPEC.format(datasets=datasets, sizes=sizes))
    (exercise / "test_tiny.py").write_text(CHECKS)
    _notebook(root / "release" / EXERCISE / NOTEBOOK, "pass")
    return root


def write_submissions(
    folder: Path, students: Iterable[str], *, wrong: Iterable[str] = (), sleep_s: float = 0
) -> list[Path]:
    """One notebook per student in `folder` (`<student>.ipynb`); the `wrong` ones save W
    with a column cut off, losing the check."""
    bad = set(wrong)
    made = []
    for student in students:
        path = folder / f"{student}.ipynb"
        _notebook(path, ANSWER.format(wrong=", :2" if student in bad else ""), sleep_s)
        made.append(path)
    return made
