"""Exercise 3: tta_predict, called by the grader on hidden images with its own resnet1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import N_CLASSES, N_VIEWS, fail

SUM_TOLERANCE = 1e-3  # float32 means of float32 softmax rows sum to 1 within ~1e-6
AGREEMENT = 0.8  # TTA changes some argmaxes of plain prediction, never most of them
VIEWS = "11 views (the image, its mirror, small shifts of both)"


@pytest.fixture(scope="module")
def hidden_tta(grader: Any, load_array: Callable[[str, str], np.ndarray]) -> np.ndarray:
    return load_array("hidden_tta.npy", "tta_predict").astype(np.float64)


def _json(artifacts_dir: Path, name: str, what: str) -> dict[str, Any]:
    path = artifacts_dir / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        fail(
            f"the grader could not {what} (tta_predict raised an error, or the notebook "
            "stopped before): run the whole notebook and make tta_predict work on any images"
        )
    if not isinstance(data, dict):
        fail(f"the grader could not {what}: do not write files into ARTIFACT_DIR yourself")
    return data


def _shape_ok(array: np.ndarray, grader: Any) -> bool:
    return array.shape == (len(grader.hidden_uint8), N_CLASSES) and bool(np.all(np.isfinite(array)))


@pytest.mark.points(1)
def test_tta_shape(hidden_tta: np.ndarray, grader: Any) -> None:
    """tta_predict returns one row of 10 class scores per image"""
    assert hidden_tta.ndim == 2 and hidden_tta.shape[1:] == (N_CLASSES,), (
        f"tta_predict returned an array of {hidden_tta.ndim} axes shaped {hidden_tta.shape[1:]} "
        "after the first; it should return shape (n, 10): one row of class probabilities per "
        "image"
    )
    assert hidden_tta.shape[0] == len(grader.hidden_uint8), (
        "tta_predict returned a different number of rows than the images it was given: "
        "average the views of each image (reshape to (11, n, 10), mean over axis 0)"
    )
    assert np.all(np.isfinite(hidden_tta)), "tta_predict returned NaN or infinite values"


@pytest.mark.points(2)
def test_tta_mean_probabilities(hidden_tta: np.ndarray, grader: Any) -> None:
    """tta_predict returns mean probabilities: rows in [0, 1] summing to 1, not votes"""
    if not _shape_ok(hidden_tta, grader):
        fail("tta_predict's result does not have shape (n, 10): see the shape check")
    sums = hidden_tta.sum(axis=1)
    assert np.all(hidden_tta >= -1e-6) and np.all(hidden_tta <= 1 + 1e-6), (
        f"tta_predict returned values from {hidden_tta.min():g} to {hidden_tta.max():g}; mean "
        "probabilities lie in [0, 1]: average the softmax outputs of the views, not logits "
        "or counts"
    )
    assert np.allclose(sums, 1.0, atol=SUM_TOLERANCE), (
        f"the rows of tta_predict's result sum to {sums.min():g} to {sums.max():g}; the mean "
        "of probability rows sums to 1: take the mean over the views, not the sum"
    )
    # Votes (or one-hot answers) make rows of exact zeros and multiples of 1/11; a mean of
    # softmax outputs has no exact zero unless every view underflows.
    exact = (hidden_tta == 0) | (
        (hidden_tta > 0.05) & (np.abs(hidden_tta * N_VIEWS - np.round(hidden_tta * N_VIEWS)) < 1e-5)
    )
    assert np.mean(np.all(exact, axis=1)) < 0.5, (
        "tta_predict's rows are votes (one-hot rows or multiples of 1/11), not mean "
        "probabilities: average the predicted probabilities of the 11 views instead of "
        "counting each view's argmax"
    )


@pytest.mark.points(1)
def test_tta_views(artifacts_dir: Path) -> None:
    """tta_predict asks the network for 11 views of each image"""
    calls = _json(artifacts_dir, "tta_calls.json", "count the images tta_predict predicts")
    n, images = calls.get("n"), calls.get("images")
    if not isinstance(n, int) or not isinstance(images, int) or n <= 0:
        fail("the grader could not count the images tta_predict predicts")
    per_image = images / n
    assert images == N_VIEWS * n, (
        f"tta_predict asked the network for {per_image:g} predictions per image; the exercise "
        f"asks for {VIEWS}, predicted with the model it is given (its predict method)"
    )


@pytest.mark.points(1)
def test_tta_agrees_with_plain(hidden_tta: np.ndarray, grader: Any) -> None:
    """tta_predict averages views of the same image: close to, but not equal to, one predict"""
    if not _shape_ok(hidden_tta, grader):
        fail("tta_predict's result does not have shape (n, 10): see the shape check")
    plain = grader.plain_hidden
    assert np.max(np.abs(hidden_tta - plain)) > 1e-4, (
        "tta_predict returns exactly what one model.predict of the images returns: average "
        f"the predictions of {VIEWS}"
    )
    agreement = float(np.mean(np.argmax(hidden_tta, axis=1) == np.argmax(plain, axis=1)))
    assert agreement >= AGREEMENT, (
        f"tta_predict's class for an image agrees with the plain prediction's for only "
        f"{agreement:.0%} of the images; views of the same image should mostly agree: check "
        "that the views are small distortions (mirror, shifts of a few pixels) of each image, "
        "kept in the same order as the images"
    )


@pytest.mark.points(2)
def test_tta_cost(
    artifacts_dir: Path,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """tta_predict is vectorised: at most ~12x the time of one plain predict"""
    timing = _json(artifacts_dir, "tta_timing.json", "time tta_predict")
    series = [timing.get(key) for key in ("plain_s", "tta_s", "plain_cpu_s", "tta_cpu_s")]
    if not all(
        isinstance(values, list)
        and values
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values)
        for values in series
    ):
        fail("the grader could not time tta_predict")
    plain, tta, plain_cpu, tta_cpu = series
    accelerator = timing.get("accelerator")
    if not isinstance(accelerator, bool):
        fail("the grader could not time tta_predict")
    # Best of the rounds, as timeit does: other work only ever adds time. Wall time on an
    # accelerator (CPU time misses the device's work), CPU time on a CPU (on a shared CPU wall
    # time measures the neighbours' load; see bench/README.md). A loop over images, or one image
    # per step, pays Keras' per-call or per-step overhead n times in both.
    wall, cpu = min(tta) / min(plain), min(tta_cpu) / min(plain_cpu)
    ratio = wall if accelerator else cpu
    measure("tta_cost_ratio", ratio)
    measure("tta_cost_ratio_wall", wall)
    measure("tta_cost_ratio_cpu", cpu)
    limit = threshold("tta_cost_ratio")
    assert ratio <= limit, (
        f"tta_predict took {ratio:.1f} times as long as one model.predict of the same images; "
        f"11 views should cost about 11 times, at most {limit:g}: build all views of all "
        "images with numpy and call model.predict once on them (batch_size 32 or more), not "
        "once per image, per view or with batch_size=1"
    )
