"""Which GPU each worker of a batch gets, from the profile's `gpus` (the fraction of one GPU a
worker needs): 0.25 lets four workers share a GPU, 1.0 gives each its own.

Deliberately simple: a fixed number of slots per GPU, each worker pinned to one slot's GPU for
the whole batch. It caps the workers at what the GPUs hold and says so; it does not measure
memory or pack by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SlotPlan:
    """One slot per worker: the GPU id it runs on, None for the CPU."""

    slots: tuple[str | None, ...]
    note: str = ""  # for the instructor: fewer workers than asked, or a GPU asked and not given


def workers_per_gpu(fraction: float) -> int:
    """How many workers one GPU holds when each needs `fraction` of it (0 < fraction <= 1)."""
    return max(1, math.floor(1 / fraction + 1e-9))


def plan_slots(workers: int, gpu_ids: Sequence[str], fraction: float, profile: str) -> SlotPlan:
    """The batch's worker slots for `workers` asked and the GPUs given (--gpus)."""
    workers = max(1, workers)
    if not gpu_ids:
        note = ""
        if fraction > 0:
            note = (
                f"the {profile} profile asks for {fraction:g} of a GPU per worker and no --gpus "
                "was given: graded on the CPU (slower; pass --gpus to use GPUs)"
            )
        return SlotPlan((None,) * workers, note)
    if fraction <= 0:  # the CPU is fine: the workers share the GPUs given, round robin
        return SlotPlan(tuple(gpu_ids[i % len(gpu_ids)] for i in range(workers)))
    capacity = workers_per_gpu(fraction) * len(gpu_ids)
    running = min(workers, capacity)
    slots = tuple(gpu_ids[i % len(gpu_ids)] for i in range(running))
    note = ""
    if running < workers:
        note = (
            f"the {profile} profile needs {fraction:g} of a GPU per worker: {len(gpu_ids)} "
            f"GPU(s) hold {capacity} worker(s), so {running} run instead of {workers}"
        )
    return SlotPlan(slots, note)
