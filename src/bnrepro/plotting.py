"""The book's matplotlib look: opaque white figures (readable in the dark theme too) and compact PNGs for sliders."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

#: rcParams every chapter uses; white, not transparent, so figures stay legible on a dark page.
BOOK_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
}


def use_book_style() -> None:
    """Apply BOOK_STYLE for the rest of the session (call once, at the top of a chapter)."""
    matplotlib.rcParams.update(BOOK_STYLE)


def fig_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of `fig` on a white background, then close it (a slider renders many figures; none should pile up
    or also be displayed inline)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", transparent=False, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
