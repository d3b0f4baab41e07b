"""One matplotlib style for every figure, applied without touching global state.

    from common import plotting

    @plotting.styled                      # the house style while this function draws
    def loss_figure(results, path):
        fig, ax = plotting.figure(1, 2, width=9.0)
        ax[0].plot(...); ax[0].legend()
        return plotting.save(fig, path)

    with plotting.style():                # the same in a notebook cell
        fig, ax = plotting.figure()
        ...

Importing this module changes nothing: no backend is forced and rcParams are left alone, so figures show inline in
Jupyter/Colab and a user's own style is kept outside these helpers. The style is `matplotlib.rc_context(STYLE)`:
`figure()` and `save()` apply it to what they create (figure, axes, the saved file) by themselves, and `styled` /
`style()` cover the labels, lines and legends a caller adds in between (matplotlib reads those rcParams when each
artist is made). The backend is matplotlib's own choice: Agg on a machine without a display (no DISPLAY or
WAYLAND_DISPLAY on Linux), the notebook's inline backend under IPython, an interactive one on a desktop, or whatever
MPLBACKEND says.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import matplotlib

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}

# Colour-blind-safe qualitative palette (Okabe–Ito).
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def style() -> contextlib.AbstractContextManager:
    """A context in which matplotlib uses the house style (rcParams restored on exit)."""
    return matplotlib.rc_context(STYLE)


def styled(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: runs a figure-drawing function inside `style()`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with style():
            return fn(*args, **kwargs)

    return wrapper


def palette(n: int) -> list:
    """Returns `n` colours: the qualitative palette for n <= 8, a viridis ramp beyond."""
    if n <= len(_PALETTE):
        return _PALETTE[:n]
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float | None = None,
    height: float | None = None,
    **subplots_kw,
):
    """Creates a figure and axes in the house style; returns (fig, axes) like plt.subplots (axes squeezed).

    Artists added afterwards (lines, labels, legends) get the style inside `styled` / `style()`.
    """
    import matplotlib.pyplot as plt

    width = width if width is not None else 4.2 * ncols
    height = height if height is not None else 3.3 * nrows
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **subplots_kw)
    return fig, axes


def save(fig, path: str) -> str:
    """Saves `fig` atomically to `path` (format from the extension) in the house style, creating directories;
    closes it."""
    import matplotlib.pyplot as plt

    from common import metrics

    if not metrics.is_writer():  # multi-host: process 0 alone writes figures
        plt.close(fig)
        return path
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ext = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fig.", suffix=ext)
    os.close(fd)
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would (0666 less the umask), so
        # collaborators on a shared file system can open the figure.
        os.chmod(tmp, 0o666 & ~metrics.umask())
        with style():
            fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)
    return path
