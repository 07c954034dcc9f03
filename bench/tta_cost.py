"""What test-time augmentation costs: 11 views predicted at once vs one predict per view or image.

The TTA exercise's hidden check (autograder/tta_resnet1/test_tta.py::test_tta_cost) times the
student's tta_predict against one plain model.predict of the same images and requires at most
12 times as long. This prints, for program 10's ResNet-20 (weights do not change the cost), the
ratios of four implementations over one plain predict, each the fastest of --rounds rounds
after a warm-up, in wall-clock time and in the process's CPU time (all threads):
- vectorised: all 11 views of all images stacked, one model.predict (the reference solution);
- batch 1: the same single call with batch_size=1 (Keras steps through the images one by one);
- per view: one model.predict per view (11 calls);
- per image: one model.predict per image, its 11 views (n calls), on --loop-images images.
Usage: .venv/bin/python bench/tta_cost.py [--images 128] [--rounds 3] [--loop-images 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The exercise's own definition of the 11 views (the reference solution's: edge-filled shifts).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder" / "tta_resnet1"))
import tta_views

VIEWS = [*tta_views.BASE_VIEWS, tta_views.REFERENCE_DIAGONAL]


def views(images: Any) -> list[Any]:
    """The 11 views of every image, one (n, 32, 32, 3) array per view."""
    return [tta_views.view(images, spec, "edge") for spec in VIEWS]


def vectorised(model: Any, images: Any, batch_size: int = 256) -> Any:
    import numpy as np

    stacked = np.concatenate(views(images))
    probabilities = model.predict(stacked, batch_size=batch_size, verbose=0)
    return probabilities.reshape(len(VIEWS), len(images), -1).mean(axis=0)


def per_view(model: Any, images: Any) -> Any:
    import numpy as np

    return np.mean([model.predict(view, verbose=0) for view in views(images)], axis=0)


def per_image(model: Any, images: Any) -> Any:
    import numpy as np

    return np.concatenate([vectorised(model, images[i : i + 1]) for i in range(len(images))])


def clock(call: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """(fastest wall-clock seconds, fastest CPU seconds) over `rounds` after one warm-up."""
    call()
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="as the grader's hidden images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop-images", type=int, default=32, help="per-image loop: slow")
    args = parser.parse_args()

    import numpy as np

    from deepgrade.models import resnet1

    model = resnet1.build()
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.5, 0.5, size=(args.images, 32, 32, 3)).astype(np.float32)
    few = images[: args.loop_images]
    plain = clock(lambda: model.predict(images, verbose=0), args.rounds)
    plain_few = clock(lambda: model.predict(few, verbose=0), args.rounds)
    rows = [
        (
            "vectorised (1 call)",
            args.images,
            clock(lambda: vectorised(model, images), args.rounds),
            plain,
        ),
        (
            "batch 1 (1 call)",
            args.images,
            clock(lambda: vectorised(model, images, batch_size=1), args.rounds),
            plain,
        ),
        (
            "per view (11 calls)",
            args.images,
            clock(lambda: per_view(model, images), args.rounds),
            plain,
        ),
        (
            "per image (n calls)",
            len(few),
            clock(lambda: per_image(model, few), args.rounds),
            plain_few,
        ),
    ]
    print(f"plain predict of {args.images} images: {plain[0]:.3f} s wall, {plain[1]:.3f} s CPU")
    print(f"{'tta_predict':<22}{'images':>7}{'wall s':>9}{'CPU s':>8}{'wall x':>8}{'CPU x':>7}")
    for name, n, (wall, cpu), (base_wall, base_cpu) in rows:
        print(
            f"{name:<22}{n:>7}{wall:>9.3f}{cpu:>8.3f}{wall / base_wall:>8.1f}{cpu / base_cpu:>7.1f}"
        )
    print("the check: CPU x on a CPU (wall x on an accelerator) <= 12")


if __name__ == "__main__":
    main()
