"""PNG charts for run and evaluation folders: line panels and bar charts, no display needed.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so nothing changes the
process-wide backend and the functions work on headless machines and in threads. ``new_figure`` and
``save_figure`` are that set-up for any chart; ``plot_lines`` is the training run's chart on it.

\b
    plot_lines("curves.png", [Panel("Loss", "loss", [Series("train", [(10, 3.2), (20, 2.9)])])])
    figure, (axes,) = new_figure(size=(7, 4.5), dpi=120)  # any other chart: draw on the axes, then
    save_figure(figure, "scatter.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, not with this module
    from matplotlib.figure import Figure

DPI = 110
PANEL_SIZE = (6.4, 3.6)  # inches per panel: width, height


@dataclass(frozen=True)
class Series:
    """One line: a label and its (x, y) points."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Panel:
    """One chart of a figure: a title, a y-axis label and the lines drawn on it."""

    title: str
    ylabel: str
    series: Sequence[Series] = field(default_factory=tuple)


def new_figure(rows: int = 1, size: tuple[float, float] | None = None, dpi: int = DPI) -> tuple[Figure, list[Any]]:
    """A Figure on its own Agg canvas with ``rows`` stacked axes; ``size`` in inches (default: PANEL_SIZE a row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no process-wide backend state
    from matplotlib.figure import Figure

    figure = Figure(figsize=size or (PANEL_SIZE[0], PANEL_SIZE[1] * rows), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    return figure, list(axes)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Lay the figure out and write it as PNG (parent folders made); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, format="png")
    return out


def plot_lines(path: str | Path, panels: Sequence[Panel], xlabel: str = "step", title: str | None = None) -> Path:
    """Stacked line charts sharing an x label, one per panel; empty series are skipped."""
    if not panels:
        raise ValueError("plot_lines needs at least one panel")
    figure, axes = new_figure(len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        for series in panel.series:
            if series.points:
                xs, ys = zip(*series.points, strict=True)
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=series.label)
        ax.set_title(panel.title)
        ax.set_ylabel(panel.ylabel)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if any(series.points for series in panel.series):
            ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
