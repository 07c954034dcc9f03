"""TensorFlow's C++ start-up lines stay out of the console of the grader's own process."""

from __future__ import annotations

import os
import subprocess
import sys

from deepgrade.tfquiet import is_noise

STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796017874.583394    2088 port.cc:153] oneDNN custom operations are on. You may"
    " see slightly different numerical results",
    "I0000 00:00:1796017364.701075   22154 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.",
]


def test_only_the_known_start_up_lines_are_noise() -> None:
    assert all(is_noise(line) for line in STARTUP)
    assert not is_noise("E0000 00:00:1.0 cuda_dnn.cc:8579] Unable to register cuDNN factory")
    assert not is_noise("Traceback (most recent call last):")


def test_pretraining_and_imports_load_tensorflow_without_its_start_up_lines() -> None:
    """What models.train and models.import_model call first, in a fresh process."""
    code = (
        "from deepgrade.tfquiet import import_tensorflow_quietly\n"
        "import_tensorflow_quietly()\n"
        "import keras, sys\n"
        "keras.ops.ones((2,)) + 1\n"
        "print('after the import', file=sys.stderr)\n"
    )
    unset = ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert not [line for line in run.stderr.splitlines() if is_noise(line)], run.stderr[-2000:]
    assert "after the import" in run.stderr  # fd 2 is back where it was
