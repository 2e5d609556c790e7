"""The static-HTML sliders: structure, client-side link, and valid PNG frames."""

import io

import ipywidgets
import matplotlib.pyplot as plt
import pytest
from ipywidgets.widgets.widget import _instances
from ipywidgets.widgets.widget_link import Link
from PIL import Image

from bnrepro.plotting import fig_to_png
from bnrepro.widgets import figure_slider, step_slider


def _draw(k):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, k])
    return fig


def _links_from(slider):
    """The jslinks whose source is `slider` (they live in the widget registry, not in the box)."""
    return [w for w in _instances.values() if isinstance(w, Link) and w.source[0] is slider]


def test_fig_to_png_is_a_transparent_png_and_closes_the_figure():
    fig = _draw(1)
    png = fig_to_png(fig)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 0
    assert img.convert("RGBA").getpixel((0, 0))[3] == 0  # the page's colour shows around the plot, in either theme
    assert not plt.fignum_exists(fig.number)


def test_figure_slider_structure():
    plt.close("all")  # figures other test files left open on this worker: the slider must close its own
    values = [0, 1, 2, 3, 4]
    box = figure_slider(_draw, values, description="k")
    slider, stack = box.children
    assert isinstance(slider, ipywidgets.SelectionSlider) and isinstance(stack, ipywidgets.Stack)
    assert slider.options == tuple((str(v), i) for i, v in enumerate(values)) and slider.description == "k"
    assert slider.index == stack.selected_index == len(values) - 1  # opens on the last frame by default
    assert len(stack.children) == len(values)
    assert all(isinstance(img, ipywidgets.Image) for img in stack.children)
    for img in stack.children:
        assert img.format == "png" and Image.open(io.BytesIO(img.value)).format == "PNG"
    assert len({img.value for img in stack.children}) == len(values)  # every frame differs
    (link,) = _links_from(slider)
    assert link.source == (slider, "index") and link.target == (stack, "selected_index")
    assert not plt.get_fignums()


def test_slider_opens_on_the_frame_asked_for():
    slider, stack = figure_slider(_draw, [1, 2, 3], start=2).children
    assert slider.index == stack.selected_index == 1 and slider.value == 1
    slider, stack = step_slider([b"a", b"b", b"c"], ["x", "y", "z"], start=-1).children
    assert slider.index == stack.selected_index == 2
    with pytest.raises(ValueError):
        figure_slider(_draw, [1, 2], start=5)


def test_step_slider_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        step_slider([b"x"], ["a", "b"])
    with pytest.raises(ValueError):
        step_slider([], [])
    with pytest.raises(ValueError):
        step_slider([b"x"], ["a"], start=1)
