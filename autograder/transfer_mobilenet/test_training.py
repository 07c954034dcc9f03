"""Both training phases ran for their epochs, and the fine-tuned model's accuracy, measured by
the grader on its own test cats and dogs with its own preprocessing."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hidden_inputs import expected_preprocessed

from deepgrade.checks import expect_accuracy, fail, predict_or_fail
from deepgrade.profiles import GradingProfile

KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.mark.points(1)
def test_history(
    read_history: Callable[[str], dict[str, list[float]]], profile: GradingProfile
) -> None:
    """Phase 1 ran INITIAL_EPOCHS epochs and phase 2 FINE_TUNE_EPOCHS more, with validation"""
    for name, parameter, call in (
        ("history.json", "INITIAL_EPOCHS", "epochs=INITIAL_EPOCHS"),
        (
            "history_fine.json",
            "FINE_TUNE_EPOCHS",
            "epochs=INITIAL_EPOCHS + FINE_TUNE_EPOCHS, initial_epoch=len(history.epoch)",
        ),
    ):
        history = read_history(name)
        epochs = int(profile.parameters[parameter])
        missing = [key for key in KEYS if key not in history]
        if missing:
            fail(
                f"{name} has no {', '.join(missing)}: compile with the metric "
                "BinaryAccuracy(threshold=0.0, name='accuracy') and pass "
                "validation_data=(QX, qy) to model.fit"
            )
        lengths = sorted({len(history[key]) for key in KEYS})
        assert lengths == [epochs], (
            f"{name} has {' / '.join(map(str, lengths))} epochs, but the notebook ran with "
            f"{parameter} = {epochs}: call model.fit(..., {call}) once"
        )
        assert all(
            isinstance(v, int | float) and math.isfinite(v) for key in KEYS for v in history[key]
        ), f"{name}: the loss became NaN or infinite: check the preprocessing"


@pytest.mark.points(3)
def test_test_accuracy(
    model: Any,
    catsdogs: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
    confusion: Callable[..., None],
) -> None:
    """The fine-tuned model tells the grader's test cats from its dogs"""
    logits = predict_or_fail(
        model,
        expected_preprocessed(catsdogs.x_test),
        outputs=1,
        input_hint="32x32x3 images scaled to [-1, 1]: start with keras.Input((32, 32, 3))",
        output_hint="end with Dense(1): one logit per image",
    )
    predicted = (logits[:, 0] > 0).astype(np.int64)
    confusion(predicted, catsdogs.y_test, ["cat", "dog"])
    accuracy = float(np.mean(predicted == catsdogs.y_test))
    expect_accuracy(
        accuracy,
        required=threshold("test_accuracy"),
        measure=measure,
        what="your fine-tuned model classifies {accuracy} of the grader's test cats and dogs "
        "correctly",
        hint="check the preprocessing ([-1, 1]), the head (one logit, cat 0 and dog 1) and "
        "that both phases train for all their epochs",
    )
