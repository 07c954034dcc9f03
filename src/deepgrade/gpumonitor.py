"""How busy each GPU was during a batch, and how full, sampled on the host through NVML.

Sampled outside every sandbox by the grader (nvidia-ml-py, the `gpu` extra), so no figure rests
on what a student's process says about itself. NVML's utilization is the share of the last
sample period in which a kernel ran on the GPU: "busy %" here is its mean over the batch (and,
for one submission, over the time it was graded). Without NVML nothing is sampled and the
figures are simply absent; grading does not depend on them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deepgrade.nvidia import Gpu

MIB = 1024 * 1024
INTERVAL_S = 1.0


def load_nvml() -> Any | None:
    """The initialised NVML module (pynvml from nvidia-ml-py), None where it cannot start."""
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]

        pynvml.nvmlInit()
    except Exception:  # not installed, no driver, no GPU: nothing to sample
        return None
    return pynvml


def _handle(nvml: Any, gpu: Gpu) -> Any:
    if gpu.uuid:
        return nvml.nvmlDeviceGetHandleByUUID(gpu.uuid)
    return nvml.nvmlDeviceGetHandleByPciBusId(gpu.bus_id)


def memory_totals(nvml: Any | None, gpus: Sequence[Gpu]) -> dict[int, int]:
    """Each GPU's memory in MiB by index, for those NVML can read."""
    totals: dict[int, int] = {}
    if nvml is None:
        return totals
    for gpu in gpus:
        try:
            totals[gpu.index] = int(nvml.nvmlDeviceGetMemoryInfo(_handle(nvml, gpu)).total // MIB)
        except Exception:  # a GPU NVML cannot read is left out; its cap becomes a fraction
            continue
    return totals


@dataclass(frozen=True)
class GpuUsage:
    """One GPU over a batch."""

    index: int
    label: str
    samples: int
    busy_pct: float | None  # mean utilization, None without samples
    memory_peak_mb: int | None
    memory_total_mb: int | None

    def describe(self) -> str:
        if self.busy_pct is None:
            return f"{self.label}: not sampled"
        memory = ""
        if self.memory_peak_mb is not None:
            memory = f", memory peak {self.memory_peak_mb / 1024:.1f} GiB"
            if self.memory_total_mb:
                memory += f" of {self.memory_total_mb / 1024:.1f}"
        return f"{self.label}: busy {self.busy_pct:.0f}% ({self.samples} samples){memory}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "samples": self.samples,
            "busy_pct": self.busy_pct,
            "memory_peak_mb": self.memory_peak_mb,
            "memory_total_mb": self.memory_total_mb,
        }


@dataclass(frozen=True)
class _Sample:
    at: float
    index: int
    busy: float
    used_mb: int


class GpuMonitor:
    """Samples `gpus` every `interval_s` seconds on a thread, between start() and stop()."""

    def __init__(
        self,
        nvml: Any,
        gpus: Sequence[Gpu],
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nvml = nvml
        self._gpus = tuple(gpus)
        self._interval = interval_s
        self.clock = clock
        self._samples: list[_Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: dict[int, Any] = {}
        self._totals = memory_totals(nvml, gpus)

    def __enter__(self) -> GpuMonitor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        for gpu in self._gpus:
            try:
                self._handles[gpu.index] = _handle(self._nvml, gpu)
            except Exception:
                continue
        self._sample()  # one at once: even a batch shorter than the interval has a figure
        self._thread = threading.Thread(target=self._loop, name="gpu-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        now = self.clock()
        found = []
        for index, handle in self._handles.items():
            try:
                busy = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                used = int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used // MIB)
            except Exception:  # a GPU that fell off the bus: no sample, the batch goes on
                continue
            found.append(_Sample(now, index, busy, used))
        with self._lock:
            self._samples.extend(found)

    def stop(self) -> tuple[GpuUsage, ...]:
        """Stop sampling (once a final sample is in); each GPU's figures over the batch."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()
        return self.usage()

    def _of(self, index: int, start: float | None, end: float | None) -> list[_Sample]:
        with self._lock:
            return [
                s
                for s in self._samples
                if s.index == index
                and (start is None or s.at >= start)
                and (end is None or s.at <= end)
            ]

    def window(self, gpu: Gpu, start: float, end: float) -> tuple[float | None, int | None]:
        """Mean busy % and peak memory (MiB) of `gpu` between two clock() readings."""
        samples = self._of(gpu.index, start, end)
        if not samples:
            return None, None
        busy = sum(s.busy for s in samples) / len(samples)
        return round(busy, 1), max(s.used_mb for s in samples)

    def usage(self) -> tuple[GpuUsage, ...]:
        found = []
        for gpu in self._gpus:
            samples = self._of(gpu.index, None, None)
            busy = round(sum(s.busy for s in samples) / len(samples), 1) if samples else None
            found.append(
                GpuUsage(
                    index=gpu.index,
                    label=gpu.label,
                    samples=len(samples),
                    busy_pct=busy,
                    memory_peak_mb=max((s.used_mb for s in samples), default=None),
                    memory_total_mb=self._totals.get(gpu.index),
                )
            )
        return tuple(found)
