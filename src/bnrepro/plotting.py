"""The book's matplotlib look: transparent figures drawn in a grey that reads on a light and a dark page alike (the
book's light and dark themes, JupyterLab's too), and compact PNGs for sliders."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

#: Text, axes, ticks and grid. The grey whose contrast is about equal on the book's light page (white) and its dark
#: one (#121212): 4.2:1 and 4.4:1 (`contrast_ratio`, WCAG's; black on white is 21:1).
FOREGROUND = "#7b7b7b"

#: rcParams every chapter uses: no figure or axes background, so a figure takes the page's colour in either theme.
BOOK_STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "figure.facecolor": "none",
    "axes.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.transparent": True,
    "text.color": FOREGROUND,
    "axes.labelcolor": FOREGROUND,
    "axes.edgecolor": FOREGROUND,
    "xtick.color": FOREGROUND,
    "ytick.color": FOREGROUND,
    "grid.color": FOREGROUND,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
}


def contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two colours (anything matplotlib reads as a colour; 1 to 21)."""
    def luminance(colour) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in matplotlib.colors.to_rgb(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def use_book_style() -> None:
    """Apply BOOK_STYLE for the rest of the session (call once, at the top of a chapter)."""
    matplotlib.rcParams.update(BOOK_STYLE)


def fig_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of `fig` on a transparent background, then close it (a slider renders many figures; none should
    pile up or also be displayed inline)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, transparent=True, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
