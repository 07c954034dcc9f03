"""Charts for the HTML pages: the class report's matplotlib figures drawn off-screen and
inlined as PNG data URIs; on each student's page, learning curves as inline SVG and the
confusion matrix as a shaded table.

No pyplot (no global state, no display) and nothing fetched: a page carries its pictures. A
student's page draws no figure, since it is paid per student (~0.25 CPU-seconds a figure): its
learning curves are laid out here and drawn as SVG by the template, and the confusion matrix is
a table whose counts stay text a screen reader reads and a student can copy.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def png_data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96)  # laid out by tight_layout: drawn once
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class CurveFrame:
    """A learning-curve panel's geometry in SVG user units (the page scales it down on a
    narrow screen): one place for the layout here and the drawing in the template."""

    width: int = 300
    height: int = 210
    left: int = 48  # the plot area, inside the axis labels
    right: int = 290
    top: int = 26
    bottom: int = 172


FRAME = CurveFrame()
MAX_PANELS = 4
MAX_MARKERS = 60  # epochs past this get a line without a dot per epoch


@dataclass(frozen=True)
class CurveSeries:
    """One line of a panel: its label, its points ("x,y x,y ..."), and where the dots go."""

    label: str
    points: str
    dots: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CurvePanel:
    """One metric by epoch, training and validation together, laid out for an inline SVG.

    Drawn by the page's template, not by matplotlib: a figure cost ~0.25 CPU-seconds per
    student page (and 0.7 s to import matplotlib per batch); these are a few lines of text, and
    their numbers stay readable to a screen reader through `description`."""

    metric: str
    series: tuple[CurveSeries, ...]
    y_ticks: tuple[tuple[float, str], ...]  # (y coordinate, label)
    x_ticks: tuple[tuple[float, str], ...]  # (x coordinate, epoch)
    description: str


def _scale(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    span = high - low
    return lambda value: round(start + (value - low) / span * (end - start), 1)


def _panel(metric: str, lines: Sequence[tuple[str, Sequence[float]]]) -> CurvePanel:
    values = [v for _, series in lines for v in series]
    low, high = min(values), max(values)
    if high - low < 1e-12:  # a flat line sits in the middle
        pad = abs(high) * 0.1 or 0.5
        low, high = low - pad, high + pad
    epochs = max(len(series) for _, series in lines)
    x = _scale(1, max(epochs, 2), FRAME.left, FRAME.right)
    y = _scale(low, high, FRAME.bottom, FRAME.top)
    series = []
    for label, data in lines:
        coords = [(x(epoch), y(value)) for epoch, value in enumerate(data, start=1)]
        series.append(
            CurveSeries(
                label=label,
                points=" ".join(f"{cx:g},{cy:g}" for cx, cy in coords),
                dots=tuple(coords) if len(coords) <= MAX_MARKERS else (),
            )
        )
    middle = (low + high) / 2
    y_ticks = tuple((y(value), f"{value:.3g}") for value in (high, middle, low))
    shown = sorted({1, (epochs + 1) // 2, epochs})
    x_ticks = tuple((x(epoch), str(epoch)) for epoch in shown)
    last = "; ".join(f"{label} {data[-1]:.4g}" for label, data in lines)
    description = f"{metric} by epoch over {epochs} epoch(s); at the last epoch: {last}"
    return CurvePanel(metric, tuple(series), y_ticks, x_ticks, description)


def learning_curves(history: Mapping[str, Sequence[float]]) -> tuple[CurvePanel, ...]:
    """One panel per metric (loss, accuracy...), training and validation together, by epoch."""
    bases = sorted({key.removeprefix("val_") for key in history}, key=lambda k: (k != "loss", k))
    panels = []
    for base in bases[:MAX_PANELS]:
        lines = [
            (label, list(history[key]))
            for key, label in ((base, "training"), (f"val_{base}", "validation"))
            if history.get(key)
        ]
        if lines:
            panels.append(_panel(base, lines))
    return tuple(panels)


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
