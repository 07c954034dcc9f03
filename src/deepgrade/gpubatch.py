"""The GPUs a batch runs on, resolved once before its first job.

From `--gpus` and `--per-gpu` and the profile: the driver's GPU list (an id it does not list is
refused), the device nodes each needs (made with nvidia-modprobe, else refused: a notebook that
cannot reach its GPU would train on the CPU into a timeout charged to the student), what each
sandbox sees of its GPU, each GPU's size (NVML) and so each run's memory cap, and the slots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepgrade import nvidia
from deepgrade.exercise import ProfileSpec
from deepgrade.gpumonitor import GpuMonitor, load_nvml, memory_totals
from deepgrade.gpuslots import SlotPlan, cpu_plan, plan_slots


@dataclass(frozen=True)
class GpuRequest:
    """What the instructor asked for on the command line."""

    ids: tuple[str, ...] = ()  # --gpus: indices, UUIDs or PCI bus ids
    per_gpu: int | None = None  # --per-gpu K

    @classmethod
    def parse(cls, gpus: str | None, per_gpu: int | None = None) -> GpuRequest:
        ids = tuple(g.strip() for g in (gpus or "").split(",") if g.strip())
        return cls(ids, per_gpu)


@dataclass(frozen=True)
class GpuSetup:
    """The batch's slots and, where NVML runs, the handle its monitor samples through."""

    plan: SlotPlan
    nvml: Any | None = field(default=None, compare=False)

    def monitor(self, interval_s: float = 1.0) -> GpuMonitor | None:
        """A sampler of the batch's GPUs (not started), None without GPUs or NVML."""
        gpus = self.plan.gpus
        if not gpus or self.nvml is None:
            return None
        return GpuMonitor(self.nvml, gpus, interval_s=interval_s)


def resolve_gpus(
    request: GpuRequest,
    workers: int,
    profile: ProfileSpec,
    *,
    read_host: Callable[[], nvidia.GpuHost] = nvidia.read_host,
    make_nodes: Callable[[nvidia.GpuHost, Sequence[nvidia.Gpu]], nvidia.GpuHost] = (
        nvidia.create_missing_nodes
    ),
    nvml_loader: Callable[[], Any | None] = load_nvml,
) -> GpuSetup:
    """The batch's GPU slots; raises nvidia.GpuError when a GPU asked for cannot be given."""
    if not request.ids:
        return GpuSetup(cpu_plan(workers, profile.gpus, profile.name))
    host = read_host()
    gpus = nvidia.select(host, request.ids)
    host = make_nodes(host, gpus)
    views = [nvidia.sandbox_view(host, gpu) for gpu in gpus]
    nvml = nvml_loader()
    plan = plan_slots(
        workers,
        views,
        fraction=profile.gpus,
        profile=profile.name,
        per_gpu=request.per_gpu,
        gpu_memory_mb=profile.gpu_memory_mb,
        totals_mb=memory_totals(nvml, gpus),
    )
    return GpuSetup(plan, nvml)
