"""Every reference solution gets full marks on every Keras backend: the notebooks and the checks
use only `import keras`. scripts/ci-backends (in .ci/run) proves it for signs_cnn and
bn_discovery on JAX and PyTorch; this test does the rest, with the environments it builds
(.venv-jax, .venv-torch: deepgrade, the backend's CPU build, no TensorFlow). Marked `backends`
(minutes of CPU per exercise, so not in the default run): `python -m pytest -m backends`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REST = ("catdog_split", "fashion_vgg", "tta_resnet1", "transfer_mobilenet")


@pytest.mark.backends
@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("exercise", REST)
def test_reference_solution_gets_full_marks_on(backend: str, exercise: str) -> None:
    deepgrade = ROOT / f".venv-{backend}" / "bin" / "deepgrade"
    if not deepgrade.exists():
        pytest.skip(reason=f"needs .venv-{backend}: run scripts/ci-backends first")
    done = subprocess.run(
        [str(deepgrade), "check-solutions", "--profile", "smoke", "--exercise", exercise],
        cwd=ROOT, env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True,
        text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "not full marks" not in done.stdout
