"""GPUs on a CPU machine: the driver's files, isolation, packing and the probe, against a fake
driver tree and a fake NVML (tests/conftest.py). What only a real GPU can show is marked `gpu`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import GPU_UUIDS, make_gpu_tree

from deepgrade import _gpu_probe, _stage1_runner, execute, nvidia, sandbox
from deepgrade.execute import kernel_env
from deepgrade.gpuslots import HEADROOM, GpuSlot, plan_slots
from deepgrade.nvidia import GpuError
from deepgrade.results import Verdict


def _host(tmp_path: Path, gpus: int = 2, *, uvm: bool = True) -> nvidia.GpuHost:
    return nvidia.read_host(**make_gpu_tree(tmp_path / "driver", gpus, uvm=uvm))


# ---------------------------------------------------------------- the driver's files


def test_the_driver_version_is_read_from_the_proprietary_and_the_open_modules(
    tmp_path: Path,
) -> None:
    """The open kernel modules word it differently: an H200 printed "(driver for)" once."""
    host = _host(tmp_path)
    (host.proc / "version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  "
        "(dvs-builder@U16-I3-B05-1-1)  Thu Oct 30 05:42:11 UTC 2026\n"
        "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n"
    )
    assert nvidia.read_host(host.proc, host.dev, host.sys_pci).driver_version == "580.159.04"


def test_the_driver_tree_is_read_in_nvidia_smi_order(tmp_path: Path) -> None:
    host = _host(tmp_path)
    assert [(g.index, g.minor, g.bus_id, g.uuid) for g in host.gpus] == [
        (0, 0, "0000:17:00.0", GPU_UUIDS[0]),
        (1, 1, "0000:5f:00.0", GPU_UUIDS[1]),
    ]
    assert host.gpus[0].model == "NVIDIA H200" and host.gpus[0].label == "GPU 0 (NVIDIA H200)"
    assert host.driver_version == "550.54.15"
    assert host.missing_nodes(host.gpus[1]) == []
    empty = nvidia.read_host(tmp_path / "none", tmp_path / "none", tmp_path / "none")
    assert empty.gpus == () and empty.nodes == frozenset()


def test_gpus_are_chosen_by_index_uuid_or_bus_and_unknown_ones_refused(tmp_path: Path) -> None:
    host = _host(tmp_path)
    assert [g.index for g in nvidia.select(host, ["1", GPU_UUIDS[0].upper(), "1"])] == [1, 0]
    assert nvidia.select(host, ["0000:5f:00.0"])[0].index == 1
    with pytest.raises(
        GpuError, match=r"GPU '3', which the NVIDIA driver does not list; it lists 0"
    ):
        nvidia.select(host, ["0", "3"])
    with pytest.raises(GpuError, match="lists no GPU on this host"):
        nvidia.select(nvidia.read_host(tmp_path / "x", tmp_path / "x"), ["0"])


def test_missing_uvm_nodes_are_made_with_nvidia_modprobe_or_refused(tmp_path: Path) -> None:
    paths = make_gpu_tree(tmp_path / "driver", 1, uvm=False)
    host = nvidia.read_host(**paths)
    assert host.missing_nodes(host.gpus[0]) == ["nvidia-uvm"]
    calls: list[list[str]] = []

    def modprobe(argv: list[str]) -> int:  # the setuid tool makes the nodes
        calls.append(argv)
        if argv[1:] == ["-u", "-c", "0"]:
            (paths["dev"] / "nvidia-uvm").write_text("")
        return 0

    made = nvidia.create_missing_nodes(
        host, host.gpus, modprobe="/usr/bin/nvidia-modprobe", run=modprobe
    )
    assert calls == [
        ["/usr/bin/nvidia-modprobe", "-c", "0"],
        ["/usr/bin/nvidia-modprobe", "-u", "-c", "0"],
    ]
    assert made.missing_nodes(made.gpus[0]) == []

    (paths["dev"] / "nvidia-uvm").unlink()
    with pytest.raises(GpuError) as refused:
        nvidia.create_missing_nodes(host, host.gpus, modprobe="", run=modprobe)
    text = str(refused.value)
    assert str(paths["dev"] / "nvidia-uvm") in text and "nvidia-modprobe is not installed" in text
    assert "would train on the CPU" in text and "nvidia-modprobe -u -c 0" in text
    with pytest.raises(GpuError, match="did not create them"):
        nvidia.create_missing_nodes(host, host.gpus, modprobe="/bin/true", run=lambda argv: 0)


# ---------------------------------------------------------------- what one sandbox sees


def test_a_sandbox_gets_its_gpu_the_control_nodes_and_nothing_else(tmp_path: Path) -> None:
    host = _host(tmp_path)
    view = nvidia.sandbox_view(host, host.gpus[1])
    inside = [dest for _, dest in view.devices]
    assert inside == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia1"]
    assert "/dev/nvidia0" not in inside
    assert view.masks == (("/proc/driver/nvidia", nvidia.MASK_BYTES),)
    dests = {m.dest for m in view.mounts}
    assert "/proc/driver/nvidia/gpus/0000:5f:00.0" in dests
    assert not any("0000:17:00.0" in d for d in dests)
    assert {"/proc/driver/nvidia/version", "/proc/driver/nvidia/params"} <= dests
    assert "/sys/bus/pci/devices/0000:5f:00.0/numa_node" in dests
    assert all(not m.writable for m in view.mounts)
    assert view.env["CUDA_VISIBLE_DEVICES"] == GPU_UUIDS[1]


def test_the_sandbox_command_binds_only_the_assigned_gpu(
    tmp_path: Path, make_notebook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path)
    slot = GpuSlot(nvidia.sandbox_view(host, host.gpus[0]), sharing=2, memory_fraction=0.45)
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: "/usr/bin/bwrap")
    job = execute._Job({}, 5, 10, 1024, 3)
    argv = execute._sandbox_plan(job, make_notebook(["pass"]), [], slot).argv
    binds = [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--dev-bind"]
    assert (str(tmp_path / "driver/dev/nvidia0"), "/dev/nvidia0") in binds
    assert not any(dest == "/dev/nvidia1" for _, dest in binds)
    assert argv.index("/proc/driver/nvidia") < argv.index("/proc/driver/nvidia/version")
    envs = dict((argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--setenv")
    assert envs["CUDA_VISIBLE_DEVICES"] == GPU_UUIDS[0]
    assert envs["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    assert envs["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert argv[argv.index("--gpu-probe") + 1] == "/opt/deepgrade/gpu_probe.py"
    cpu = execute._sandbox_plan(job, make_notebook(["pass"]), [], None).argv
    assert "--dev-bind" not in cpu and "--gpu-probe" not in cpu
    assert ("CUDA_VISIBLE_DEVICES", "") in [
        (cpu[i + 1], cpu[i + 2]) for i, a in enumerate(cpu) if a == "--setenv"
    ]


def _procfs_folder() -> str:
    """A folder every procfs has, standing in for /proc/driver/nvidia on a host without it."""
    return "/proc/driver" if Path("/proc/driver").is_dir() else "/proc/tty"


def test_inside_a_real_sandbox_only_the_assigned_gpu_exists(tmp_path: Path, bwrap: Any) -> None:
    """bubblewrap masks a procfs folder with the GPU's own entries and binds one node: the
    mechanics of the isolation, on the fake driver tree (the real driver: a `gpu` test)."""
    host = _host(tmp_path)
    proc = _procfs_folder()
    view = nvidia.sandbox_view(host, host.gpus[1], proc_dest=proc)
    spec = sandbox.SandboxSpec(
        mounts=(*sandbox.python_mounts(), *view.mounts), tmpfs=view.masks, devices=view.devices
    )
    script = (
        "import os, json; print(json.dumps({'dev': sorted(n for n in os.listdir('/dev') if "
        f"n.startswith('nvidia')), 'proc': sorted(os.listdir('{proc}/gpus')), "
        f"'node': open('/dev/nvidia1').read(), 'version': open('{proc}/version').read()[:4]}}))"
    )
    done = subprocess.run(
        sandbox.bwrap_argv(spec, [sys.executable, "-c", script], bwrap),
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout)
    assert seen["dev"] == ["nvidia-uvm", "nvidia-uvm-tools", "nvidia1", "nvidiactl"]
    assert seen["proc"] == ["0000:5f:00.0"]
    assert seen["node"] == "gpu 1\n" and seen["version"] == "NVRM"


# ---------------------------------------------------------------- packing and memory caps


def _views(tmp_path: Path, gpus: int = 2) -> list[nvidia.SandboxGpu]:
    host = _host(tmp_path, gpus)
    return [nvidia.sandbox_view(host, g) for g in host.gpus]


def test_packing_by_per_gpu_memory_and_fraction(tmp_path: Path) -> None:
    views = _views(tmp_path)
    by_k = plan_slots(
        8, views, fraction=0.0, profile="full", per_gpu=2, totals_mb={0: 80000, 1: 80000}
    )
    assert [s.gpu.index for s in by_k.slots if s] == [0, 1, 0, 1]
    assert "2 run(s) share each GPU: 2 GPU(s) hold 4 worker(s), so 4 run instead of 8" in by_k.note
    first = by_k.slots[0]
    assert first is not None and first.memory_fraction == round(HEADROOM / 2, 3)
    assert first.memory_mb == int(80000 * HEADROOM / 2)
    env = first.kernel_env()
    assert env["DEEPGRADE_GPU_MEMORY_MB"] == str(first.memory_mb)
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"

    by_memory = plan_slots(
        9, views, fraction=0.25, profile="full", gpu_memory_mb=20000, totals_mb={0: 81559, 1: 81559}
    )
    assert len(by_memory.slots) == 6  # 3 runs of 20000 MiB fit in 90% of 81559
    slot = by_memory.slots[0]
    assert slot is not None and slot.memory_mb == 20000 and slot.sharing == 3
    assert slot.memory_fraction == round(20000 / 81559, 3)

    too_many = plan_slots(
        4,
        views[:1],
        fraction=0.0,
        profile="full",
        per_gpu=4,
        gpu_memory_mb=30000,
        totals_mb={0: 81559},
    )
    assert (
        len(too_many.slots) == 2
        and "4 runs of 30000 MiB do not fit a 81559 MiB GPU" in too_many.note
    )

    no_nvml = plan_slots(4, views, fraction=0.25, profile="full")
    assert len(no_nvml.slots) == 4 and no_nvml.note == ""
    assert {s.memory_mb for s in no_nvml.slots if s} == {None}
    assert "DEEPGRADE_GPU_MEMORY_MB" not in no_nvml.slots[0].kernel_env()  # type: ignore[union-attr]

    spread = plan_slots(3, views, fraction=0.0, profile="smoke")  # no hint: spread evenly
    assert [s.gpu.index for s in spread.slots if s] == [0, 1, 0] and spread.note == ""
    assert all(s is not None and s.memory_fraction == round(HEADROOM / 2, 3) for s in spread.slots)
    cpu = plan_slots(2, [], fraction=0.25, profile="full")
    assert cpu.slots == (None, None) and "no --gpus was given" in cpu.note
    assert plan_slots(2, views, fraction=0.0, profile="x", per_gpu=1).gpus == tuple(
        v.gpu for v in views
    )


def test_a_cpu_run_sees_no_gpu_even_where_the_grader_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert kernel_env("/home/grader")["CUDA_VISIBLE_DEVICES"] == ""


def _run_startup(
    env: dict[str, str], modules: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("KERAS_BACKEND", "DEEPGRADE_GPU_MEMORY_MB", "DEEPGRADE_GPU_MEMORY_FRACTION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(_stage1_runner.GPU_STARTUP, "startup", "exec"), {})


def test_the_kernel_start_up_file_caps_tensorflow_and_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, Any]] = []
    config = types.SimpleNamespace(
        list_physical_devices=lambda kind: ["gpu0"] if kind == "GPU" else [],
        LogicalDeviceConfiguration=lambda memory_limit: ("limit", memory_limit),
        set_logical_device_configuration=lambda gpu, configs: calls.append((gpu, configs)),
    )
    tf = types.SimpleNamespace(config=config)
    _run_startup(
        {"DEEPGRADE_GPU_MEMORY_MB": "36000", "DEEPGRADE_GPU_MEMORY_FRACTION": "0.45"},
        {"tensorflow": tf},
        monkeypatch,
    )
    assert calls == [("gpu0", [("limit", 36000)])]

    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        set_per_process_memory_fraction=lambda f: calls.append(("torch", f)),
    )
    _run_startup(
        {"KERAS_BACKEND": "torch", "DEEPGRADE_GPU_MEMORY_FRACTION": "0.225"},
        {"torch": types.SimpleNamespace(cuda=cuda)},
        monkeypatch,
    )
    assert calls[-1] == ("torch", 0.225)
    calls.clear()
    _run_startup({"KERAS_BACKEND": "jax", "DEEPGRADE_GPU_MEMORY_FRACTION": "0.2"}, {}, monkeypatch)
    assert calls == []  # JAX reads XLA_PYTHON_CLIENT_MEM_FRACTION itself


# ---------------------------------------------------------------- the probe


class _FakeCuda:
    def __init__(self, init: int = 0, count: int = 1) -> None:
        self.init, self.count = init, count

    def cuInit(self, flags: int) -> int:
        return self.init

    def cuDeviceGetCount(self, pointer: Any) -> int:
        pointer._obj.value = self.count
        return 0

    def cuGetErrorName(self, status: int, pointer: Any) -> int:
        pointer._obj.value = b"CUDA_ERROR_NO_DEVICE"
        return 0


def test_the_probe_names_what_stops_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise OSError(f"{name}: cannot open shared object file")

    problem = _gpu_probe.probe(None, missing)["problem"]
    assert "libcuda.so.1 cannot be loaded" in problem
    assert "ldconfig" in problem  # the host fix: the sandbox clears LD_LIBRARY_PATH
    failed = _gpu_probe.probe(None, lambda name: _FakeCuda(init=100))
    assert failed == {
        "ok": False,
        "devices": 0,
        "problem": "cuInit failed with CUDA_ERROR_NO_DEVICE (100)",
    }
    assert (
        _gpu_probe.probe(None, lambda name: _FakeCuda(count=0))["problem"]
        == "the CUDA driver sees no GPU"
    )
    assert _gpu_probe.probe(None, lambda name: _FakeCuda()) == {
        "ok": True,
        "devices": 1,
        "problem": "",
    }
    config = types.SimpleNamespace(list_physical_devices=lambda kind: [])
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(config=config))
    cpu_only = _gpu_probe.probe("tensorflow", lambda name: _FakeCuda())
    assert not cpu_only["ok"] and "tensorflow[and-cuda]" in cpu_only["problem"]


def test_a_gpu_run_that_cannot_reach_its_gpu_is_a_grader_error(
    tmp_path: Path, make_notebook: Any, bwrap: Any
) -> None:
    """No CUDA driver here, as in a sandbox that lacks the UVM node: the run stops before the
    student's first cell, as the grader's error, not as the student's timeout."""
    host = _host(tmp_path)
    view = nvidia.sandbox_view(host, host.gpus[0], proc_dest=_procfs_folder())
    slot = GpuSlot(view, sharing=1, memory_fraction=HEADROOM)
    result = execute.execute_notebook(
        make_notebook(["print('student code ran')"]),
        parameters={}, data_files=[], workdir=tmp_path / "work", cell_timeout_s=60,
        notebook_timeout_s=300, memory_mb=2048, artifact_cap_mb=4, gpu=slot,
    )  # fmt: skip
    assert result.verdict is Verdict.GRADER_ERROR, (result.detail, result.log_tail)
    assert "the GPU given to this run is not usable here" in result.detail
    assert "libcuda.so.1" in result.detail
    assert result.executed_notebook is None  # no student cell ran
    assert f"{host.gpus[0].label} only" in result.limits[0]


# ---------------------------------------------------------------- a real GPU


@pytest.mark.gpu
def test_a_real_gpu_is_usable_in_its_sandbox() -> None:
    from deepgrade import gpudoctor

    host = nvidia.read_host()
    if not host.gpus:
        pytest.skip(reason="no NVIDIA GPU on this host")
    reports = gpudoctor.gpu_reports(host)
    assert all(r.sandbox_problem == "" for r in reports), [r.describe() for r in reports]
