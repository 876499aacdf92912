"""Figures for the paper demos' ``--plot PATH`` option (the optional ``plot`` extra).

``pip install 'refseq[plot]'`` installs matplotlib; nothing else in refseq needs it, so it is
imported only here and only when a figure is drawn (:func:`require_matplotlib`). Figures are
drawn on matplotlib's Agg canvas directly (no pyplot, no change of the global backend), at
100 dpi; a PNG is stored with a 256-colour palette, so it stays well under 100 KB.

A demo uses this module in three steps:

1. ``add_plot_option(parser)``: the ``--plot PATH`` option, whose converter rejects a file
   name without a known extension (``.png``, ``.svg``, ``.pdf``);
2. ``check_plot_option(parser, args.plot)`` right after parsing, before the (possibly long) run:
   matplotlib must import and PATH must be writable (parent folders are created). Either
   failure is an argparse error, ``error: argument --plot: ...`` and exit status 2;
3. one helper per figure kind below, e.g. :func:`cost_vs_length`, with the measured numbers.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "SUFFIXES",
    "PlotUnavailableError",
    "bars",
    "accuracy_vs_pruning",
    "add_plot_option",
    "check_plot_option",
    "cost_vs_length",
    "norms_over_time",
    "plot_path",
    "prepare",
    "require_matplotlib",
    "sweep",
    "training_curves",
]

SUFFIXES = (".png", ".svg", ".pdf")
DPI = 100
_INSTALL = "install the plot extra: pip install 'refseq[plot]' (or pip install matplotlib)"


class PlotUnavailableError(ImportError):
    """matplotlib is not installed (the ``plot`` extra)."""


def require_matplotlib():
    """``(Figure, FigureCanvasAgg)`` from matplotlib, or :class:`PlotUnavailableError`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(f"figures need matplotlib, which is not installed; "
                                   f"{_INSTALL}") from exc
    return Figure, FigureCanvasAgg


# --- the --plot option ----------------------------------------------------------------------


def plot_path(text: str) -> Path:
    """``type=`` converter for ``--plot``: a file name ending in .png, .svg or .pdf."""
    path = Path(text)
    if not text or path.name in ("", ".", ".."):
        raise argparse.ArgumentTypeError(f"must be a file name ending in "
                                         f"{', '.join(SUFFIXES)}, got {text!r}")
    if path.suffix.lower() not in SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"unsupported figure format {path.suffix or '(no extension)'!r} in {text!r}; "
            f"use one of {', '.join(SUFFIXES)}")
    return path


