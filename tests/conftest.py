"""Shared test helpers: tiny plain-Python notebooks, and a fixture for tests that need bwrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest

DEFAULT_PARAMETERS = 'DATA_DIR = "."\nARTIFACT_DIR = "artifacts"\nEPOCHS = 1\nSEED = 0\n'


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook: a `parameters` cell, then one code cell per source string."""

    def make(
        cells: Sequence[str], *, parameters: str = DEFAULT_PARAMETERS, name: str = "nb.ipynb"
    ) -> Path:
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell(parameters)
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, *(nbformat.v4.new_code_cell(src) for src in cells)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        path = tmp_path / name
        nbformat.write(nb, path)
        return path

    return make


@pytest.fixture
def bwrap() -> str:
    """The working bwrap; skips the test where there is none (CI installs it, so it runs)."""
    from deepgrade.sandbox import find_bwrap, unavailable_reason

    path = find_bwrap()
    if path is None:
        pytest.skip(reason=f"needs a working bubblewrap: {unavailable_reason()}")
    return path
