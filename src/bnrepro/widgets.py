"""Sliders that work in the static HTML book, without a kernel.

Every frame is precomputed as a PNG `Image` inside a `Stack`; a `SelectionSlider` is `jslink`-ed to the stack's
`selected_index`, so moving the slider switches frames entirely in the browser (the link is a widget of its own
whose state is saved in the executed notebook). The slider's readout shows the frame's label, e.g. the training step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from bnrepro.plotting import fig_to_png


def step_slider(images: Sequence[bytes], labels: Sequence[str | int], description: str = "step",
                start: int = 0) -> widgets.VBox:
    """A slider over `labels` showing `images[i]` (PNG bytes) for label i, opening on frame `start` (negative:
    from the end); a VBox of the slider and the stack."""
    if not images or len(images) != len(labels):
        raise ValueError(f"need one label per image and at least one image, got {len(images)} and {len(labels)}")
    if not -len(images) <= start < len(images):
        raise ValueError(f"no frame {start} among {len(images)}")
    start %= len(images)
    frames = [widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="100%", height="auto"))
              for png in images]
    stack = widgets.Stack(frames, selected_index=start)
    slider = widgets.SelectionSlider(
        options=[(str(label), i) for i, label in enumerate(labels)], index=start, description=description,
        readout=True, continuous_update=True, style={"description_width": "initial"},
        layout=widgets.Layout(width="100%", max_width="36rem"),
    )
    widgets.jslink((slider, "index"), (stack, "selected_index"))
    return widgets.VBox([slider, stack])


def figure_slider(draw: Callable[[Any], Figure], values: Sequence[Any], description: str = "step",
                  start: Any = None) -> widgets.VBox:
    """`step_slider` over `values`, frame i being `draw(values[i])` rendered to PNG (the figure is closed), opening
    on the value `start` (default: the last, e.g. the whole of training)."""
    values = list(values)
    index = len(values) - 1 if start is None else values.index(start)
    return step_slider([fig_to_png(draw(v)) for v in values], values, description, index)
