"""PNG charts for run and evaluation folders: line panels and bar charts, no display needed.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so nothing changes the
process-wide backend and the functions work on headless machines and in threads.

\b
    plot_lines("curves.png", [Panel("Loss", "loss", [Series("train", [(10, 3.2), (20, 2.9)])])])
    plot_bars("rouge.png", {"lead-3": 31.2, "model": 47.9}, title="ROUGE-L", ylabel="F x100")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


def _figure(rows: int):
    """A Figure on an Agg canvas with ``rows`` stacked axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PANEL_SIZE[0], PANEL_SIZE[1] * rows), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    return figure, list(axes)


def _save(figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, format="png")
    return out


def plot_lines(path: str | Path, panels: Sequence[Panel], xlabel: str = "step", title: str | None = None) -> Path:
    """Stacked line charts sharing an x label, one per panel; empty series are skipped."""
    if not panels:
        raise ValueError("plot_lines needs at least one panel")
    figure, axes = _figure(len(panels))
    for ax, panel in zip(axes, panels):
        for series in panel.series:
            if series.points:
                xs, ys = zip(*series.points)
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=series.label)
        ax.set_title(panel.title)
        ax.set_ylabel(panel.ylabel)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if any(series.points for series in panel.series):
            ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_bars(path: str | Path, values: Mapping[str, float], title: str = "", ylabel: str = "") -> Path:
    """One bar per named value, labelled with the value to one decimal."""
    if not values:
        raise ValueError("plot_bars needs at least one value")
    figure, (ax,) = _figure(1)
    bars = ax.bar(list(values), list(values.values()))
    ax.bar_label(bars, fmt="%.1f", fontsize="small")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)
