"""Inside the sandbox, before the student's notebook: can this run use the GPU it was given?

A standalone script (stdlib, and the Keras backend where installed), started by the stage-1
runner before the kernel, so no student code has run yet. Two steps, each with its own
message: the CUDA driver (libcuda.so.1: cuInit, cuDeviceGetCount), which fails when a device
node or /dev/nvidia-uvm is missing from the sandbox; then the Keras backend, which fails when
its CUDA libraries are missing and would otherwise quietly train on the CPU into a timeout.
Prints one JSON line: {"ok": ..., "devices": N, "problem": "..."}.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Callable
from typing import Any

MAX_PROBLEM_CHARS = 300
BACKEND_FIX = {
    "tensorflow": "a CPU-only TensorFlow or its CUDA libraries missing: "
    "pip install 'tensorflow[and-cuda]' (scripts/setup --gpu)",
    "jax": "a CPU-only jax: pip install 'jax[cuda12]' (scripts/setup --gpu --backend jax)",
    "torch": "a CPU build of torch: pip install torch from PyPI (scripts/setup --gpu "
    "--backend torch)",
}


def _error_name(lib: Any, status: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(status, ctypes.byref(name)) == 0 and name.value:
            return f"{name.value.decode(errors='replace')} ({status})"
    except (AttributeError, OSError):
        pass
    return f"CUresult {status}"


def cuda_devices(load: Callable[[str], Any] = ctypes.CDLL) -> tuple[int, str]:
    """How many GPUs the CUDA driver sees here, and "" or what stopped it."""
    try:
        lib = load("libcuda.so.1")
    except OSError as exc:
        return 0, (
            "the CUDA driver library libcuda.so.1 cannot be loaded; the sandbox clears "
            "LD_LIBRARY_PATH, so the driver's library folder must be known to ldconfig "
            f"(a file in /etc/ld.so.conf.d, then `ldconfig`) ({exc})"
        )
    status = int(lib.cuInit(0))
    if status != 0:
        return 0, f"cuInit failed with {_error_name(lib, status)}"
    count = ctypes.c_int(0)
    status = int(lib.cuDeviceGetCount(ctypes.byref(count)))
    if status != 0:
        return 0, f"cuDeviceGetCount failed with {_error_name(lib, status)}"
    if count.value < 1:
        return 0, "the CUDA driver sees no GPU"
    return count.value, ""


def backend_problem(backend: str) -> str:
    """Empty when the Keras backend sees a GPU, else why not (it would train on the CPU)."""
    try:
        if backend == "jax":
            import jax  # type: ignore[import-not-found, unused-ignore]

            found = any(d.platform == "gpu" for d in jax.devices())
        elif backend == "torch":
            import torch  # type: ignore[import-not-found, unused-ignore]

            found = bool(torch.cuda.is_available())
        else:
            import tensorflow as tf  # type: ignore[import-not-found, unused-ignore]

            found = bool(tf.config.list_physical_devices("GPU"))
    except Exception as exc:  # missing backend, broken CUDA libraries
        return f"the {backend} backend failed to start: {type(exc).__name__}: {exc}"
    if found:
        return ""
    return f"the {backend} backend sees no GPU ({BACKEND_FIX.get(backend, 'a CPU-only build')})"


def probe(backend: str | None, load: Callable[[str], Any] = ctypes.CDLL) -> dict[str, Any]:
    devices, problem = cuda_devices(load)
    if not problem and backend:
        problem = backend_problem(backend)
    problem = " ".join(problem.split())[:MAX_PROBLEM_CHARS]
    return {"ok": not problem, "devices": devices, "problem": problem}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    backend = None if "--driver-only" in args else os.environ.get("KERAS_BACKEND", "tensorflow")
    print(json.dumps(probe(backend)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
