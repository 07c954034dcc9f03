"""Load TensorFlow in the grader's own process without its C++ start-up lines.

Since TensorFlow 2.16 `import tensorflow` writes "oneDNN custom operations are on" and absl's
"All log messages before absl::InitializeLog()" straight to file descriptor 2, before
TF_CPP_MIN_LOG_LEVEL is consulted, so setting the variable is not enough. They say nothing
to an instructor and bury the output of `demo`, `models` and `calibrate`. The sandboxed kernels
need none of this: their stderr never reaches the console. Anything else written during the
import (a real error) is passed on.
"""

from __future__ import annotations

import os
import sys
import tempfile

NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "in other operations, rebuild TensorFlow with the appropriate compiler flags",
)


def is_noise(line: str) -> bool:
    return any(marker in line for marker in NOISE)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (Keras' backend here) once, keeping only what is not start-up noise."""
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not is_noise(line)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
