"""Charts for the HTML pages: matplotlib figures drawn off-screen, inlined as PNG data URIs,
and the confusion matrix as a shaded table.

No pyplot (no global state, no display) and nothing fetched: a page carries its pictures. The
confusion matrix is a table, not a picture: its counts stay text a screen reader reads and a
student can copy, and a page costs no figure (~0.15 CPU-seconds each, paid per student).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def png_data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)  # laid out by tight_layout: drawn once
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def learning_curves(history: Mapping[str, Sequence[float]]) -> str:
    """One panel per metric (loss, accuracy...), training and validation together, by epoch."""
    from matplotlib.figure import Figure

    bases = sorted({key.removeprefix("val_") for key in history}, key=lambda k: (k != "loss", k))
    shown = [base for base in bases if base in history or f"val_{base}" in history][:4]
    figure = Figure(figsize=(3.2 * max(1, len(shown)), 2.6))
    for index, base in enumerate(shown, start=1):
        ax = figure.add_subplot(1, len(shown), index)
        for key, label in ((base, "training"), (f"val_{base}", "validation")):
            if key in history:
                values = list(history[key])
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
    figure.tight_layout()
    return png_data_uri(figure)


@dataclass(frozen=True)
class ConfusionTable:
    """Counts of true (rows) against predicted (columns) classes, each cell with its shade:
    0 for no image, 1 for the largest count."""

    labels: tuple[str, ...]
    rows: tuple[tuple[tuple[int, float], ...], ...]  # (count, shade) per predicted class


def confusion_table(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> ConfusionTable:
    top = max((max(row, default=0) for row in counts), default=0)
    return ConfusionTable(
        tuple(labels),
        tuple(
            tuple((int(value), round(value / top, 3) if top else 0.0) for value in row)
            for row in counts
        ),
    )
