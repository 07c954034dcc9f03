"""Where BatchNormalization's moving mean and variance must be after model.fit, and how far
they may stray: derived from the training images' per-image statistics, the number of update
steps and Keras' momentum (the derivation is in README.md and in Expected's docstring).

Plain functions, no fixtures: conftest.py's `expected` fixture applies them to the grader's
data, and tests/test_bn_discovery_checks.py checks them against a replay of fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BATCH = 100  # program 7's batch size, which the notebook asks for
MOMENTUM = 0.99  # keras.layers.BatchNormalization()'s default
# Relative error of a batch statistic that Keras computes in float32 (a reduction over
# 100 x 32 x 32 values per channel): measured with TensorFlow on this CPU at most 4e-4 of the
# mean, and systematic within a run (it does not average out over the steps); bound 1e-3.
FLOAT32_RELATIVE = 1e-3
FLOAT32_ABSOLUTE = 1e-5  # round-off of the moving-average updates themselves


@dataclass(frozen=True)
class PixelStats:
    """Per-image, per-channel first and second moments of the training images in [0, 1].

    Everything the moving averages depend on: a batch's mean is the mean of its images'
    means (all images have 32x32 pixels), its (biased, as Keras computes it) variance is the
    mean of its images' mean squares minus the square of its mean.
    """

    means: np.ndarray  # (n, 3): each image's mean per channel
    squares: np.ndarray  # (n, 3): each image's mean of squares per channel

    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    @property
    def mean(self) -> np.ndarray:
        """The per-channel mean of all training pixels."""
        return self.means.mean(axis=0)

    @property
    def variance(self) -> np.ndarray:
        """The per-channel (population) variance of all training pixels."""
        return self.squares.mean(axis=0) - self.mean**2


def pixel_stats(x_uint8: np.ndarray) -> PixelStats:
    """PixelStats of (n, 32, 32, 3) uint8 images, scaled to [0, 1] in float64."""
    x = np.asarray(x_uint8, dtype=np.float64) / 255.0
    return PixelStats(means=x.mean(axis=(1, 2)), squares=(x**2).mean(axis=(1, 2)))


@dataclass(frozen=True)
class Expected:
    """Where the moving averages should be after `steps` updates, and how far they may stray.

    After S updates with momentum m from the initial value v0, a moving average is
    m^S v0 + sum_k w_k b_k over the batch statistics b_k, with w_k = (1-m) m^(S-k). Its
    expectation is m^S v0 + (1 - m^S) E[b]. Its spread comes from the batches: model.fit
    shuffles the N images every epoch and cuts them into N/B batches, so a batch's mean varies
    with variance V = tau^2/B (N-B)/(N-1) (tau^2: the variance of the images' own means), and
    two batches of the same epoch are negatively correlated (their means add up to the same
    total): Cov = -V/(nb-1). Hence Var = V * sum over epochs of
    (nb sum w^2 - (sum w)^2) / (nb - 1). The batch variance is treated the same way through
    its first-order part, mean(q_i - 2 mu m_i) (q_i: an image's mean square), plus its
    second-order part, which does not cancel within an epoch.
    """

    steps: int
    mean: np.ndarray  # (3,) expected moving_mean
    mean_sd: np.ndarray  # (3,) its standard deviation
    variance: np.ndarray  # (3,) expected moving_variance
    variance_sd: np.ndarray
    # What float32 arithmetic may add on top, whatever the batches (FLOAT32_RELATIVE)
    mean_slack: np.ndarray
    variance_slack: np.ndarray


def shuffled_weight_factor(steps: int, batches_per_epoch: int, momentum: float) -> float:
    """Var(sum_k w_k b_k) / Var(b) for per-epoch shuffled batches (see Expected)."""
    if batches_per_epoch <= 1:
        return 0.0  # every batch is the whole training set: no sampling spread at all
    k = np.arange(1, steps + 1)
    weights = (1.0 - momentum) * momentum ** (steps - k).astype(np.float64)
    nb = batches_per_epoch
    total = 0.0
    for start in range(0, steps, nb):  # one epoch at a time
        w = weights[start : start + nb]
        total += (nb * float(np.sum(w**2)) - float(np.sum(w)) ** 2) / (nb - 1)
    return max(total, 0.0)


def sum_squared_weights(steps: int, momentum: float) -> float:
    """sum_k w_k^2: Var(sum_k w_k b_k) / Var(b) for independent batches."""
    return (1.0 - momentum) / (1.0 + momentum) * (1.0 - momentum ** (2 * steps))


def expected_moving_stats(
    stats: PixelStats, steps: int, batch: int = BATCH, momentum: float = MOMENTUM
) -> Expected:
    """Expected moving mean and variance after `steps` updates on batches of `batch` images."""
    n, m = stats.n, momentum
    b = min(batch, n)
    fpc = (n - b) / (n - 1) if n > 1 else 0.0  # drawing a batch without replacement
    mu = stats.mean
    batch_mean_var = stats.means.var(axis=0) / b * fpc  # V: the variance of a batch's mean
    linear = stats.squares - 2.0 * mu * stats.means  # a batch variance's first-order part
    batch_var_var = linear.var(axis=0) / b * fpc
    decay = m**steps
    factor = shuffled_weight_factor(steps, math.ceil(n / b), m)
    # The second-order part of a batch variance, -(batch mean - mu)^2, does not cancel within
    # an epoch: (batch mean - mu)^2 / V is about chi-squared with one degree of freedom, so it
    # varies with variance 2 V^2, nearly independently from batch to batch.
    quadratic = sum_squared_weights(steps, m) * 2.0 * batch_mean_var**2
    variance = stats.variance - batch_mean_var  # E[batch variance]
    return Expected(
        steps=steps,
        mean=(1.0 - decay) * mu,  # starts at 0
        mean_sd=np.sqrt(factor * batch_mean_var),
        variance=decay + (1.0 - decay) * variance,  # starts at 1
        variance_sd=np.sqrt(factor * batch_var_var + quadratic),
        mean_slack=(1.0 - decay) * np.abs(mu) * FLOAT32_RELATIVE + FLOAT32_ABSOLUTE,
        variance_slack=(1.0 - decay) * variance * FLOAT32_RELATIVE + FLOAT32_ABSOLUTE,
    )


def training_steps(n_train: int, epochs: int, batch: int = BATCH) -> int:
    """Optimizer (and moving-average) updates of model.fit: one per batch, per epoch."""
    return math.ceil(n_train / batch) * epochs
