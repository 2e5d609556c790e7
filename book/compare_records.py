"""Compare what the book shows on two record stores: every page's glued values, displayed text, figures and slider
frames, and every section's claims at each budget and seed the stores hold.

    python book/compare_records.py OLD_RECORDS NEW_RECORDS

For each store in turn (BNREPRO_RECORDS), every notebook page's code cells run in this process, at the pages' own
parameters, with `myst_nb.glue` captured and every figure and slider frame read for what it draws (texts, scales and
limits, each line's, collection's and image's numbers) and rendered to PNG; cells whose outputs nbval ignores
(timings) are skipped, and a cell that raises shows its error. Then `judge.load_section` judges every section at every
budget whose first seed's runs are recorded, at seeds 0, 1 and 2. It prints each difference and exits 1 if there is
any: numbers may differ by float32 rounding (relative 1e-6), text not at all; it also says which rendered images are
not identical and by how much. Written to check `python -m bnrepro compact-records`, which converts records in place:
run it on a copy of records/ before and after converting.
"""

from __future__ import annotations

import argparse
import ast
import io
import math
import os
import sys
from pathlib import Path

import ipywidgets
import jupytext
import matplotlib
import myst_nb
import numpy as np
from IPython.display import Markdown
from matplotlib.axes import Axes
from matplotlib.text import Text
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bnrepro import widgets  # noqa: E402
from bnrepro.budgets import BUDGETS  # noqa: E402
from bnrepro.judge import MissingRuns, load_section  # noqa: E402
from bnrepro.records import RunStore  # noqa: E402
from bnrepro.sections import SECTIONS  # noqa: E402

BOOK = Path(__file__).resolve().parent
RTOL = 1e-6  # float32 rounding of a quantity measured in float64
SEEDS = (0, 1, 2)


def pages() -> list[Path]:
    """The notebook pages: MyST Markdown whose front matter declares a kernelspec."""
    return sorted(p for p in BOOK.rglob("*.md") if "_build" not in p.parts and "node_modules" not in p.parts
                  and p.read_text().startswith("---") and "kernelspec:" in p.read_text().split("---", 2)[1])


def drawn(fig) -> list:
    """What a rendered figure draws, comparably: every text (titles, labels, ticks, legends), each axes' scales and
    limits, and the numbers of its lines, collections and images."""
    out = [t.get_text() for t in fig.findobj(Text)]
    for ax in fig.findobj(Axes):
        out.append((ax.get_xscale(), ax.get_yscale(), np.array(ax.get_xlim() + ax.get_ylim(), float)))
        out += [np.asarray(line.get_xydata(), float) for line in ax.get_lines()]
        for c in ax.collections:
            out += [np.asarray(path.vertices, float) for path in c.get_paths()] + [np.asarray(c.get_offsets(), float)]
        out += [np.asarray(im.get_array(), float) for im in ax.get_images()]
    return out


FRAMES: dict[bytes, list] = {}  # a slider frame's PNG -> what its figure drew


def _frame(fig, _png=widgets.fig_to_png) -> bytes:
    png = _png(fig)
    FRAMES[png] = drawn(fig)
    return png


widgets.fig_to_png = _frame


