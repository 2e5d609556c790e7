"""The book's figure style: transparent backgrounds, and a foreground legible on the light and the dark page."""

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from bnrepro.plotting import FOREGROUND, contrast_ratio, fig_to_png, use_book_style

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
