"""The grader's own 11-view means: what a correct tta_predict returns, computed in stage 2.

The notebook prescribes the views (the image, its mirror, both shifted 2 pixels left, right, up
and down, and one diagonal shift of 2 pixels); students may shift by padding with
np.pad(mode="edge"), with np.roll ("wrap") or with np.pad's default zeros ("constant"), and may
pick any of the eight diagonal views. The checks compare the student's output with the mean of
each of these variants and accept the closest when it is close enough: the number of views and
the averaging are judged from the output, never from a count the student's kernel reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PAD = 2
N_CLASSES = 10
# (mirrored, rows down, columns right)
BASE_VIEWS = (
    (False, 0, 0),
    (True, 0, 0),
    (False, 0, 2),
    (False, 0, -2),
    (False, 2, 0),
    (False, -2, 0),
    (True, 0, 2),
    (True, 0, -2),
    (True, 2, 0),
    (True, -2, 0),
)
N_VIEWS = len(BASE_VIEWS) + 1  # and one diagonal
REFERENCE_DIAGONAL = (False, 2, 2)  # the reference solution's
DIAGONALS = tuple((m, d, r) for m in (False, True) for d in (2, -2) for r in (2, -2))
FILLS = ("edge", "wrap", "constant")
# The student's mean may differ from the grader's by round-off (another batch layout, another
# device): it must lie within this fraction of the distance between one plain predict and the
# 11-view mean. Ten or twelve views land near 1/11 of it, a plain predict at 1.
RELATIVE_TOLERANCE = 0.05
VOTE_AGREEMENT = 0.95  # rows whose vote count equals the grader's

View = tuple[bool, int, int]
Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Variant:
    """One accepted set of 11 views: how shifts are filled and which diagonal is used."""

    fill: str
    diagonal: View

    @property
    def views(self) -> tuple[View, ...]:
        return (*BASE_VIEWS, self.diagonal)


VARIANTS = tuple(Variant(fill, diagonal) for fill in FILLS for diagonal in DIAGONALS)


def view(images: np.ndarray, spec: View, fill: str) -> np.ndarray:
    """One view of every image (n, h, w, c): mirrored left-right, then shifted."""
    mirrored, down, right = spec
    if (down, right) == (0, 0):
        return images[:, :, ::-1] if mirrored else images
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode=fill)
    source = padded[:, :, ::-1] if mirrored else padded
    height, width = images.shape[1:3]
    top, left = PAD - down, PAD - right
    return source[:, top : top + height, left : left + width]


def predict_views(
    predict: Predict, images: np.ndarray, pairs: list[tuple[View, str]]
) -> dict[tuple[View, str], np.ndarray]:
    """The grader's predictions of each (view, fill) of the images, in one predict call."""
    unique: dict[tuple[View, str], None] = {}
    for spec, fill in pairs:
        key = (spec, "none" if spec[1:] == (0, 0) else fill)
        unique[key] = None
    keys = list(unique)
    stacked = np.concatenate([view(images, spec, fill) for spec, fill in keys])
    probabilities = np.asarray(predict(stacked), dtype=np.float64)
    rows = probabilities.reshape(len(keys), len(images), -1)
    found = dict(zip(keys, rows, strict=True))
    return {
        (spec, fill): found[(spec, "none" if spec[1:] == (0, 0) else fill)] for spec, fill in pairs
    }


def variant_mean(predicted: dict[tuple[View, str], np.ndarray], variant: Variant) -> np.ndarray:
    return np.mean([predicted[(spec, variant.fill)] for spec in variant.views], axis=0)


def variant_votes(predicted: dict[tuple[View, str], np.ndarray], variant: Variant) -> np.ndarray:
    """How many of the variant's views choose each class: what a vote count returns."""
    rows = [predicted[(spec, variant.fill)] for spec in variant.views]
    classes = rows[0].shape[1]
    return np.sum([np.eye(classes)[np.argmax(row, axis=1)] for row in rows], axis=0)


# How the output may combine the 11 views and still show that it used those 11 views: the mean
# (what the exercise asks), their sum, a vote count or vote fractions. The averaging itself is
# judged by the mean-probabilities check; this one judges the views.
KINDS = ("mean", "sum", "votes", "vote fractions")


@dataclass(frozen=True)
class Match:
    """How close the student's output came to the grader's 11 views of one variant."""

    variant: Variant
    kind: str  # one of KINDS
    distance: float  # mean absolute difference to the grader's mean (after undoing `kind`)
    plain_distance: float  # the same for one plain predict: the scale of "views matter"
    accepted: bool


def _judge(
    predicted: dict[tuple[View, str], np.ndarray],
    variant: Variant,
    output: np.ndarray,
    plain: np.ndarray,
) -> Match:
    mean = variant_mean(predicted, variant)
    plain_distance = float(np.mean(np.abs(plain - mean)))
    allowed = RELATIVE_TOLERANCE * plain_distance + 1e-7
    votes = variant_votes(predicted, variant)
    n_views = len(variant.views)
    best: Match | None = None
    for kind in KINDS:
        if kind in ("mean", "sum"):
            scaled = output / n_views if kind == "sum" else output
            distance = float(np.mean(np.abs(scaled - mean)))
            accepted = distance <= allowed
        else:  # discrete: a near-tie's argmax may flip with round-off, in a few rows
            counts = output * n_views if kind == "vote fractions" else output
            same = np.all(np.abs(counts - votes) < 1e-4, axis=1)
            distance = float(np.mean(np.abs(counts / n_views - mean)))
            accepted = float(np.mean(same)) >= VOTE_AGREEMENT
        match = Match(variant, kind, distance, plain_distance, accepted)
        if best is None or (match.accepted, -match.distance) > (best.accepted, -best.distance):
            best = match
    assert best is not None
    return best


def closest_variant(predict: Predict, images: np.ndarray, output: np.ndarray) -> Match:
    """The accepted variant and kind nearest to `output` (images already scaled), or the
    nearest one when none is accepted."""
    pairs = [(spec, fill) for fill in FILLS for spec in (*BASE_VIEWS, *DIAGONALS)]
    predicted = predict_views(predict, images, pairs)
    plain = predicted[(BASE_VIEWS[0], FILLS[0])]
    best: Match | None = None
    for variant in VARIANTS:
        match = _judge(predicted, variant, output, plain)
        if best is None or (match.accepted, -match.distance) > (best.accepted, -best.distance):
            best = match
    assert best is not None
    return best


def matches(predict: Predict, images: np.ndarray, output: np.ndarray, found: Match) -> bool:
    """Whether `output` combines the views of these images as `found` did for the first."""
    variant = found.variant
    predicted = predict_views(predict, images, [(spec, variant.fill) for spec in variant.views])
    plain = predicted[(BASE_VIEWS[0], variant.fill)]
    match = _judge(predicted, variant, output, plain)
    return match.accepted and match.kind == found.kind
