"""Charts for the HTML pages: matplotlib figures drawn off-screen, inlined as PNG data URIs.

No pyplot (no global state, no display) and nothing fetched: a page carries its pictures.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any


def png_data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
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


def confusion_matrix(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """Counts of true (rows) against predicted (columns) classes, each cell labelled."""
    from matplotlib.figure import Figure

    n = len(labels)
    size = max(2.6, 0.45 * n + 1.2)
    figure = Figure(figsize=(size, size))
    ax = figure.add_subplot()
    ax.imshow([list(row) for row in counts], cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(n), labels, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(row) for row in counts), default=0)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            colour = "white" if top and value > top / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize="x-small", color=colour)
    figure.tight_layout()
    return png_data_uri(figure)
