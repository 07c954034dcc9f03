"""`deepgrade doctor`'s GPU part: the GPUs the host's driver lists, and for each, whether a
sandbox given that GPU can use it (the same probe a GPU run makes before the student's code).

Run on a GPU runner before the first batch, it turns "why does TensorFlow train on the CPU in
there" into one line per GPU: the device node, the memory, and what the sandbox saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepgrade import nvidia, sandbox
from deepgrade.execute import GPU_PROBE, OPT, kernel_env
from deepgrade.gpumonitor import load_nvml, memory_totals
from deepgrade.gpuslots import HEADROOM, GpuSlot

PROBE_TIMEOUT_S = 300


@dataclass(frozen=True)
class GpuReport:
    """One GPU as the host lists it and as a sandbox saw it."""

    gpu: nvidia.Gpu
    node_present: bool
    memory_mb: int | None
    sandbox_problem: str | None  # None: not probed; "": usable in a sandbox

    def describe(self) -> str:
        gpu = self.gpu
        memory = f", {self.memory_mb / 1024:.0f} GiB" if self.memory_mb else ""
        node = f"/dev/{gpu.node}" + ("" if self.node_present else " (MISSING)")
        head = f"{gpu.label} {gpu.uuid or gpu.bus_id}, {node}{memory}"
        if self.sandbox_problem is None:
            return f"{head}; sandbox not probed"
        if self.sandbox_problem:
            return f"{head}; in a sandbox: NOT usable: {self.sandbox_problem}"
        return f"{head}; in a sandbox: usable (CUDA and the Keras backend see it)"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.gpu.index,
            "uuid": self.gpu.uuid,
            "bus_id": self.gpu.bus_id,
            "model": self.gpu.model,
            "node": f"/dev/{self.gpu.node}",
            "node_present": self.node_present,
            "memory_mb": self.memory_mb,
            "sandbox_usable": None if self.sandbox_problem is None else not self.sandbox_problem,
            "sandbox_problem": self.sandbox_problem,
        }


SandboxProbe = Callable[[nvidia.GpuHost, nvidia.Gpu], str]


def probe_in_sandbox(
    host: nvidia.GpuHost, gpu: nvidia.Gpu, *, proc_dest: str = str(nvidia.PROC)
) -> str:
    """Empty when a sandbox given `gpu` can use it, else what the probe (or bwrap) said."""
    tool = sandbox.find_bwrap()
    if tool is None:
        return f"no sandbox here: {sandbox.unavailable_reason()}"
    view = nvidia.sandbox_view(host, gpu, proc_dest=proc_dest)
    probe = f"{OPT}/gpu_probe.py"
    spec = sandbox.SandboxSpec(
        mounts=(*sandbox.python_mounts(), sandbox.Mount(GPU_PROBE.resolve(), probe), *view.mounts),
        tmpfs=view.masks,
        env=kernel_env(sandbox.SANDBOX_HOME, GpuSlot(view, 1, HEADROOM)),
        devices=view.devices,
    )
    argv = sandbox.bwrap_argv(spec, [sys.executable, "-I", "-B", probe], tool)
    try:
        done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the probe could not run: {exc}"
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return f"the probe failed: {err[-1] if err else f'exit status {done.returncode}'}"
    return "" if found.get("ok") is True else str(found.get("problem") or "unknown")


def gpu_reports(
    host: nvidia.GpuHost | None = None,
    *,
    nvml: Any | None = None,
    probe: SandboxProbe | None = probe_in_sandbox,
) -> list[GpuReport]:
    """Every GPU the driver lists; each probed in a sandbox unless `probe` is None."""
    host = host or nvidia.read_host()
    totals = memory_totals(nvml if nvml is not None else load_nvml(), host.gpus)
    reports = []
    for gpu in host.gpus:
        missing = host.missing_nodes(gpu)
        problem: str | None = None
        if probe is not None:
            problem = (
                f"missing device nodes {', '.join(missing)} (deepgrade grade --gpus runs "
                "nvidia-modprobe to make them)"
                if missing
                else probe(host, gpu)
            )
        reports.append(GpuReport(gpu, gpu.node in host.nodes, totals.get(gpu.index), problem))
    return reports


def describe(host: nvidia.GpuHost, reports: list[GpuReport]) -> list[str]:
    if not host.gpus:
        return [f"gpus:        none (no NVIDIA driver lists a GPU under {host.proc / 'gpus'})"]
    driver = f" (driver {host.driver_version})" if host.driver_version else ""
    lines = [f"gpus:        {len(host.gpus)}{driver}"]
    lines += [f"  {report.describe()}" for report in reports]
    return lines
