"""The book's figure style: transparent backgrounds, and a foreground legible on the light and the dark page."""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from bnrepro.plotting import (FOREGROUND, SEQUENCE_CMAP, contrast_ratio, fig_to_png, legibility, read_legibility,
                              use_book_style)

# The page colours of the book's two themes, as book/check_site.py reads them from the built site.
LIGHT_PAGE, DARK_PAGE = "#ffffff", "#121212"


def test_contrast_ratio_matches_wcag():
    assert contrast_ratio("black", "white") == pytest.approx(21) and contrast_ratio("#777", "#777") == 1
    assert contrast_ratio("#767676", "white") == pytest.approx(4.54, abs=0.01)  # WCAG's own AA example


def test_foreground_reads_on_both_pages():
    """At least 4:1 on each page (WCAG asks 3:1 of graphics and large text), and no page favoured by more than 10%."""
    light, dark = contrast_ratio(FOREGROUND, LIGHT_PAGE), contrast_ratio(FOREGROUND, DARK_PAGE)
    assert light >= 4 and dark >= 4, (light, dark)
    assert abs(light / dark - 1) < 0.1, (light, dark)


def test_every_sequence_colour_reads_on_both_pages():
    colours = SEQUENCE_CMAP(np.linspace(0, 1, 50))[:, :3]
    for page in (LIGHT_PAGE, DARK_PAGE):
        assert min(contrast_ratio(c, page) for c in colours) >= 2, page


def test_book_style_draws_text_in_the_foreground_on_no_background():
    with matplotlib.rc_context():
        use_book_style()
        fig, ax = plt.subplots()
        ax.set_title("t")
        assert fig.get_facecolor()[3] == 0 and ax.get_facecolor()[3] == 0
        assert matplotlib.colors.same_color(ax.title.get_color(), FOREGROUND)
        assert matplotlib.colors.same_color(ax.xaxis.label.get_color(), FOREGROUND)
        png = Image.open(io.BytesIO(fig_to_png(fig))).convert("RGBA")
    corners = [png.getpixel(p) for p in [(0, 0), (png.width - 1, png.height - 1)]]
    assert all(px[3] == 0 for px in corners), corners  # the page shows through
    assert np.asarray(png)[..., 3].max() == 255  # and something was drawn


def _crossed(legend_loc: str, **legend):
    """Two lines crossing at the centre of one panel titled "p", with a legend at `legend_loc`."""
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    x = np.linspace(0, 1, 50)
    ax.plot(x, x, label="rising")
    ax.plot(x, 1 - x, label="falling")
    ax.set_title("p")
    (fig if legend_loc.startswith("outside") else ax).legend(loc=legend_loc, **legend)
    return fig


def test_a_legend_on_data_is_named_and_one_beside_it_is_not():
    assert legibility(_crossed("center"))["legends_on_data"] == [
        "the legend of panel 'p' lies on 'falling' in panel 'p'", "the legend of panel 'p' lies on 'rising' in panel 'p'"]
    assert legibility(_crossed("outside upper center", ncol=2))["legends_on_data"] == []
    plt.close("all")


def test_bands_bars_and_markers_count_as_data_and_reference_lines_do_not():
    def covered(draw) -> list[str]:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.set(xlim=(0, 1), ylim=(0, 1))
        draw(ax)
        ax.plot([], [], label="key")
        ax.legend(loc="center")
        out = legibility(fig)["legends_on_data"]
        plt.close(fig)
        return out

    assert covered(lambda ax: ax.fill_between([0, 1], [0.4, 0.4], [0.6, 0.6], label="band")) != []
    assert covered(lambda ax: ax.bar([0.5], [0.9], width=0.2)) != []
    assert covered(lambda ax: ax.scatter([0.5], [0.5])) != []
    assert covered(lambda ax: ax.plot([0.5], [0.5], "o")) != []
    assert covered(lambda ax: (ax.axhline(0.5), ax.axvline(0.5), ax.axhspan(0.4, 0.6))) == []
    assert covered(lambda ax: ax.plot([0, 0.1, np.nan, 0.9, 1], [0.5, 0.5, np.nan, 0.5, 0.5])) == []  # a gap there
    assert covered(lambda ax: ax.plot([0.05, 0.95], [0.05, 0.95])) != []  # no point inside, the segment crosses


def test_text_px_is_the_smallest_drawn_text_at_the_png_dpi():
    fig, ax = plt.subplots()
    ax.tick_params(labelsize=6)
    ax.set_title("big", fontsize=20)
    ax.text(0.5, 0.5, "hidden", fontsize=2, visible=False)
    ax.text(0.5, 0.5, " ", fontsize=3)  # draws nothing a reader sees
    assert legibility(fig, dpi=144)["text_px"] == pytest.approx(6 * 144 / 72, abs=0.01)
    ax.set_axis_off()  # the tick labels are no longer drawn
    assert legibility(fig, dpi=72)["text_px"] == pytest.approx(20, abs=0.01)
    plt.close(fig)


def test_the_png_carries_its_legibility_record():
    fig = _crossed("center")
    expected = legibility(fig, dpi=100)
    assert read_legibility(fig_to_png(fig, dpi=100)) == expected
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    assert read_legibility(buf.getvalue()) is None


def test_ipython_shows_figures_with_their_legibility_record():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        with matplotlib.rc_context():
            use_book_style()
            fig = _crossed("center")
            data, _ = shell.display_formatter.format(fig)
    finally:
        InteractiveShell.clear_instance()
        plt.close("all")
    assert read_legibility(data["image/png"])["legends_on_data"]


def test_data_counts_only_inside_its_own_panel():
    """A line running off its panel (clipped there) does not lie on a legend in the panel below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4, 5))
    top.plot([0, 1], [0, -100])
    top.set_ylim(-1, 1)
    bottom.set_axis_off()
    bottom.plot([], [], label="key")
    bottom.legend(loc="center")
    assert legibility(fig)["legends_on_data"] == []
    plt.close(fig)
