"""Check the built book in headless Chromium, offline, page by page.

    python book/check_site.py [HTML_DIR] [--screenshots DIR]

HTML_DIR defaults to book/_build/src/_build/html. The site is served on 127.0.0.1 and every .html page is opened
in Debian's Chromium (/usr/bin/chromium) through playwright. The check fails (exit 1, listing every problem) if a
page requests anything from another host (such requests are aborted), answers a request with an HTTP error, logs a
console error or throws, has an <img> (widget frames included) that did not decode, declares a font that does not
load, has a widget view that did not render, has a slider whose image does not change when moved with the keyboard,
has a figure whose background clashes with the page's or widget text that does not read on it, or lacks a download
button that saves its source as a file (for a notebook page: the executed .ipynb). Every page is checked in the
light and in the dark theme; --screenshots saves every page, after its sliders moved, in both.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from bnrepro.plotting import contrast_ratio

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
    """Press ArrowRight on every widget slider; each must change the image shown beside it, in the same element of
    class `area_class` (the static page's widget area; a JupyterLab output). (problems, moved)"""
    problems, moved = [], 0
    for i, slider in enumerate(page.locator(f".{area_class} .widget-slider").all()):
        area = slider.locator(f"xpath=ancestor::div[contains(@class, '{area_class}')][1]")
        shown = "a => { const i = [...a.querySelectorAll('img')].find(i => i.offsetParent !== null); return i && i.src }"
        before, readout = area.evaluate(shown), slider.locator(".widget-readout").inner_text()
        handle = slider.locator(".noUi-handle")
        if handle.get_attribute("aria-valuemax") == handle.get_attribute("aria-valuenow"):
            continue  # a single frame: nothing to move
        handle.focus()
        page.keyboard.press("ArrowRight")
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

    saved = "-"
    sources = list((root / "_sources").glob(rel.removesuffix(".html") + ".*"))
    if sources and download:  # a content page: its download button saves its source, a notebook page's executed
        src = sources[0]
        hrefs = page.eval_on_selector_all("a[href*='_sources/']", "as => as.map(a => a.href)")
        linked = [h for h in hrefs if urlparse(h).path.lstrip("/") == src.relative_to(root).as_posix()]
        saved = src.relative_to(root).as_posix()
        problems += download_source(page, src) if linked else [f"no download link to {saved}"]
    summary = (f"images {len(images)}, widget views {views}, sliders moved {moved}, figures on the page's colour "
               f"{figures - len(figure_problems)}/{figures}, download {saved}")
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
