"""Exercise 3: tta_predict, called by the grader on hidden images with its own resnet1.

Judged on its measured calls only (the `rounds` fixture): the images are picked with a nonce
stage 1's runner drew as the call started, the output is compared with the grader's own 11-view
means (tta_views.py), and the cost is the CPU time the runner measured outside the student's
kernel over the grader's own plain predict of the same images, measured here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tta_views
from hidden_inputs import scale
from tta_views import N_CLASSES, N_VIEWS

from deepgrade.checks import fail

SUM_TOLERANCE = 1e-3  # float32 means of float32 softmax rows sum to 1 within ~1e-6
AGREEMENT = 0.8  # TTA changes some argmaxes of plain prediction, never most of them
VIEWS = "11 views (the image, its mirror, both shifted 2 pixels four ways, one diagonal shift)"
BASELINE_ROUNDS = 5


@pytest.fixture(scope="module")
def first(rounds: list[Any]) -> Any:
    """The first measured call: the output the views, mean and agreement checks judge."""
    if not rounds or rounds[0].name != "tta_1":
        fail(
            "the grader could not call tta_predict on images you never saw (the notebook "
            "stopped or timed out before): run the whole notebook and make tta_predict work "
            "on any number of images"
        )
    return rounds[0]


@pytest.fixture(scope="module")
def hidden_tta(first: Any) -> np.ndarray:
    if first.output is None:
        fail(
            "the grader called tta_predict on images you never saw and got nothing back (it "
            "raised an error, or did not return a numeric array): run the whole notebook and "
            "make tta_predict work on any number of images"
        )
    return first.output


@pytest.fixture(scope="module")
def match(first: Any, hidden_tta: np.ndarray, grader: Any) -> tta_views.Match | None:
    """The grader's 11-view mean closest to the output (None when the shape is wrong)."""
    if not _shape_ok(hidden_tta, first):
        return None
    return tta_views.closest_variant(grader.predict, scale(first.images), hidden_tta)


def _shape_ok(array: np.ndarray, first: Any) -> bool:
    return array.shape == (len(first.images), N_CLASSES) and bool(np.all(np.isfinite(array)))


@pytest.mark.points(1)
def test_tta_shape(hidden_tta: np.ndarray, first: Any) -> None:
    """tta_predict returns one row of 10 class scores per image"""
    assert hidden_tta.ndim == 2 and hidden_tta.shape[1:] == (N_CLASSES,), (
        f"tta_predict returned an array of {hidden_tta.ndim} axes shaped {hidden_tta.shape[1:]} "
        "after the first; it should return shape (n, 10): one row of class probabilities per "
        "image"
    )
    assert hidden_tta.shape[0] == len(first.images), (
        "tta_predict returned a different number of rows than the images it was given: "
        "average the views of each image (reshape to (11, n, 10), mean over axis 0)"
    )
    assert np.all(np.isfinite(hidden_tta)), "tta_predict returned NaN or infinite values"


@pytest.mark.points(2)
def test_tta_mean_probabilities(hidden_tta: np.ndarray, first: Any) -> None:
    """tta_predict returns mean probabilities: rows in [0, 1] summing to 1, not votes"""
    if not _shape_ok(hidden_tta, first):
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
def test_tta_views(
    hidden_tta: np.ndarray,
    first: Any,
    match: tta_views.Match | None,
    grader: Any,
    measure: Callable[[str, float], None],
) -> None:
    """tta_predict combines the predictions of the 11 views of each image"""
    if match is None:
        fail("tta_predict's result does not have shape (n, 10): see the shape check")
    measure("tta_views_distance", match.distance / max(match.plain_distance, 1e-12))
    if match.accepted:
        return
    plain = grader.predict(scale(first.images))
    if np.mean(np.abs(hidden_tta - plain)) <= tta_views.RELATIVE_TOLERANCE * match.plain_distance:
        fail(
            "tta_predict returns one prediction per image (what one model.predict returns), "
            f"not the mean of {VIEWS}: build all 11 views and average their predictions"
        )
    fail(
        f"tta_predict's result is not the mean of the grader's predictions of the {VIEWS} of "
        'each image: shift by padding 2 pixels (np.pad with mode "edge", or np.roll) and '
        "cropping, mirror left-right, predict all views with the model you are given and take "
        "the mean of the probabilities over the views"
    )


@pytest.mark.points(1)
def test_tta_agrees_with_plain(hidden_tta: np.ndarray, first: Any, grader: Any) -> None:
    """tta_predict averages views of the same image: close to, but not equal to, one predict"""
    if not _shape_ok(hidden_tta, first):
        fail("tta_predict's result does not have shape (n, 10): see the shape check")
    plain = grader.predict(scale(first.images))
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


def _baseline(grader: Any, images: np.ndarray) -> tuple[float, float]:
    """The grader's own plain predict of the same images, in this process: (CPU s, wall s),
    the cheapest of a few rounds after a warm-up (timeit's rule: other work only adds)."""
    x = scale(images)
    grader.model.predict(x, verbose=0)
    cpu, wall = [], []
    for _ in range(BASELINE_ROUNDS):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        grader.model.predict(x, verbose=0)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    return min(cpu), min(wall)


def _counted(rounds: list[Any], match: tta_views.Match | None, grader: Any) -> list[Any]:
    """The measured calls whose output is the 11-view mean the first call was recognised as
    (only the first when none was): a cheap wrong answer never sets the cost."""
    first = rounds[0]
    if first.output is None or not _shape_ok(first.output, first):
        return []
    if match is None or not match.accepted:
        return [first]
    counted = [first]
    for later in rounds[1:]:
        if (
            later.output is not None
            and _shape_ok(later.output, later)
            and tta_views.matches(grader.predict, scale(later.images), later.output, match)
        ):
            counted.append(later)
    return counted


@pytest.mark.points(2)
def test_tta_cost(
    rounds: list[Any],
    first: Any,
    hidden_tta: np.ndarray,
    match: tta_views.Match | None,
    grader: Any,
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """tta_predict is vectorised: at most ~12x the CPU time of one plain predict"""
    counted = _counted(rounds, match, grader)
    if not counted:
        fail("tta_predict's result does not have shape (n, 10): see the shape check")
    plain_cpu, plain_wall = _baseline(grader, first.images)
    # CPU time: on a shared CPU wall time measures the neighbours' load (bench/README.md). The
    # runner sums every process of the sandbox but itself, threads and children included.
    cpu = min(r.cpu_s for r in counted) / max(plain_cpu, 1e-6)
    wall = min(r.wall_s for r in counted) / max(plain_wall, 1e-6)
    measure("tta_cost_ratio", cpu)
    measure("tta_cost_ratio_wall", wall)
    measure("tta_cpu_s", min(r.cpu_s for r in counted))
    measure("plain_cpu_s", plain_cpu)
    limit = threshold("tta_cost_ratio")
    assert cpu <= limit, (
        f"tta_predict took {cpu:.1f} times the CPU time of one model.predict of the same "
        f"images; 11 views should cost about 11 times, at most {limit:g}: build all views of "
        "all images with numpy and call model.predict once on them (batch_size 32 or more), "
        "not once per image, per view or with batch_size=1"
    )
