"""Check the built book in headless Chromium, offline, page by page.

    python book/check_site.py [HTML_DIR] [--screenshots DIR]

HTML_DIR defaults to book/_build/src/_build/html. The site is served on 127.0.0.1 and every .html page is opened
in Debian's Chromium (/usr/bin/chromium) through playwright. The check fails (exit 1, listing every problem) if a
page requests anything from another host (such requests are aborted), answers a request with an HTTP error, logs a
console error or throws, has an <img> (widget frames included) that did not decode, declares a font that does not
load, has a widget view that did not render, has a slider whose image does not change when moved with the keyboard,
has a figure whose background clashes with the page's or widget text that does not read on it, or lacks a download
button that saves its source as a file (for a notebook page: the executed .ipynb). It also fails what a reader at a
1280-px window could not read or cite: a figure whose smallest text shows under MIN_TEXT_PX (its PNG's legibility
record, bnrepro.plotting, scaled by the width the page draws it at), whose legend lies on data, or that carries no
such record (not drawn through bnrepro.plotting); a table wider than the text column (clipped); a heading numbered
twice ("7.2. 2. ..."); TeX left as plain text outside MathJax; a verdict not marked (claims tables, bold prose), or a
chapter without its opening summary box; a footer that does not name CITATION.cff's authors. Every page is checked
in the light and in the dark theme; --screenshots saves every page, after its sliders moved, in both.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import io
import json
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from bnrepro.plotting import MIN_TEXT_PX, contrast_ratio, read_legibility
from bnrepro.claims import VERDICTS
from bnrepro.report import citation_authors

BOOK = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
# A figure clashes with the page when the median colour of its rendered border (FRAME pixels wide) differs from the
# page's background by more than CLASH in some channel (0-255). Figures are transparent (bnrepro.plotting), so a
# border of the page's own colour differs by 0; the theme's light card in the dark theme differed by about 160.
FRAME, CLASH = 3, 24
WIDGET_TEXT = ".cell_output .widget-label, .cell_output .widget-readout"  # a slider's description and value
MIN_TEXT_CONTRAST = 4.5  # WCAG AA for text, against the page
AUTHORS = citation_authors()  # the footer says "By" them


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request; notebooks as application/json, as common web hosts serve them
    (a browser then shows one in the tab unless its link says to download it)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".ipynb": "application/json"}

    def log_message(self, *args) -> None:
        pass


def serve(root: Path) -> str:
    """Serve `root` on a free port of 127.0.0.1 from a daemon thread; returns the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/"


def move_sliders(page: Page, area_class: str = "widget-subarea") -> tuple[list[str], int]:
    """Press ArrowRight on every widget slider (ArrowLeft on one that opens on its last frame); each must change the
    image shown beside it, in the same element of class `area_class` (the static page's widget area; a JupyterLab
    output). (problems, moved)"""
    problems, moved = [], 0
    for i, slider in enumerate(page.locator(f".{area_class} .widget-slider").all()):
        area = slider.locator(f"xpath=ancestor::div[contains(@class, '{area_class}')][1]")
        shown = "a => { const i = [...a.querySelectorAll('img')].find(i => i.offsetParent !== null); return i && i.src }"
        before, readout = area.evaluate(shown), slider.locator(".widget-readout").inner_text()
        handle = slider.locator(".noUi-handle")
        at = [handle.get_attribute(f"aria-value{k}") for k in ("min", "now", "max")]
        if at[0] == at[2]:
            continue  # a single frame: nothing to move
        handle.focus()
        page.keyboard.press("ArrowLeft" if at[1] == at[2] else "ArrowRight")
        try:
            area.evaluate(f"(a, before) => new Promise((ok, fail) => {{ const t0 = Date.now(); (function poll() {{"
                          f" const src = ({shown})(a); if (src && src !== before) ok(); else if (Date.now() - t0 > 5000)"
                          f" fail('timeout'); else setTimeout(poll, 50); }})(); }})", before)
            moved += 1
        except Exception:  # noqa: BLE001 - any failure here means the slider did not work
            problems.append(f"slider {i} ({readout!r}): the image did not change when it moved")
    return problems, moved


def rgb(css: str) -> np.ndarray:
    """[r, g, b] of a CSS `rgb(...)`/`rgba(...)` colour as the browser computes it; None if fully transparent."""
    parts = [float(x) for x in css[css.index("(") + 1:-1].replace("/", ",").replace(",", " ").split()]
    return None if len(parts) == 4 and parts[3] == 0 else np.array(parts[:3])


