"""The book's matplotlib look: transparent figures drawn in a grey that reads on a light and a dark page alike (the
book's light and dark themes, JupyterLab's too), compact PNGs for sliders, and the legibility record every figure's
PNG carries (its smallest text, and any legend lying on data), which book/check_site.py reads on the built page."""

from __future__ import annotations

import io
import json

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.path import Path
from matplotlib.transforms import Bbox

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

#: A sequence of colours (e.g. layers, learning rates): viridis without its darkest and palest ends, so that every
#: colour reads on the light and the dark page alike (contrast at least 2:1 on both, as tab:orange on white).
SEQUENCE_CMAP = matplotlib.colors.ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.2, 0.75, 256)),
                                                 "book_viridis")
#: The width (inches) of a figure the book shows at its own size: at 100 dpi, the text column of a 1280-px window
#: (about 690 CSS px). A wider figure is scaled down, its text with it.
WIDTH = 6.8
#: The smallest text a figure may show on the page, in CSS px (book/check_site.py scales a figure's smallest text
#: by the width the page draws it at).
MIN_TEXT_PX = 9.0
#: The PNG text chunk holding a figure's `legibility` record, as JSON.
LEGIBILITY_KEY = "bnrepro-legibility"


def contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two colours (anything matplotlib reads as a colour; 1 to 21)."""
    def luminance(colour) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in matplotlib.colors.to_rgb(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _pieces(path: Path) -> list[Path]:
    """`path` cut at its NaN vertices (matplotlib's path tests would join the pieces across the gap)."""
    v = path.vertices
    cut = np.flatnonzero(~np.isfinite(v).all(axis=1))
    pieces = (piece[np.isfinite(piece).all(axis=1)] for piece in np.split(v, cut))
    return [Path(piece) for piece in pieces if len(piece)]


def _covers(box, kind: str, shape) -> bool:
    """Whether `box` (display space) covers some of `shape`: "points" an (n, 2) array, "lines" or "areas" Paths."""
    if kind == "points":
        return bool(((shape >= box.min) & (shape <= box.max)).all(axis=1).any())
    return any(p.intersects_bbox(box, filled=kind == "areas") for p in shape)


def _data_shapes(ax) -> list[tuple[str, str, object]]:
    """(name, kind, shape) of every artist of `ax` drawn in data coordinates, in display space (see `_covers`):
    lines, markers, filled bands and bars; not axhline/axvline/axhspan, which mark reference values across the
    whole axes."""
    shapes = []
    for line in ax.lines:
        if line.get_visible() and line.get_transform() is ax.transData and len(line.get_xydata()):
            path = line.get_transform().transform_path(line.get_path())
            if line.get_linestyle() in ("None", "", " "):  # markers only
                shapes.append((line.get_label(), "points", path.vertices))
            else:
                shapes.append((line.get_label(), "lines", _pieces(path)))
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if coll.get_transform() is ax.transData:  # fill_between and other polygons in data coordinates
            shapes.append((coll.get_label(), "areas", [coll.get_transform().transform_path(p)
                                                       for p in coll.get_paths()]))
        elif coll.get_offset_transform() is ax.transData:  # scatter: markers at the offsets
            pts = np.asarray(coll.get_offsets(), float)
            shapes.append((coll.get_label(), "points", coll.get_offset_transform().transform(pts)))
    for patch in ax.patches:
        if patch.get_visible() and patch.get_data_transform() is ax.transData:
            shapes.append((patch.get_label(), "areas", [patch.get_transform().transform_path(patch.get_path())]))
    return shapes


def _where(ax) -> str:
    return f"panel {ax.get_title()!r}" if ax.get_title() else "a panel"


def legibility(fig: Figure, dpi: float | None = None) -> dict:
    """Draw `fig` and return what a reader's eye needs of it: `text_px`, its smallest drawn text in pixels of a
    PNG saved at `dpi` (default: the figure's), and `legends_on_data`, one line per legend whose box covers a
    plotted point, line, band or bar of some panel."""
    renderer = fig.canvas.get_renderer()
    sizes: list[float] = []
    draw_text = renderer.draw_text

    def spy(gc, x, y, s, prop, *args, **kwargs):  # every string the figure draws passes here, with its font
        if s.strip():
            sizes.append(prop.get_size_in_points())
        return draw_text(gc, x, y, s, prop, *args, **kwargs)

    renderer.draw_text = spy
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    problems = []
    figures, legends = [fig], []
    while figures:  # the figure and its subfigures, each of which may hold legends
        f = figures.pop()
        figures += f.subfigs
        legends += [(leg, "the figure's legend") for leg in f.legends]
    legends += [(ax.get_legend(), f"the legend of {_where(ax)}") for ax in fig.axes if ax.get_legend()]
    for leg, whose in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            seen = Bbox.intersection(box, ax.bbox)  # data shows only inside its axes (clipped there)
            for name, kind, shape in _data_shapes(ax) if seen is not None else ():
                if _covers(seen, kind, shape):
                    what = repr(name) if not name.startswith("_") else "data"
                    problems.append(f"{whose} lies on {what} in {_where(ax)}")
    scale = (dpi or fig.dpi) / 72
    return {"text_px": round(min(sizes) * scale, 2) if sizes else None, "legends_on_data": sorted(set(problems))}


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """PNG bytes of `fig` (cropped to what it draws, on a transparent background) carrying its `legibility` record
    in the text chunk LEGIBILITY_KEY; the figure stays open."""
    dpi = dpi or fig.dpi
    record = json.dumps(legibility(fig, dpi))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, transparent=True, bbox_inches="tight", metadata={LEGIBILITY_KEY: record})
    return buf.getvalue()


def read_legibility(png: bytes) -> dict | None:
    """The `legibility` record a PNG made by `figure_png` carries; None for any other image."""
    from PIL import Image

    text = Image.open(io.BytesIO(png)).text.get(LEGIBILITY_KEY)
    return json.loads(text) if text else None


def use_book_style() -> None:
    """Apply BOOK_STYLE for the rest of the session (call once, at the top of a chapter), and in IPython show every
    figure as `figure_png` makes it (with its legibility record)."""
    matplotlib.rcParams.update(BOOK_STYLE)
    from IPython import get_ipython

    if (shell := get_ipython()) is not None:
        from matplotlib_inline import backend_inline  # noqa: F401 - sets the inline formatters now, not after ours

        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def fig_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """`figure_png` of `fig`, then close it (a slider renders many figures; none should pile up or also be
    displayed inline)."""
    png = figure_png(fig, dpi)
    plt.close(fig)
    return png
