"""Question 2: which of mu_B, sigma_B, gamma, beta each of the four vectors is."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from deepgrade.checks import fail

# Each vector's accepted spellings (after lower-casing and dropping spaces, "_", "-", "$", "\").
NAMES = {
    "gamma": {"gamma", "γ", "scale"},
    "beta": {"beta", "β", "offset", "shift", "center"},
    "mean": {"mub", "mu", "μb", "μ", "mean", "movingmean", "movingmub", "movingmu"},
    "spread": {
        "sigmab",
        "sigma",
        "σb",
        "σ",
        "variance",
        "var",
        "movingvariance",
        "movingvar",
        "sigmab2",
        "sigmab^2",
        "sigma^2",
        "σb²",
        "σ²",
        "σb^2",
        "σ^2",
        "movingsigmab",
        "movingsigma",
    },
}
ORDER = ["gamma", "beta", "mean", "spread"]
VARIANCE = {"variance", "var", "sigma^2", "sigmab^2", "σ²", "σb²", "σ^2", "σb^2", "sigma2"}
STD = {"standarddeviation", "std", "stddev", "sigma", "sigmab", "σ", "σb", "deviation"}


def _key(text: str) -> str:
    text = unicodedata.normalize("NFC", str(text)).strip().lower()
    return "".join(ch for ch in text if ch not in " _-$\\{}")


def _kind(name: str) -> str | None:
    key = _key(name)
    return next((kind for kind, spellings in NAMES.items() if key in spellings), None)


@pytest.mark.points(3)
def test_vector_order(answers: dict[str, Any]) -> None:
    """The four vectors are gamma, beta, the moving mean and the moving variance, in order"""
    given = answers["vector_names"]
    assert isinstance(given, list) and len(given) == 4, (
        "vector_names must be a list of four names, one per vector of get_weights(), each "
        'one of "gamma", "beta", "mu_B", "sigma_B"'
    )
    kinds = [_kind(name) for name in given]
    unknown = [str(name) for name, kind in zip(given, kinds, strict=True) if kind is None]
    assert not unknown, (
        f"{', '.join(repr(u) for u in unknown)} is not one of the names to choose from: "
        'write each vector as "gamma", "beta", "mu_B" or "sigma_B"'
    )
    wrong = [i + 1 for i, kind in enumerate(kinds) if kind != ORDER[i]]
    assert not wrong, (
        f"the name of vector {', '.join(map(str, wrong))} is wrong: look at which vectors start "
        "at 1 and 0, which are learned by back-propagation (they move a little) and which "
        "follow the statistics of the images (compare with the per-channel mean and variance "
        "of ax)"
    )


@pytest.mark.points(2)
def test_fourth_is_variance(answers: dict[str, Any]) -> None:
    """The fourth vector is a variance (sigma squared), not a standard deviation"""
    given = _key(answers["fourth_vector"])
    if given in VARIANCE:
        return
    if given in STD:
        fail(
            "the fourth vector is not the standard deviation of each channel: compare it with "
            "ax.std(axis=(0, 1, 2)) and with ax.var(axis=(0, 1, 2)) (the course's 0.061 is "
            "about 0.247 squared)"
        )
    fail(
        'fourth_vector must be "variance" or "standard deviation"; '
        f"{str(answers['fourth_vector'])[:40]!r} is neither"
    )