def shown(value) -> list:
    """What a cell's value shows, comparably: Markdown text, slider frames (what they draw, and their PNG), else its
    repr."""
    if isinstance(value, Markdown):
        return [("markdown", value.data)]
    if isinstance(value, ipywidgets.Image):
        return [("frame", FRAMES.pop(bytes(value.value), None), bytes(value.value))]
    if isinstance(value, ipywidgets.Box):
        return [x for child in value.children for x in shown(child)]
    if isinstance(value, ipywidgets.Widget):
        return [("widget", type(value).__name__, getattr(value, "options", None))]
    return [] if value is None else [("repr", repr(value))]


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def run_page(path: Path) -> dict:
    """Every glued value and every shown output of one page, its code run here; the PNGs of its figures and frames
    apart, in order."""
    glued, outputs = {}, []
    myst_nb.glue = lambda name, value, display=True: glued.__setitem__(name, value)
    env = {"__name__": "__main__"}
    nb = jupytext.read(path)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if "nbval-ignore-output" in cell.metadata.get("tags", []):
            continue
        tree = ast.parse(cell.source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        try:
            exec(compile(tree, f"{path.name}[{i}]", "exec"), env)
            value = eval(compile(ast.Expression(last.value), f"{path.name}[{i}]", "eval"), env) if last else None
        except Exception as e:  # shown as the page would show it; the next cells still run
            outputs.append((i, "error", f"{type(e).__name__}: {e}"))
            value = None
        outputs += [(i, *x) for x in shown(value)]
        for n in plt.get_fignums():
            fig = plt.figure(n)
            image = png(fig)  # drawn first, so that its texts and limits are final
            outputs.append((i, "figure", drawn(fig), image))
        plt.close("all")
    pngs = [(o[0], o[3]) for o in outputs if o[1] in ("figure", "frame")]
    return {"glue": glued, "outputs": [o[:3] if o[1] in ("figure", "frame") else o for o in outputs], "pngs": pngs}


def claims(store: RunStore) -> dict:
    """Every section's claims, at every budget whose first seed's runs the store holds: per seed each claim's
    verdicts, words and values, and the DLN variants' verdicts."""
    out = {}
    for number in SECTIONS:
        for budget, b in BUDGETS.items():
            if budget == "smoke" or (b.sections is not None and number not in b.sections):
                continue
            try:
                judged = load_section(number, budget, list(SEEDS), store=store)
            except MissingRuns:  # not recorded at this budget
                continue
            out[number, budget] = {
                "seeds": list(judged.seeds),
                "claims": {s: [(c.key, c.verdict, dict(c.readings), c.ours, dict(c.values)) for c in cs]
                           for s, cs in judged.claims.items()},
                "variants": {k: v.detail() for k, v in judged.variants.items()}}
    return out


def collect(records: Path) -> dict:
    os.environ["BNREPRO_RECORDS"] = str(records)
    return {"pages": {str(p.relative_to(BOOK)): run_page(p) for p in pages()}, "claims": claims(RunStore(records))}


def differences(a, b, where: str = "") -> list[str]:
    """Where `a` and `b` differ, as lines: numbers beyond RTOL, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(map(str, a.keys() ^ b.keys()))} in one only"]
        return [d for k in a for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        same = a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=0, equal_nan=True)
        return [] if same else [f"{where}: arrays differ (shapes {a.shape}, {b.shape})"]
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        same = (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=RTOL)
        return [] if same else [f"{where}: {a!r} against {b!r}"]
    return [] if a == b else [f"{where}: {str(a)[:200]!r} against {str(b)[:200]!r}"]


def count(tree) -> dict[str, int]:
    """How many glued values, outputs (cells that raised among them), figures and frames, and claims were
    compared."""
    pages = tree["pages"].values()
    return {"glued": sum(len(p["glue"]) for p in pages), "outputs": sum(len(p["outputs"]) for p in pages),
            "cells that raised": sum(o[1] == "error" for p in pages for o in p["outputs"]),
            "figures and frames": sum(len(p["pngs"]) for p in pages),
            "claims": sum(len(cs) for j in tree["claims"].values() for cs in j["claims"].values())}


def comparable(tree: dict) -> dict:
    """`tree` with each page's PNGs replaced by their number: what they draw is compared instead."""
    return {"pages": {k: {**page, "pngs": len(page["pngs"])} for k, page in tree["pages"].items()},
            "claims": tree["claims"]}


def pixels(old: dict, new: dict) -> list[str]:
    """Each rendered image that is not identical in the two, with how many pixels differ and by how much."""
    out = []
    for page in old["pages"]:
        for (cell, a), (_, b) in zip(old["pages"][page]["pngs"], new["pages"][page]["pngs"]):
            if a != b:
                x, y = (np.asarray(Image.open(io.BytesIO(p)).convert("RGB"), int) for p in (a, b))
                d = np.abs(x - y).max(axis=2) if x.shape == y.shape else None
                out.append(f"{page} cell {cell}: " + (f"sizes {x.shape} and {y.shape}" if d is None else
                           f"{(d > 0).sum()} of {d.size} pixels differ, by at most {d.max()} of 255"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path, help="a record store (e.g. a copy of records/ before converting)")
    p.add_argument("new", type=Path, help="the other store (the same records converted)")
    args = p.parse_args(argv)
    old, new = collect(args.old), collect(args.new)
    diffs = differences(comparable(old), comparable(new))
    print(f"compared {count(old)}; sections judged: {', '.join(f'{n} at {b}' for n, b in old['claims'])}")
    print("\n".join(diffs) if diffs else "no differences: numbers within float32 rounding, every text equal")
    raised = [f"{k} cell {o[0]}: {o[2][:160]}" for k, page in old["pages"].items() for o in page["outputs"]
              if o[1] == "error"]
    print(f"cells that raised on the first store: {len(raised)}" + "".join(f"\n  {line}" for line in raised))
    images = pixels(old, new)
    print(f"rendered images not identical: {len(images)}" + "".join(f"\n  {line}" for line in images))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
