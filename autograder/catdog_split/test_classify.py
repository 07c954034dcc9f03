"""Exercise 5: classify_file, judged on hidden image files.

The grade-time cell wrote images of the grader's test set (dogs and cats chosen by a hidden
seed, hidden_inputs.classify_indices) as PNG files, as OpenCV writes them (BGR), and saved what
classify_file answered with the saved model. The grader predicts the same images with the same
model, as the notebook feeds its network (RGB, [-0.5, 0.5]); reading the colours in the wrong
order or scaling differently changes the answers even though no error is raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hidden_inputs import classify_indices

from deepgrade.checks import fail

NAMES = ("dog", "cat")  # the answers for classes 0 and 1
# PNG is lossless: the right function agrees on every image (one near-tie flip allowed, e.g. a
# GPU-trained model). A ReLU network is nearly blind to a positive rescaling of its input, so
# pixels left in [0, 255] change only the answers the missing -0.5 shift tips over: be strict.
AGREEMENT = 0.95


@pytest.mark.points(3)
def test_classify_file(
    artifact: Callable[[str], Path],
    predict: Callable[[np.ndarray], np.ndarray],
    dataset: Any,
    hidden: Any,
) -> None:
    """classify_file reads the saved model and an image file and answers "dog" or "cat\""""
    try:
        given = json.loads(artifact("hidden_classify.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        fail("hidden_classify.json is not readable")
    chosen = classify_indices(dataset.y_test, hidden["classify_seed"], hidden["classify_images"])
    expected = [NAMES[int(p)] for p in np.argmax(predict(dataset.x_test[chosen]), axis=1)]
    assert isinstance(given, list) and len(given) == len(expected), (
        "hidden_classify.json does not hold one answer per image: the notebook stopped early"
    )
    answers = [a.strip().lower() if isinstance(a, str) else None for a in given]
    assert any(a is not None for a in answers), (
        "classify_file raised an error on every image file the grader gave it: it must read "
        "the model with keras.saving.load_model(model_path), the image with "
        "cv2.imread(image_path) and return the string 'dog' or 'cat'"
    )
    assert all(a is None or a in NAMES for a in answers), (
        "classify_file must return the string 'dog' or 'cat', nothing else"
    )
    agreement = float(np.mean([a == e for a, e in zip(answers, expected, strict=True)]))
    assert agreement >= AGREEMENT, (
        f"classify_file's answers agree with your saved model's own predictions on only "
        f"{agreement:.0%} of the grader's image files: cv2.imread gives BGR colours (convert "
        "to RGB), scale the pixels as AX (/ 255 - 0.5), add a batch axis, and answer 'dog' "
        "for class 0, 'cat' for class 1"
    )
