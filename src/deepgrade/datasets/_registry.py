"""The shape every data set has, so CIFAR-10 batches or Fashion-MNIST IDX files slot in later.

A data set is a value (a frozen dataclass), not a subclass: its module builds one `Dataset` from
four plain functions, and `deepgrade.datasets` keeps a name -> Dataset table. Like papermill's
engine registry, adding one is one new module plus one line in that table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
