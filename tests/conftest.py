"""Shared test helpers: tiny plain-Python notebooks, and a fixture for tests that need bwrap."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepgrade.checks.warm import CheckServers
from deepgrade.sandbox import Bwrap

DEFAULT_PARAMETERS = 'DATA_DIR = "."\nARTIFACT_DIR = "artifacts"\nEPOCHS = 1\nSEED = 0\n'


# The modules whose tests execute notebooks (a `slow` mark) run after every quick module, and the
# whole-grader batches of test_end_to_end.py last: a failure in the quick tests shows within
# minutes, and .ci/run grades its own steps beside the quick part (one core each).
LAST_MODULE = "test_end_to_end.py"


@pytest.hookimpl(trylast=True)  # after pytest has grouped the items by their fixtures
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        return 2 if item.path.name == LAST_MODULE else int(item.path in slow_modules)

    items.sort(key=rank)  # stable: each module keeps its own order and stays in one piece


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


@pytest.fixture(scope="module")
def warm_checks() -> Iterator[CheckServers]:
    """The warm check servers `deepgrade grade` checks a batch with, shared by one module's
    tests: each check run forks a server that imported Keras and the checks once, instead of
    starting an interpreter of its own (about 7 s a run on a 2-core CPU).
    tests/test_warm_checks.py proves that a warm report equals a cold one."""
    with CheckServers() as servers:
        yield servers


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


# --- a fake NVIDIA driver: the files deepgrade.nvidia reads, under a temporary root ---------

GPU_UUIDS = ("GPU-0a1b2c3d-0000-1111-2222-333344445555", "GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff")


def make_gpu_tree(root: Path, gpus: int = 2, *, uvm: bool = True) -> dict[str, Path]:
    """A driver tree as an NVIDIA host has it: /proc/driver/nvidia (version, params, one
    information file per GPU), /dev nodes (plain files here) and the GPUs' sysfs entries."""
    proc, dev, sys_pci = root / "proc", root / "dev", root / "sys"
    (proc / "gpus").mkdir(parents=True)
    dev.mkdir()
    (proc / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
    )
    (proc / "params").write_text("ModifyDeviceFiles: 1\n")
    for index in range(gpus):
        bus = f"0000:{0x17 + index * 0x48:02x}:00.0"
        folder = proc / "gpus" / bus
        folder.mkdir()
        uuid = GPU_UUIDS[index] if index < len(GPU_UUIDS) else f"GPU-{index:08d}"
        (folder / "information").write_text(
            f"Model: \t\t NVIDIA H200\nIRQ:   \t\t 180\nGPU UUID: \t {uuid}\n"
            f"Video BIOS: \t 96.00.a5.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
            f"Bus Location: \t {bus}\nDevice Minor: \t {index}\n"
        )
        (dev / f"nvidia{index}").write_text(f"gpu {index}\n")
        (sys_pci / bus).mkdir(parents=True)
        (sys_pci / bus / "numa_node").write_text(f"{index}\n")
    (dev / "nvidiactl").write_text("control\n")
    if uvm:
        (dev / "nvidia-uvm").write_text("uvm\n")
        (dev / "nvidia-uvm-tools").write_text("uvm tools\n")
    return {"proc": proc, "dev": dev, "sys_pci": sys_pci}


class FakeNvml:
    """The few pynvml calls deepgrade makes, with settable utilization and memory (MiB)."""

    MIB = 1024 * 1024

    class _Util:
        def __init__(self, gpu: float) -> None:
            self.gpu, self.memory = gpu, 0.0

    class _Memory:
        def __init__(self, total: int, used: int) -> None:
            self.total, self.used, self.free = total, used, total - used

    def __init__(self, total_mb: int = 143771) -> None:
        self.total_mb = total_mb
        self.busy: dict[str, float] = {}
        self.used_mb: dict[str, int] = {}

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return uuid

    def nvmlDeviceGetHandleByPciBusId(self, bus: str) -> str:
        return bus

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> FakeNvml._Util:
        return self._Util(self.busy.get(handle, 0.0))

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> FakeNvml._Memory:
        return self._Memory(self.total_mb * self.MIB, self.used_mb.get(handle, 0) * self.MIB)


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    """signs_cnn's smoke settings with no data files: for batch tests with a fake grader."""
    from deepgrade.exercise import load_exercise
    from deepgrade.grade import GradeSettings
    from deepgrade.profiles import resolve_profile

    spec = load_exercise(Path(__file__).resolve().parents[1] / "autograder", "signs_cnn")
    return GradeSettings(
        spec=spec,
        profile=resolve_profile(spec, "smoke", data_files=()),
        release_notebook=tmp_path / "release.ipynb",
        workdir=tmp_path / "runs",
    )