def figure_backgrounds(page: Page) -> tuple[list[str], int]:
    """Every visible figure of the cell outputs must sit on the page's colour (compare the median colour of its
    rendered border with the page background), and widget text must read on the page. (problems, figures checked)"""
    colours = page.evaluate("() => [document.body, document.documentElement]"
                            ".map(e => getComputedStyle(e).backgroundColor)")
    page_bg = next((c for c in map(rgb, colours) if c is not None), np.array([255.0, 255.0, 255.0]))
    problems, checked = [], 0
    texts = page.eval_on_selector_all(WIDGET_TEXT, "es => es.filter(e => e.offsetParent !== null && e.innerText.trim())"
                                                   ".map(e => [e.innerText.trim(), getComputedStyle(e).color])")
    for text, colour in texts:
        ratio = contrast_ratio(rgb(colour) / 255, page_bg / 255)
        if ratio < MIN_TEXT_CONTRAST:
            problems.append(f"widget text {text!r} in {colour} has contrast {ratio:.1f}:1 with the page "
                            f"(at least {MIN_TEXT_CONTRAST}:1 wanted)")
    for i, img in enumerate(page.locator(".cell_output img").all()):
        if not img.is_visible():
            continue  # a slider's other frames
        shot = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("RGB"), dtype=float)
        if min(shot.shape[:2]) <= 2 * FRAME:
            continue
        ring = np.concatenate([shot[:FRAME].reshape(-1, 3), shot[-FRAME:].reshape(-1, 3),
                               shot[:, :FRAME].reshape(-1, 3), shot[:, -FRAME:].reshape(-1, 3)])
        border = np.median(ring, axis=0)
        checked += 1
        if np.abs(border - page_bg).max() > CLASH:
            problems.append(f"figure {i} sits on rgb{tuple(int(c) for c in border)}, the page on "
                            f"rgb{tuple(int(c) for c in page_bg)}")
    return problems, checked


# Every cell output image as [PNG bytes (base64), its natural width, the width drawn, shown now].
IMAGES_JS = """async () => Promise.all([...document.querySelectorAll('.cell_output img')].map(async i => {
    const bytes = new Uint8Array(await (await fetch(i.currentSrc || i.src)).arrayBuffer());
    let s = ''; for (let k = 0; k < bytes.length; k += 8192) s += String.fromCharCode(...bytes.subarray(k, k + 8192));
    return [btoa(s), i.naturalWidth, i.getBoundingClientRect().width, i.offsetParent !== null]; }))"""


def figure_legibility(page: Page) -> tuple[list[str], int]:
    """Every cell output image must carry bnrepro.plotting's legibility record: no legend on data, and its smallest
    text, scaled by the width the page draws the image at, at least MIN_TEXT_PX (checked where shown: a slider's
    other frames are hidden). (problems, figures checked)"""
    problems, images = [], page.evaluate(IMAGES_JS)
    for i, (png, natural, drawn, shown) in enumerate(images):
        record = read_legibility(base64.b64decode(png))
        if record is None:
            problems.append(f"figure {i} carries no legibility record (draw it through bnrepro.plotting)")
            continue
        problems += [f"figure {i}: {p}" for p in record["legends_on_data"]]
        if shown and natural and record["text_px"] and (px := record["text_px"] * drawn / natural) < MIN_TEXT_PX:
            problems.append(f"figure {i}'s smallest text shows at {px:.1f} px (drawn {drawn:.0f} px wide of its "
                            f"{natural}), under {MIN_TEXT_PX:g} px")
    return problems, len(images)


# Text that MathJax should have typeset: TeX sub/superscripts and commands left in the prose (code and math skipped).
PLAIN_TEX = re.compile(r"[\w∇)]_\{|[\w)]\^\{|∇_[A-Za-z]|\\(?:frac|mathcal|hat|nabla|sigma|mu|gamma|beta)\b")
PROSE_JS = """() => { const skip = 'code, pre, script, style, mjx-container, .MathJax, .math, .highlight';
    const out = [], article = document.querySelector('article.bd-article'); if (!article) return out;
    const walk = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) if (!n.parentElement.closest(skip)) out.push(n.textContent);
    return out; }"""


# The summary box (a tip admonition with marked verdicts) comes before the page's first section heading, code cell and
# prose paragraph: only the title and the italic line under it may precede it.
OPENS_WITH_BOX_JS = """() => { const box = document.querySelector('article .admonition.tip');
    if (!box || !box.querySelector('.verdict')) return false;
    const first = [...document.querySelectorAll('article h2, article div.cell, article p')]
        .find(e => !box.contains(e) && !(e.tagName === 'P' && e.children.length === 1 && e.firstElementChild.tagName
            === 'EM' && e.innerText.trim() === e.firstElementChild.innerText.trim()));
    return !first || !!(box.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING); }"""


