"""Check the built book in headless Chromium, offline, page by page.

    python book/check_site.py [HTML_DIR] [--screenshots DIR]

HTML_DIR defaults to book/_build/src/_build/html. The site is served on 127.0.0.1 and every .html page is opened
in Debian's Chromium (/usr/bin/chromium) through playwright. The check fails (exit 1, listing every problem) if a
page requests anything from another host (such requests are aborted), answers a request with an HTTP error, logs a
console error or throws, has an <img> (widget frames included) that did not decode, has a widget view that did not
render, has a slider whose image does not change when moved with the keyboard, or lacks a download link to its
source in the site (for a notebook page: the executed .ipynb). --screenshots saves every page, after its sliders
moved, in the light and the dark theme.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

from playwright.sync_api import Page, sync_playwright

BOOK = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, *args) -> None:
        pass


def serve(root: Path) -> str:
    """Serve `root` on a free port of 127.0.0.1 from a daemon thread; returns the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/"


def move_sliders(page: Page) -> tuple[list[str], int]:
    """Press ArrowRight on every widget slider; each must change the image shown beside it. (problems, moved)"""
    problems, moved = [], 0
    for i, slider in enumerate(page.locator(".widget-subarea .widget-slider").all()):
        area = slider.locator("xpath=ancestor::div[contains(@class, 'widget-subarea')][1]")
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


def check_page(page: Page, url: str, rel: str, root: Path) -> tuple[list[str], str]:
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
    slider_problems, moved = move_sliders(page)
    problems += slider_problems

    download = "-"
    sources = list((root / "_sources").glob(rel.removesuffix(".html") + ".*"))
    if sources:  # a content page: it must link to its source, and a notebook page to the executed notebook
        src = sources[0]
        hrefs = page.eval_on_selector_all("a[href*='_sources/']", "as => as.map(a => a.href)")
        linked = [h for h in hrefs if urlparse(h).path.lstrip("/") == src.relative_to(root).as_posix()]
        download = src.relative_to(root).as_posix()
        if not linked:
            problems.append(f"no download link to {download}")
        elif src.suffix == ".ipynb" and "papermill" not in json.loads(src.read_text()).get("metadata", {}):
            problems.append(f"{download} is not an executed notebook (no papermill metadata)")
    summary = f"images {len(images)}, widget views {views}, sliders moved {moved}, download {download}"
    return problems, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", nargs="?", type=Path, default=BOOK / "_build" / "src" / "_build" / "html")
    ap.add_argument("--screenshots", type=Path, help="save a full-page screenshot of every page here")
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

    schemes = ["light", "dark"] if args.screenshots else ["light"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for scheme in schemes:
            context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
            context.route("**/*", route)
            for rel in pages:
                page = context.new_page()
                n_external = len(external)
                problems, summary = check_page(page, urljoin(base, rel), rel, root)
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
