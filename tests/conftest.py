"""Shared test helpers: tiny plain-Python notebooks, and a fixture for tests that need bwrap."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest

from deepgrade.sandbox import Bwrap

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


def require_sandbox_or_skip() -> Bwrap:
    """The working bwrap. Without one the test is skipped, except in CI (the environment
    variable CI is set): CI installs bubblewrap, so a missing sandbox there fails the run."""
    from deepgrade.sandbox import find_bwrap, unavailable_reason

    tool = find_bwrap()
    if tool is None:
        message = f"needs a working bubblewrap: {unavailable_reason()}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the sandbox: {message}")
        pytest.skip(reason=message)
    return tool


@pytest.fixture(scope="session")
def sandbox_tool() -> Bwrap:
    return require_sandbox_or_skip()


@pytest.fixture
def bwrap(sandbox_tool: Bwrap) -> Bwrap:
    """The working bwrap; skips where there is none, fails in CI (see above)."""
    return sandbox_tool


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium for the browser tests. Without it the test is skipped,
    except in CI, which installs the `chromium` package (so a missing browser fails there)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "needs Debian's chromium (apt install chromium) for the browser tests"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the browser: {message}")
        pytest.skip(reason=message)
    return found