def prepare(path) -> Path:
    """Check that a figure can be written to ``path`` before any work is done.

    Imports matplotlib (:class:`PlotUnavailableError` if absent), creates the parent folders and
    checks that a file can be created there (``OSError`` with the reason otherwise).
    """
    require_matplotlib()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a file name")
    parent = path.parent
    blocking = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise NotADirectoryError(f"cannot write a figure to {str(path)!r}: {str(blocking)!r} is "
                                 "a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".refseq-plot-"):
            pass  # the folder takes new files (os.access is blind to read-only mounts)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{str(path)!r} exists and is not writable")
    except OSError as exc:
        raise type(exc)(f"cannot write a figure to {str(path)!r}: "
                        f"{exc.strerror or exc}") from exc
    return path


def add_plot_option(parser: argparse.ArgumentParser, what: str = "a figure") -> None:
    """Add ``--plot PATH`` to a demo's parser."""
    parser.add_argument(
        "--plot", type=plot_path, default=None, metavar="PATH",
        help=f"also write {what} to PATH ({', '.join(SUFFIXES)}; parent folders are created); "
             "needs the plot extra (matplotlib)")


def check_plot_option(parser: argparse.ArgumentParser, path) -> None:
    """:func:`prepare` ``path`` (if given); a failure ends the run through ``parser.error``."""
    if path is None:
        return
    try:
        prepare(path)
    except (ImportError, OSError) as exc:
        parser.error(f"argument --plot: {exc}")


# --- drawing ----------------------------------------------------------------------------------


def _figure(ncols: int = 1, width: float = 7.0, height: float = 4.4, sharey: bool = False):
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, sharey=sharey, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    return fig, list(axes)


def _save(fig, path) -> Path:
    """Write ``fig``; a PNG is reduced to a 256-colour palette (about 3x smaller, no visible
    change for line plots) with Pillow, which matplotlib itself requires."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() != ".png":
        fig.savefig(path, dpi=DPI)
        return path
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    palette.save(path, format="PNG", optimize=True)
    return path


def cost_vs_length(path, t, series: dict, *, title: str, window: int | None = None) -> Path:
    """Per-token wall time against the number of tokens streamed, log-log.

    ``t (n,)`` token counts; ``series``: label -> per-token time in microseconds ``(n,)``.
    A dotted ``∝ t`` guide is drawn through the last point of the last series.
    """
    fig, (ax,) = _figure()
    t = np.asarray(t, dtype=float)
    markers = "os^vD"
    for i, (label, us) in enumerate(series.items()):
        ax.loglog(t, us, marker=markers[i % len(markers)], ms=4, label=label)
    last = np.asarray(list(series.values())[-1], dtype=float)
    guide = last[-1] * t / t[-1]
    low = min(float(np.min(us)) for us in series.values())
    keep = guide >= 0.5 * low  # the guide stays within the data's range
    ax.loglog(t[keep], guide[keep], ":", color="gray", label="∝ t (linear growth), for scale")
    ax.set_xlabel("tokens streamed so far, t (log scale)")
    ylabel = "wall time per token (µs, log scale)"
    if window:
        ylabel = f"wall time per token (µs, log scale)\nmedian of the {window} tokens ending at t"
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def norms_over_time(path, panels, *, title: str, ylabel: str) -> Path:
    """Gradient norms against time, log y, one panel per model (each with its own y range).

    ``panels``: list of ``(panel_title, lines, guides)``; ``lines`` and ``guides`` are lists of
    ``(label, y (T,), style)`` with ``y[t - 1]`` the value at step t and ``style`` a dict of line
    keywords. The y range fits the ``lines``; ``guides`` (e.g. bounds) are drawn over it and may
    leave it.
    """
    fig, axes = _figure(len(panels), width=5.0 * len(panels), height=4.6)
    for ax, (panel_title, lines, guides) in zip(axes, panels):
        for label, y, style in lines:
            y = np.asarray(y, dtype=float)
            ax.semilogy(np.arange(1, len(y) + 1), y, label=label, **style)
        ax.autoscale_view()
        ax.autoscale(False)  # the guides below do not stretch the axes
        for label, y, style in guides:
            y = np.asarray(y, dtype=float)
            ax.semilogy(np.arange(1, len(y) + 1), y, label=label, **style)
        ax.set_title(panel_title)
        ax.set_xlabel("time step t")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def training_curves(path, panels, *, title: str, ylabel: str, xlabel: str = "training step",
                    reference=None, legend_loc: str = "best") -> Path:
    """Training curves, one panel per setting (shared y), one line per seed.

    ``panels``: list of ``(panel_title, lines)``, ``lines`` a list of ``(label, step (n,),
    y (n,))`` with ``y[i]`` the value after step ``step[i]``. ``reference``: optional
    ``(label, value)`` drawn as a dashed horizontal line in every panel. ``legend_loc``: where
    matplotlib puts each panel's legend.
    """
    fig, axes = _figure(len(panels), width=4.2 * len(panels), height=4.6, sharey=True)
    for ax, (panel_title, lines) in zip(axes, panels):
        for label, step, y in lines:
            ax.plot(step, y, label=label, lw=1.2)
        if reference is not None:
            ax.axhline(reference[1], ls="--", color="gray", lw=1, label=reference[0])
        ax.set_title(panel_title, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.legend(fontsize="small", loc=legend_loc)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    return _save(fig, path)


def accuracy_vs_pruning(path, removed_percent, series: dict, *, title: str, xlabel: str,
                        references=()) -> Path:
    """Accuracy against the share of weights removed.

    ``removed_percent (n,)``; ``series``: label -> accuracy ``(n,)`` in [0, 1];
    ``references``: ``(label, value)`` pairs drawn as horizontal lines (e.g. base, chance).
    """
    fig, (ax,) = _figure()
    markers = "os^vD"
    for i, (label, acc) in enumerate(series.items()):
        ax.plot(removed_percent, acc, marker=markers[i % len(markers)], ms=5, label=label)
    for (label, value), ls in zip(references, ("--", ":", "-.")):
        ax.axhline(value, ls=ls, color="gray", lw=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(0.4, 1.02)
    ax.set_xlim(-2, 102)
    ax.set_title(title)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 0.2), fontsize="small")  # above chance
    return _save(fig, path)


def sweep(path, x, panels, *, title: str, xlabel: str) -> Path:
    """Summary numbers against a swept setting, one panel per quantity, log x.

    ``x (n,)`` the setting (>= 0; a 0 switches the axis to symlog); ``panels``: list of
    ``(ylabel, y (n,))``; a panel whose values are all > 0 and span more than a factor of 30 gets
    a log y axis (the helper appends ", log scale" to its label); a linear axis of non-negative
    values starts at 0, so that small differences do not look large.
    """
    x = np.asarray(x, dtype=float)
    fig, axes = _figure(len(panels), width=4.6 * len(panels), height=4.0)
    positive = x[x > 0]
    for ax, (ylabel, y) in zip(axes, panels):
        y = np.asarray(y, dtype=float)
        ax.plot(x, y, marker="o")
        if np.all(y > 0) and y.max() > 30 * y.min():
            ax.set_yscale("log")
            ylabel += ", log scale"
        elif np.all(y >= 0):
            ax.set_ylim(bottom=0)  # a linear axis of a non-negative quantity starts at 0
        if positive.size and positive.size == x.size:
            ax.set_xscale("log")
        elif positive.size:
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    return _save(fig, path)


def bars(path, labels, values, *, title: str, ylabel: str, errors=None, reference=None,
         groups=None) -> Path:
    """One bar per method, e.g. tokens emitted per target call; the value is written on the bar.

    ``labels (n,)`` bar names; ``values (n,)`` heights (>= 0, the axis starts at 0); ``errors``:
    optional ``(n,)`` half-widths drawn as error bars (e.g. a 95% interval); ``reference``:
    optional ``(label, value)`` drawn as a dashed horizontal line (e.g. 1.0 for plain decoding);
    ``groups``: optional ``(n,)`` group names; bars of one group share a colour and the legend
    names the groups (e.g. "baseline", "paper's method").
    """
    values = np.asarray(values, dtype=float)
    if len(labels) != values.size:
        raise ValueError(f"labels and values must have the same length, got {len(labels)} and "
                         f"{values.size}")
    fig, (ax,) = _figure(width=max(5.0, 0.9 * values.size + 2.0), height=4.4)
    x = np.arange(values.size)
    names = list(dict.fromkeys(groups)) if groups is not None else [None]
    colours = [f"C{names.index(g)}" for g in groups] if groups is not None else "C0"
    ax.bar(x, values, color=colours, yerr=errors, capsize=3 if errors is not None else 0)
    tops = values + (np.asarray(errors, dtype=float) if errors is not None else 0.0)
    for xi, v, top in zip(x, values, tops):
        ax.annotate(f"{v:.2f}", (xi, top), ha="center", va="bottom", fontsize="small",
                    xytext=(0, 2), textcoords="offset points")
    if groups is not None:
        for i, name in enumerate(names):
            ax.bar([0], [0], color=f"C{i}", label=name)  # legend entries only
    if reference is not None:
        ax.axhline(reference[1], ls="--", color="gray", lw=1, label=reference[0])
    if groups is not None or reference is not None:
        ax.legend(fontsize="small", loc="upper left")
    ax.set_xticks(x, labels, rotation=25 if max(len(s) for s in labels) > 8 else 0, ha="right"
                  if max(len(s) for s in labels) > 8 else "center")
    ax.set_ylim(0, 1.25 * float(np.max(tops)))  # room for the labels and the legend
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(False, axis="x")
    return _save(fig, path)


def decision_regions(path, xs, panels: dict, *, points=None, n_classes: int, title: str) -> Path:
    """Class decision regions of 2-D classifiers, one panel per model (shared axes).

    ``xs (P,)`` grid coordinates along each axis; ``panels``: title -> predicted classes
    ``(P, P)`` with ``[i, j]`` the prediction at ``(xs[j], xs[i])``; ``points``: optional
    ``(X (n, 2), y (n,))`` drawn over every panel, outlined; ``n_classes`` fixes the colours
    (class ``c`` is colour ``c`` of a qualitative map in every panel).
    """
    xs = np.asarray(xs, dtype=float)
    fig, axes = _figure(len(panels), width=3.2 * len(panels) + 0.6, height=3.8, sharey=True)
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    colours = [f"C{c % 10}" for c in range(n_classes)]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, n_classes), n_classes)
    step = (xs[1] - xs[0]) / 2 if xs.size > 1 else 0.5
    extent = (xs[0] - step, xs[-1] + step, xs[0] - step, xs[-1] + step)
    for ax, (panel_title, labels) in zip(axes, panels.items()):
        ax.grid(False)
        ax.imshow(np.asarray(labels), origin="lower", extent=extent, cmap=cmap, norm=norm,
                  alpha=0.45, interpolation="nearest", aspect="equal")
        if points is not None:
            X, y = np.asarray(points[0], dtype=float), np.asarray(points[1])
            ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, norm=norm, s=9, edgecolors="black",
                       linewidths=0.3)
        ax.set_title(panel_title, fontsize="medium")
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    handles = [Line2D([], [], marker="s", ls="", color=colours[c], label=f"class {c}")
               for c in range(n_classes)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(n_classes, 8),
               fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


__all__ += ["decision_regions"]


def prompt_sizes(path, steps, series: dict, *, title: str, bound=None, marks=None) -> Path:
    """Prompt size (words) against the step, one line per method, log y.

    ``steps (n,)``; ``series``: label -> words per step ``(n,)``; ``bound``: optional
    ``(label, value)`` drawn as a dashed horizontal line (a proven upper bound); ``marks``:
    optional ``{label: step}`` drawn as dotted vertical lines (e.g. when content was planted).
    """
    steps = np.asarray(steps, dtype=float)
    fig, (ax,) = _figure(width=7.0, height=4.4)
    for label, words in series.items():
        ax.plot(steps, np.asarray(words, dtype=float), label=label, lw=1.5)
    if bound is not None:
        ax.axhline(bound[1], ls="--", color="gray", lw=1, label=f"{bound[0]} ({bound[1]:g})")
    for i, (label, step) in enumerate((marks or {}).items()):
        ax.axvline(step, ls=":", color=f"C{i + 4}", lw=1, label=f"{label} (step {step})")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("prompt size (words, log scale)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)


__all__ += ["prompt_sizes"]
