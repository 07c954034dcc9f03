"""Exercises 1 to 3: the preprocessing, the head, what is frozen when, the learning rates.

Trainability is read from the saved models and confirmed by their weights: a base frozen in
phase 1 still holds the grader's own copy of the pretrained weights (batch-norm statistics
included), and in phase 2 only the layers from fine_tune_at on may have moved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hidden_inputs import expected_preprocessed, images

from deepgrade.checks import compile_config, expect_optimizer, fail
from deepgrade.profiles import GradingProfile

FINE_TUNE_AT = 100  # the exercise's fine_tune_at


@pytest.mark.points(2)
def test_preprocess(artifact: Callable[[str], Path], hidden: Any) -> None:
    """preprocess scales any uint8 images to [-1, 1] as MobileNetV2 expects"""
    try:
        got = np.load(artifact("hidden_preprocessed.npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        fail("preprocess did not return a numeric array: return a numpy array")
    batch = images(hidden["preprocess"])
    assert got.shape == batch.shape, (
        "preprocess changed the shape of the grader's images: scale the values only, for any "
        "number and size of images"
    )
    assert np.issubdtype(got.dtype, np.floating), "preprocess must return float32 values"
    assert np.allclose(got, expected_preprocessed(batch), atol=1e-4), (
        "preprocess does not scale the pixels to [-1, 1] as MobileNetV2 was trained (0 -> -1, "
        "255 -> +1): use keras.applications.mobilenet_v2.preprocess_input, or x / 127.5 - 1"
    )


@pytest.mark.points(2)
def test_head(model: Any, pretrained: Any, artifact: Callable[[str], Path]) -> None:
    """The model: resize, the base, then GlobalAveragePooling2D, Dropout(0.2), Dense(1) logit,
    compiled in both phases with binary cross-entropy on logits"""
    kinds = [type(layer).__name__ for layer in model.layers]
    wanted = ["Resizing", "Functional", "GlobalAveragePooling2D", "Dropout", "Dense"]
    assert kinds == wanted, (
        f"your model's layers are {', '.join(kinds)}; they should be Resizing(IMG_SIZE, "
        "IMG_SIZE), base_model, GlobalAveragePooling2D(), Dropout(0.2), Dense(1)"
    )
    assert tuple(model.inputs[0].shape[1:]) == (32, 32, 3), "start with keras.Input((32, 32, 3))"
    size = tuple(pretrained.input_shape[1:3])
    resize, _, _, dropout, dense = (layer.get_config() for layer in model.layers)
    problems = []
    if (resize["height"], resize["width"]) != size:
        problems.append("Resizing should take the images to IMG_SIZE x IMG_SIZE, the base's input")
    if abs(float(dropout["rate"]) - 0.2) > 1e-6:
        problems.append("the Dropout rate should be 0.2")
    if dense["units"] != 1 or dense["activation"] != "linear":
        problems.append("the output should be Dense(1) without activation: one logit per image")
    for name, phase in (("model_phase1.keras", "phase 1"), ("model.keras", "fine-tuning")):
        if not _logit_loss(compile_config(artifact(name)).get("loss")):
            problems.append(
                f"the loss of {phase} should be keras.losses.BinaryCrossentropy(from_logits=True)"
            )
    assert not problems, "; ".join(problems)


def _logit_loss(loss: Any) -> bool:
    """The compiled loss is binary cross-entropy on logits, as the Dense(1) head gives."""
    config = loss.get("config") if isinstance(loss, dict) else None
    return (
        isinstance(loss, dict)
        and loss.get("class_name") == "BinaryCrossentropy"
        and isinstance(config, dict)
        and config.get("from_logits") is True
    )


@pytest.mark.points(2)
def test_phase1_frozen(phase1: Any, phase1_base: Any) -> None:
    """Phase 1: the base is frozen, only the head's Dense layer is trainable"""
    assert not any(phase1_base.trainable), (
        "in model_phase1.keras some layers of the base are trainable: set "
        "base_model.trainable = False before compiling and training the head"
    )
    head = [w.path for w in phase1.trainable_weights]
    dense = [w.path for w in phase1.layers[-1].trainable_weights]
    assert head == dense and len(dense) == 2, (
        f"phase 1 trains {len(head)} weight tensors; only the head's Dense layer should learn "
        "(its kernel and bias: 2 tensors)"
    )


@pytest.mark.points(2)
def test_phase1_base_unchanged(phase1_base: Any, pretrained_base: Any) -> None:
    """Phase 1 left the pretrained weights as they were (the base was frozen while training)"""
    changed = phase1_base.unchanged(pretrained_base).count(False)
    assert changed == 0, (
        f"after phase 1, {changed} layers of the base no longer hold the pretrained weights: the "
        "base learnt during phase 1. Freeze it (base_model.trainable = False) before compile "
        "and fit, not after"
    )


@pytest.mark.points(3)
def test_fine_tune_layers(final_base: Any, phase1_base: Any, weighted_indices: list[int]) -> None:
    """Phase 2 trains exactly the base's layers from fine_tune_at = 100 on"""
    wanted = [index >= FINE_TUNE_AT for index in weighted_indices]
    if final_base.trainable != wanted:
        found = [i for i, t in zip(weighted_indices, final_base.trainable, strict=True) if t]
        start = f"from layer {found[0]}" if found else "none"
        fail(
            f"in model.keras the base's trainable layers start {start} ({len(found)} layers with "
            "weights); the layers from index 100 on should be trainable and those before frozen: "
            "base_model.trainable = True, then layer.trainable = False for "
            "base_model.layers[:fine_tune_at]"
        )
    unchanged = final_base.unchanged(phase1_base)
    lower = [u for u, w in zip(unchanged, wanted, strict=True) if not w]
    upper = [u for u, w in zip(unchanged, wanted, strict=True) if w]
    assert all(lower), (
        "layers of the base below fine_tune_at changed during phase 2: freeze them before "
        "compiling for fine-tuning"
    )
    assert not all(upper), (
        "the base's top layers did not change in phase 2: compile again after unfreezing them, "
        "then train for FINE_TUNE_EPOCHS epochs"
    )


@pytest.mark.points(2)
def test_learning_rates(artifact: Callable[[str], Path], profile: GradingProfile) -> None:
    """RMSprop at BASE_LEARNING_RATE in phase 1, and ten times smaller for fine-tuning"""
    rate = float(profile.parameters["BASE_LEARNING_RATE"])
    expect_optimizer(
        compile_config(artifact("model_phase1.keras")),
        "RMSprop",
        {"learning_rate": rate},
        spelled="keras.optimizers.RMSprop(learning_rate=BASE_LEARNING_RATE) in phase 1",
    )
    expect_optimizer(
        compile_config(artifact("model.keras")),
        "RMSprop",
        {"learning_rate": rate / 10},
        spelled="keras.optimizers.RMSprop(learning_rate=BASE_LEARNING_RATE / 10) for "
        "fine-tuning, ten times smaller than phase 1's",
    )
