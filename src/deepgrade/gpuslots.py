"""Which GPU each worker of a batch gets, how many share one, and the memory each may take.

Several notebooks share a GPU only with a cap each: without one, the first TensorFlow kernel
takes nearly all of the GPU's memory and the next student's notebook fails for a reason that
is not theirs. How many runs share a GPU (K) comes from, in order: `--per-gpu K`; the profile's
`gpu_memory_mb` against the GPU's memory (NVML); the profile's `gpus` fraction (0.25: four);
else the workers spread evenly. Each run's cap is the profile's `gpu_memory_mb`, or its share
of HEADROOM of the GPU, set in the kernel's environment for each backend (see `kernel_env`).

Deliberately simple: a fixed number of slots per GPU, each worker pinned to one slot for the
whole batch. It caps the workers at what the GPUs hold and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deepgrade.nvidia import Gpu, SandboxGpu

HEADROOM = 0.9  # of a GPU's memory given to runs; the rest holds each process's CUDA context


@dataclass(frozen=True)
class GpuSlot:
    """One worker's share of a GPU: what its sandbox sees of it, and its memory cap."""

    view: SandboxGpu
    sharing: int  # runs on this GPU at once (K)
    memory_fraction: float  # of the GPU's memory one run may take
    memory_mb: int | None = None  # the same in MiB, when the GPU's size is known

    @property
    def gpu(self) -> Gpu:
        return self.view.gpu

    def kernel_env(self) -> dict[str, str]:
        """The GPU's CUDA variables and the cap, as each backend reads it.

        JAX reads its fraction from the environment; TensorFlow and PyTorch only take a cap
        in the process, which the runner's kernel start-up file sets from DEEPGRADE_GPU_*.
        TensorFlow also grows on demand rather than taking the whole GPU at its first op.
        """
        env = dict(self.view.env)
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{self.memory_fraction:.3f}"
        env["DEEPGRADE_GPU_MEMORY_FRACTION"] = f"{self.memory_fraction:.3f}"
        if self.memory_mb is not None:
            env["DEEPGRADE_GPU_MEMORY_MB"] = str(self.memory_mb)
        return env


@dataclass(frozen=True)
class SlotPlan:
    """One slot per worker: its GPU share, None for the CPU."""

    slots: tuple[GpuSlot | None, ...]
    note: str = ""  # for the instructor: fewer workers than asked, or a GPU asked and not given

    @property
    def gpus(self) -> tuple[Gpu, ...]:
        """The GPUs this batch uses, each once, in order."""
        found: dict[int, Gpu] = {}
        for slot in self.slots:
            if slot is not None:
                found.setdefault(slot.gpu.index, slot.gpu)
        return tuple(found.values())


def cpu_plan(workers: int, fraction: float = 0.0, profile: str = "") -> SlotPlan:
    """Every worker on the CPU; says so when the profile wanted a GPU."""
    note = ""
    if fraction > 0:
        note = (
            f"the {profile} profile asks for {fraction:g} of a GPU per worker and no --gpus "
            "was given: graded on the CPU (slower; pass --gpus to use GPUs)"
        )
    return SlotPlan((None,) * max(1, workers), note)


def workers_per_gpu(fraction: float) -> int:
    """How many workers one GPU holds when each needs `fraction` of it (0 < fraction <= 1)."""
    return max(1, math.floor(1 / fraction + 1e-9))


def _sharing(
    workers: int, gpus: int, fraction: float, per_gpu: int | None, memory_mb: int | None,
    total_mb: int | None,
) -> tuple[int, str]:  # fmt: skip
    """K, the runs one GPU holds, and a note when the memory asked for lowers it."""
    if per_gpu is not None:
        k = max(1, per_gpu)
    elif memory_mb and total_mb:
        k = max(1, math.floor(total_mb * HEADROOM / memory_mb))
    elif fraction > 0:
        k = workers_per_gpu(fraction)
    else:
        k = max(1, math.ceil(workers / gpus))
    if memory_mb and total_mb and k * memory_mb > total_mb * HEADROOM:
        fits = max(1, math.floor(total_mb * HEADROOM / memory_mb))
        if fits < k:
            note = (
                f"{k} runs of {memory_mb} MiB do not fit a {total_mb} MiB GPU "
                f"({HEADROOM:.0%} usable): {fits} share each GPU"
            )
            return fits, note
    return k, ""


def plan_slots(
    workers: int,
    views: Sequence[SandboxGpu],
    *,
    fraction: float,
    profile: str,
    per_gpu: int | None = None,
    gpu_memory_mb: int | None = None,
    totals_mb: Mapping[int, int] | None = None,
) -> SlotPlan:
    """The batch's worker slots for `workers` asked and the GPUs given (--gpus).

    `totals_mb` is each GPU's memory by index, where NVML could say; without it the cap is a
    fraction only (JAX and PyTorch honour it; TensorFlow then only grows on demand).
    """
    workers = max(1, workers)
    if not views:
        return cpu_plan(workers, fraction, profile)
    totals = dict(totals_mb or {})
    known = [totals[v.gpu.index] for v in views if v.gpu.index in totals]
    smallest = min(known) if len(known) == len(views) else None
    k, note = _sharing(workers, len(views), fraction, per_gpu, gpu_memory_mb, smallest)
    shares: list[GpuSlot] = []
    for view in views:
        total = totals.get(view.gpu.index)
        if gpu_memory_mb and total:
            mb: int | None = gpu_memory_mb
            share = min(HEADROOM, gpu_memory_mb / total)
        else:
            share = HEADROOM / k
            mb = math.floor(total * share) if total else None
        shares.append(GpuSlot(view, k, round(share, 3), mb))
    capacity = k * len(views)
    running = min(workers, capacity)
    slots = tuple(shares[i % len(shares)] for i in range(running))
    if running < workers:
        why = f"{k} run(s) share each GPU"
        if per_gpu is None and fraction > 0 and not gpu_memory_mb:
            why = f"the {profile} profile needs {fraction:g} of a GPU per worker"
        held = f"{len(views)} GPU(s) hold {capacity} worker(s)"
        held += f", so {running} run instead of {workers}"
        note = "; ".join(filter(None, [note, f"{why}: {held}"]))
    return SlotPlan(slots, note)