def words_and_tables(page: Page, rel: str) -> list[str]:
    """What a reader cites: every table fits the text column (its right edge within the article's), no heading is
    numbered twice, no TeX is left as plain text, every verdict is marked (the claims tables' by
    bnrepro.claims.mark_verdicts, the prose's bold ones by book/_static/bnrepro.js), a chapter opens with its summary
    box, and the footer names CITATION.cff's authors."""
    problems = []
    widths = page.evaluate("() => { const a = document.querySelector('article.bd-article'); if (!a) return [];"
                           " const edge = a.getBoundingClientRect().right - parseFloat(getComputedStyle(a)"
                           ".paddingRight); return [...a.querySelectorAll('table')].map(t => [t.rows[0] ? t.rows[0]"
                           ".innerText.replace(/\\s+/g, ' ').slice(0, 60) : '', t.getBoundingClientRect().right - edge]); }")
    problems += [f"table {head!r} runs {over:.0f} px past the text column (clipped)" for head, over in widths
                 if over > 1]
    for heading in page.eval_on_selector_all("article h1, article h2, article h3, article h4",
                                             "hs => hs.map(h => h.innerText.replace('#', '').trim())"):
        if re.match(r"^(\d+\.)+\s+\d+[.)]\s", heading):  # "7.2. 2. ...": the book's number, then the text's
            problems.append(f"heading {heading!r} is numbered twice (the book numbers its sections)")
    for text in page.evaluate(PROSE_JS):
        if m := PLAIN_TEX.search(text):
            problems.append(f"plain-text math {text[max(0, m.start() - 30):m.end() + 30].strip()!r}: write it in $...$")
    unmarked = page.evaluate("() => [...document.querySelectorAll('article table')].filter(t => t.rows[0] &&"
                             " [...t.rows[0].cells].some(c => c.innerText.trim() === 'Verdict')).flatMap(t => {"
                             " const k = [...t.rows[0].cells].findIndex(c => c.innerText.trim() === 'Verdict');"
                             " return [...t.rows].slice(1).filter(r => r.cells[k] && !r.cells[k].querySelector("
                             "'.verdict')).map(r => r.cells[0].innerText.slice(0, 60)); })")
    problems += [f"claims table row {row!r}: its verdict is not marked (bnrepro.claims.mark_verdicts)"
                 for row in unmarked]
    bold = page.evaluate("words => [...document.querySelectorAll('article strong')].filter(b => !b.querySelector("
                         "'.verdict') && words.some(w => b.innerText.includes(w))).map(b => b.innerText.slice(0, 60))",
                         list(VERDICTS))
    problems += [f"bold verdict {text!r} is not marked (book/_static/bnrepro.js)" for text in bold]
    if rel.startswith("chapters/") and not page.evaluate(OPENS_WITH_BOX_JS):
        problems.append("the chapter does not open with its summary box (bnrepro.report.summary_box), before its "
                        "first section, code cell and prose paragraph")
    footer = page.locator("footer").all_inner_texts()
    if not any(f"By {AUTHORS}" in text for text in footer):
        problems.append(f"the footer does not say 'By {AUTHORS}' (CITATION.cff's authors)")
    return problems


def download_source(page: Page, src: Path) -> list[str]:
    """Click the download button's entry for `src`: it must save a file of that name (not open it in a tab), and
    a notebook must be valid JSON with papermill's metadata (the executed notebook)."""
    try:
        page.locator(".dropdown-download-buttons > button").click()
        with page.expect_download(timeout=10_000) as info:
            page.locator(f".dropdown-download-buttons a[href$='/{src.name}']").first.click()
        download = info.value
    except Exception as e:  # noqa: BLE001 - no download for whatever reason is the failure reported
        return [f"the download button did not save {src.name}: {str(e).splitlines()[0]}"]
    problems = []
    if download.suggested_filename != src.name:
        problems.append(f"the download button saved {download.suggested_filename!r}, not {src.name!r}")
    if src.suffix == ".ipynb":
        try:
            nb = json.loads(Path(download.path()).read_text())
        except ValueError as e:
            return problems + [f"the downloaded {src.name} is not JSON: {e}"]
        if "papermill" not in nb.get("metadata", {}):
            problems.append(f"the downloaded {src.name} is not an executed notebook (no papermill metadata)")
    return problems


