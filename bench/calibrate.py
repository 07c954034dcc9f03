"""Calibrate an exercise's thresholds: now `deepgrade calibrate` (deepgrade.calibrate).

Kept so the commands recorded in the exercises' READMEs still run; the options are the same,
with the exercise given as --exercise.
Usage: .venv/bin/python bench/calibrate.py --exercise signs_cnn [--seeds 10] [--margin 0.05]
       .venv/bin/python bench/calibrate.py --exercise fashion_vgg --sample horizontal_flip
"""

from __future__ import annotations

import sys
from pathlib import Path

from deepgrade.cli import main

ROOT = Path(__file__).resolve().parents[1]


def translate(argv: list[str]) -> list[str]:
    """bench's `--exercise NAME ...` as `deepgrade calibrate NAME ...`."""
    args = list(argv)
    exercise = "signs_cnn"  # bench's default
    if "--exercise" in args:
        at = args.index("--exercise")
        exercise = args[at + 1]
        del args[at : at + 2]
    return ["--root", str(ROOT), "calibrate", exercise, *args]


if __name__ == "__main__":
    sys.exit(main(translate(sys.argv[1:])))
