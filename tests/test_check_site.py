"""book/check_site.py's reader checks on hand-made pages in headless Chromium: figures too small to read or with a
legend on data, a clipped table, a heading numbered twice, TeX left as text, unmarked verdicts, a chapter without its
summary box and a footer without the authors; a page with none of them passes, and the site's script
(book/_static/bnrepro.js) marks the verdicts in bold prose."""

import base64
import importlib.util
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bnrepro.claims import VERDICTS, mark_verdicts  # noqa: E402
from bnrepro.plotting import fig_to_png  # noqa: E402
from bnrepro.report import citation_authors  # noqa: E402

BOOK = Path(__file__).resolve().parents[1] / "book"
pytest.importorskip("playwright")
spec = importlib.util.spec_from_file_location("check_site", BOOK / "check_site.py")
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)
if not Path(check_site.CHROMIUM).exists():
    pytest.skip(f"no Chromium at {check_site.CHROMIUM}", allow_module_level=True)


def figure(width: float, legend_loc: str) -> str:
    """A data: URL of a PNG made by bnrepro.plotting: a line through the centre, `width` inches wide."""
    fig, ax = plt.subplots(figsize=(width, 2))
    ax.plot([0, 1], [0, 1], label="line")
    (fig if legend_loc.startswith("outside") else ax).legend(loc=legend_loc)
    if legend_loc.startswith("outside"):
        fig.set_layout_engine("constrained")
    return "data:image/png;base64," + base64.b64encode(fig_to_png(fig)).decode()


def page_html(good: bool) -> str:
    img = figure(4, "outside upper center") if good else figure(30, "center")
    verdict = mark_verdicts("reproduced at 3 of 3 seeds") if good else "reproduced at 3 of 3 seeds"
    cells = "<td>short</td>" * (3 if good else 40)
    box = f'<div class="admonition tip"><p>{mark_verdicts("reproduced")}</p></div>' if good else ""
    script = f"<script>{(BOOK / '_static' / 'bnrepro.js').read_text()}</script>" if good else ""
    return f"""<html><head><style>img {{ max-width: 100% }}</style>{script}</head><body style="margin: 0">
<div style="width: 1280px"><article class="bd-article" style="width: 600px; padding: 0 10px">
<h1>2. Chapter</h1><p><em>Section 2 of the paper.</em></p>{box}
<h2>{"2.1. Random directions" if good else "2.1. 1. Random directions"}</h2>
<p>{"the norm $W$" if good else "the norm ||W_{t+1}||"} <code>act_layers_{{x}}</code>; the claim is
<strong>partly reproduced at 2, not testable at 1 of 3 seeds</strong>.</p>
<div class="cell_output"><img src="{img}"></div>
<table><tr>{cells}</tr></table>
<table><tr><th>Claim</th><th>Verdict</th></tr><tr><td>a claim</td><td>{verdict}</td></tr></table>
</article><footer>By {citation_authors() if good else "someone"}</footer></div></body></html>"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=check_site.CHROMIUM, args=check_site.CHROMIUM_ARGS)
        yield b
        b.close()


def problems(browser, good: bool) -> list[str]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_content(page_html(good))
    found = check_site.figure_legibility(page)[0] + check_site.words_and_tables(page, "chapters/x.html")
    page.close()
    return found


def test_a_page_a_reader_can_read_passes(browser):
    assert problems(browser, good=True) == []


def test_the_site_script_marks_every_verdict_in_bold_prose(browser):
    page = browser.new_page()
    page.set_content(page_html(good=True))
    spans = page.eval_on_selector_all("p strong .verdict", "ss => ss.map(s => [s.className, s.textContent])")
    page.close()
    assert spans == [["verdict verdict-partly-reproduced", "partly reproduced"],
                     ["verdict verdict-not-testable", "not testable"]]
    words = re.search(r"VERDICT_WORDS = /\((.*)\)/", (BOOK / "_static" / "bnrepro.js").read_text())[1].split("|")
    assert words == sorted(VERDICTS, key=len, reverse=True)  # the script's words are the verdicts, longest first


def test_a_summary_box_after_the_first_prose_is_named(browser):
    page = browser.new_page()
    page.set_content(page_html(good=True).replace("<p><em>Section 2 of the paper.</em></p>",
                                                  "<p>Prose before the box.</p>"))
    found = check_site.words_and_tables(page, "chapters/x.html")
    page.close()
    assert len(found) == 1 and "does not open with its summary box" in found[0]


def test_every_reader_problem_is_named(browser):
    found = "\n".join(problems(browser, good=False))
    for expected in ("lies on 'line'", "smallest text shows at", "past the text column (clipped)",
                     "'2.1. 1. Random directions' is numbered twice", "plain-text math", "verdict is not marked",
                     "summary box", "the footer does not say", "bold verdict 'partly reproduced at 2"):
        assert expected in found, (expected, found)
    assert "act_layers" not in found  # code is not prose
