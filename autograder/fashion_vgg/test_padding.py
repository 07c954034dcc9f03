"""Exercise 1: pad_images, judged on images the student never saw.

A grade-time cell called pad_images on random uint8 images made from the spec's hidden seed
(hidden_inputs.images) and saved what it returned (hidden_padded.npy); this check makes the
same images and pads them itself. The images have no black pixel, so a border in the wrong
place or a resize shows. Messages never give the hidden seed or the number of images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hidden_inputs
import numpy as np
import pytest

from deepgrade.checks import fail

ADVICE = (
    "cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0) on each image, then "
    "a last axis of size 1"
)


@pytest.fixture(scope="module")
def padded(artifacts_dir: Path) -> np.ndarray:
    """What the student's pad_images returned for the grader's images."""
    path = artifacts_dir / "hidden_padded.npy"
    if path.is_symlink() or not path.is_file():
        fail(
            "the grader called pad_images on other images and got nothing back (it raised an "
            "error, returned something that is not a numeric array, or the notebook stopped "
            "before): make pad_images(images) return a numpy array"
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        fail("pad_images must return a numpy array of numbers")


@pytest.mark.points(1)
def test_pad_shape_and_dtype(padded: np.ndarray, hidden: Any) -> None:
    """pad_images returns (n, 32, 32, 1) with the images' own dtype"""
    n = int(hidden["pad_count"])
    assert padded.ndim >= 1 and padded.shape[0] == n, (
        "pad_images returned a different number of images than it was given: return one "
        "padded image per input image"
    )
    assert padded.shape[1:] == (32, 32, 1), (
        f"pad_images returned images of shape {padded.shape[1:]}; it should return "
        f"(n, 32, 32, 1): {ADVICE}"
    )
    assert padded.dtype == np.uint8, (
        f"given uint8 images, pad_images returned {padded.dtype}; keep the images' dtype "
        "(cv2.copyMakeBorder does; do not convert or scale inside pad_images)"
    )


def _offset(found: np.ndarray, images: np.ndarray) -> tuple[int, int] | None:
    """Where the original 28x28 pixels sit in the padded images, if anywhere unchanged."""
    for top in range(found.shape[1] - 27):
        for left in range(found.shape[2] - 27):
            if np.array_equal(found[:, top : top + 28, left : left + 28], images):
                return top, left
    return None


@pytest.mark.points(2)
def test_pad_values(
    padded: np.ndarray, hidden: Any, grader_pad: Callable[[np.ndarray], np.ndarray]
) -> None:
    """pad_images keeps every pixel, centred, with a black 2-pixel border"""
    images = hidden_inputs.images(hidden["pad_seed"], hidden["pad_count"])
    n = len(images)
    if padded.size != n * 32 * 32 or not np.issubdtype(padded.dtype, np.number):
        fail(
            f"pad_images should return n images of 32x32 pixels (shape (n, 32, 32, 1)); it "
            f"returned images of shape {padded.shape[1:]}: {ADVICE}"
        )
    found = padded.reshape(n, 32, 32)
    expected = grader_pad(images)[..., 0]
    if np.array_equal(found, expected):
        return
    where = _offset(found, images)
    if where is None:
        fail(
            "pad_images changed the images' pixels (a resize or a zoom interpolates them): "
            f"add a border instead, {ADVICE}"
        )
    if where != (2, 2):
        top, left = where
        fail(
            f"the original pixels start at row {top} and column {left} of the padded image; "
            "they should start at row 2 and column 2 (2 pixels on each of the four sides)"
        )
    fail("the 2-pixel border must be black (value 0): use cv2.BORDER_CONSTANT with value=0")