def check_page(page: Page, url: str, rel: str, root: Path, download: bool) -> tuple[list[str], str]:
    """Open one page and check it; returns its problems and a one-line summary."""
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(
        f"console error: {m.text} ({m.location.get('url')}:{m.location.get('lineNumber')})"))
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="networkidle")

    views = page.locator(WIDGET_VIEW).count()
    if views:
        try:
            page.wait_for_function("n => [...document.querySelectorAll('.widget-subarea')]"
                                   ".filter(a => a.children.length).length >= n", arg=views, timeout=20_000)
        except Exception:  # noqa: BLE001
            problems.append(f"{views} widget views, not all rendered within 20 s")
    page.wait_for_load_state("networkidle")
    images = page.evaluate("async () => { const imgs = [...document.images];"
                           " await Promise.all(imgs.map(i => i.decode().catch(() => null)));"
                           " return imgs.map(i => [i.currentSrc || i.src, i.naturalWidth]); }")
    problems += [f"image did not load: {src[:100]}" for src, width in images if width == 0]
    # Browsers fetch a font only when some text needs it; load every declared face so a wrong URL shows on any page.
    fonts = page.evaluate("async () => (await Promise.all([...document.fonts].map(f => f.load().then("
                          " () => null, () => `${f.family} ${f.style} ${f.weight}`)))).filter(Boolean)")
    problems += [f"font did not load: {font}" for font in fonts]
    slider_problems, moved = move_sliders(page)
    problems += slider_problems
    figure_problems, figures = figure_backgrounds(page)
    problems += figure_problems
    legibility_problems, drawn = figure_legibility(page)
    problems += legibility_problems + words_and_tables(page, rel)

    saved = "-"
    sources = list((root / "_sources").glob(rel.removesuffix(".html") + ".*"))
    if sources and download:  # a content page: its download button saves its source, a notebook page's executed
        src = sources[0]
        hrefs = page.eval_on_selector_all("a[href*='_sources/']", "as => as.map(a => a.href)")
        linked = [h for h in hrefs if urlparse(h).path.lstrip("/") == src.relative_to(root).as_posix()]
        saved = src.relative_to(root).as_posix()
        problems += download_source(page, src) if linked else [f"no download link to {saved}"]
    summary = (f"images {len(images)}, widget views {views}, sliders moved {moved}, figures on the page's colour "
               f"{figures - len(figure_problems)}/{figures}, figures checked for legibility {drawn}, download {saved}")
    return problems, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", nargs="?", type=Path, default=BOOK / "_build" / "src" / "_build" / "html")
    ap.add_argument("--screenshots", type=Path, help="save a full-page screenshot of every page here, per theme")
    args = ap.parse_args()
    root = args.html.resolve()
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                   if not {"_static", "_sources", "_images"} & set(p.relative_to(root).parts))
    if not pages:
        sys.exit(f"no HTML pages under {root}")
    base = serve(root)
    external: list[str] = []
    failures: dict[str, list[str]] = {}

    def route(r) -> None:
        """Abort and record every request that would leave the site; Chromium's own favicon probe gets a 204."""
        parsed = urlparse(r.request.url)
        if parsed.scheme in ("http", "https") and parsed.hostname != "127.0.0.1":
            external.append(r.request.url)
            r.abort()
        elif parsed.path == "/favicon.ico" and not (root / "favicon.ico").exists():
            r.fulfill(status=204)
        else:
            r.continue_()

    schemes = ["light", "dark"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for scheme in schemes:
            context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)
            context.route("**/*", route)
            for rel in pages:
                page = context.new_page()
                n_external = len(external)
                problems, summary = check_page(page, urljoin(base, rel), rel, root, download=scheme == "light")
                problems += [f"request outside the site (aborted): {u}" for u in external[n_external:]]
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.screenshots / f"{rel.replace('/', '__')}-{scheme}.png", full_page=True)
                page.close()
                print(f"{'FAIL' if problems else 'ok  '} [{scheme}] {rel}: {summary}")
                if problems:
                    failures[f"[{scheme}] {rel}"] = problems
            context.close()
        browser.close()

    if failures:
        print(f"\n{len(failures)} page(s) failed:")
        for rel, problems in failures.items():
            print(f"  {rel}:\n" + "\n".join(f"    - {p}" for p in problems))
        sys.exit(1)
    print(f"\nall {len(pages)} pages passed ({', '.join(schemes)}): no request left 127.0.0.1")


if __name__ == "__main__":
    main()
