"""matplotlib's font list, built once on the host and shown read-only to every kernel.

A kernel starts with an empty HOME, so matplotlib would scan the system's fonts and write its
fontlist-vNNN.json again for every submission (~0.35 CPU-seconds each on the 2-core CI host,
paid by every notebook that imports pyplot). The grader builds the list once per matplotlib
version and font folder, with the kernel's own interpreter in a child process (the grader never
imports matplotlib for it), under the deepgrade cache. Each sandbox binds that file read-only
where matplotlib looks for it: a kernel can read it, never change it, so nothing one submission
does reaches the next. Without matplotlib, or if the list cannot be built, kernels build their
own as before.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from deepgrade.project import cache_dir

MPLCONFIG_IN_HOME = ".config/matplotlib"  # execute.kernel_env's MPLCONFIGDIR, under HOME
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts")
BUILD_TIMEOUT_S = 300


def _fonts_stamp() -> str:
    """Changes when fonts are added to or removed from the system's font folders."""
    stamps = []
    for folder in FONT_FOLDERS:
        try:
            stamps.append(str(os.stat(folder).st_mtime_ns))
        except OSError:
            stamps.append("-")
    return "-".join(stamps)


@functools.cache
def font_list() -> Path | None:
    """The fontlist-vNNN.json matplotlib made for this interpreter, built the first time it
    is asked for; None without matplotlib or when matplotlib did not write one."""
    try:
        version = metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return None
    folder = cache_dir() / "matplotlib" / f"{version}-{_fonts_stamp()}"
    found = sorted(folder.glob("fontlist-v*.json"))
    if not found:
        env = {**os.environ, "MPLCONFIGDIR": str(folder), "MPLBACKEND": "Agg"}
        try:  # a cache that cannot be written (a read-only HOME) only costs the scan
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [sys.executable, "-I", "-c", "import matplotlib.font_manager"],
                env=env, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = sorted(folder.glob("fontlist-v*.json"))
    return found[-1] if found else None
