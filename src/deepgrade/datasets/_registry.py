"""The shape every data set has, so CIFAR-10 batches or Fashion-MNIST IDX files slot in later.

A data set is a value (a frozen dataclass), not a subclass: its module builds one `Dataset` from
four plain functions, and `deepgrade.datasets` keeps a name -> Dataset table. Like papermill's
engine registry, adding one is one new module plus one line in that table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

# file name -> array name inside the file -> (shape, dtype); "" names a file that is one array.
Layout = Mapping[str, Mapping[str, tuple[tuple[int, ...], str]]]


@dataclass(frozen=True)
class Dataset:
    """One data set: its files, how to fake, check and read them."""

    name: str
    files: tuple[str, ...]  # the real files' names; the look-alike uses the same
    layout: Layout  # what the real files hold (datasets/manifest.toml says the same)
    sizes: Mapping[str, int]  # default sizes of the look-alike: synth's keywords
    synth: Callable[..., None]  # (out_dir, *, seed, **sizes): write the look-alike there
    verify: Callable[[Path], None]  # raises InputError naming the bad file
    load: Callable[[Path], Any]
    # Bump when the look-alike's pixels change, so caches rebuild instead of serving old ones.
    recipe_version: int = 1


def balanced_splits(
    render: Callable[[NDArray[Any], Any], NDArray[Any]],
    n_classes: int,
    *,
    seed: int,
    n_train: int,
    n_test: int,
    least_train: int = 1,
) -> dict[str, NDArray[Any]]:
    """x_train, y_train, x_test, y_test of a look-alike: balanced, shuffled labels painted by
    `render(labels, rng)`.

    Every look-alike shares this recipe. Train and test come from separate streams of `seed`,
    so changing n_train leaves the test images unchanged (and the reverse).
    """
    import numpy as np

    for key, n, least in (
        ("seed", seed, 0),
        ("n_train", n_train, least_train),
        ("n_test", n_test, 1),
    ):
        if isinstance(n, bool) or not isinstance(n, int) or n < least:
            raise ValueError(f"{key} must be an integer >= {least}, got {n!r}")
    arrays: dict[str, NDArray[Any]] = {}
    for stream, (prefix, n) in enumerate((("train", n_train), ("test", n_test))):
        rng = np.random.default_rng([seed, stream])
        labels = rng.permutation(np.arange(n, dtype=np.int64) % n_classes)
        arrays[f"x_{prefix}"] = render(labels, rng)
        arrays[f"y_{prefix}"] = labels
    return arrays
