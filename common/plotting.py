"""One matplotlib style for every figure (Agg backend, no display needed)."""

from __future__ import annotations

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
# Applied once on import so labels, legends and texts added after figure() share the style.
plt.rcParams.update(STYLE)

# Colour-blind-safe qualitative palette (Okabe–Ito).
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


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
    """Creates a figure in the house style; returns (fig, axes) like plt.subplots (axes squeezed)."""
    width = width if width is not None else 4.2 * ncols
    height = height if height is not None else 3.3 * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **subplots_kw)
    return fig, axes


def save(fig, path: str) -> str:
    """Saves `fig` atomically to `path` (format from the extension), creating directories; closes it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    ext = os.path.splitext(path)[1] or ".png"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fig.", suffix=ext)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)
    return path
