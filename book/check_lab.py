"""Run a chapter in a real JupyterLab, as a reader does, driven by headless Chromium.

    python book/check_lab.py [--chapter chapters/sec21_performance.md] [--budget smoke] [--screenshots DIR]

Starts `jupyter lab` on 127.0.0.1 (a free port, a random token, no browser) in temporary folders of its own: the
server's root holds a copy of the chapter at its place in the repository (book/chapters/...), and Jupyter's config,
data, runtime and settings folders and bnrepro's records and cache are temporary too, so it touches neither the book,
the user's Jupyter settings nor the record store. In Debian's Chromium (through playwright) it then does what the
README tells a reader: opens the page `jupyter lab book/chapters/NAME.md` opens, opens the chapter with "Open With >
Jupytext Notebook" from the file browser, sets `budget` and `compute = True` (its record store starts empty) in the
cell tagged `parameters`, and runs all cells on the kernel ("Run > Run All Cells"). It fails (exit 1, listing every
problem) when a cell did not run or raised, when no figure rendered, or when a slider did not change its figure when
moved. The server (and so the kernel) is always
shut down. Prints its wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from check_site import CHROMIUM, CHROMIUM_ARGS, move_sliders
from playwright.sync_api import Page, sync_playwright

BOOK = Path(__file__).resolve().parent
TRACEBACK = "Traceback (most recent call last)"  # in every error IPython shows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, tmp: Path, port: int, token: str) -> subprocess.Popen:
    """`jupyter lab` serving `root`, with Jupyter's and bnrepro's folders under `tmp`; returns once it answers."""
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               BNREPRO_RECORDS=str(tmp / "records"), BNREPRO_CACHE=str(tmp / "cache"), TQDM_DISABLE="1")
    env.pop("BNREPRO_DATA", None)  # the smoke budget's own synthetic data
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={tmp / 'lab-settings'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    no_news = tmp / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    no_news.parent.mkdir(parents=True)
    no_news.write_text('{"fetchNews": "false"}')  # no "Would you like to get notified about Jupyter news?" toast
    log = open(tmp / "lab.log", "w")  # noqa: SIM115 - the server writes to it until it stops
    lab = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        if lab.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {lab.returncode}:\n{(tmp / 'lab.log').read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
            return lab
        except OSError:
            time.sleep(0.5)
    stop_lab(lab, port, token)
    raise RuntimeError(f"jupyter lab did not answer within 120 s:\n{(tmp / 'lab.log').read_text()[-3000:]}")


def stop_lab(lab: subprocess.Popen, port: int, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then end its process group if it has not."""
    try:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown", method="POST",
                                                      headers={"Authorization": f"token {token}"}), timeout=10)
        lab.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if lab.poll() is None:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()


def menu(page: Page, *path: str) -> None:
    """Click through JupyterLab's menus: the first label in the menu bar, the rest in the menus it opens."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{path[0]}$")).click()
    for label in path[1:]:
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")).last.click()


def run_chapter(page: Page, url: str, name: str, budget: str, timeout_s: float) -> tuple[list[str], str]:
    """Open `name` as a notebook, set its budget, run all cells and check them. (problems, summary)"""
    page.goto(url)
    item = page.locator(".jp-DirListing-item", has_text=name)
    item.wait_for(timeout=60_000)
    item.click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Open With$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Jupytext Notebook$")).click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(timeout=120_000)  # the kernel

    # The reader's step: set the budget, and compute = True, in the cell tagged `parameters`.
    cell = notebook.locator(".jp-CodeCell", has=page.locator(".cm-content", has_text=re.compile(r"^budget = ")))
    editor = cell.first.locator(".cm-content")
    source = editor.inner_text()
    if not re.search(r'^budget = "\w+"', source) or not re.search(r"(?m)^compute = False", source):
        return [f"no `budget = \"...\"` and `compute = False` lines in the parameters cell: {source[:200]!r}"], "-"
    editor.click()
    page.keyboard.press("Control+a")
    source = re.sub(r'^budget = "\w+"', f'budget = "{budget}"', source)
    page.keyboard.insert_text(re.sub(r"(?m)^compute = False", "compute = True", source))
    page.keyboard.press("Escape")

    t0 = time.monotonic()
    menu(page, "Run", "Run All Cells")
    # Done when no cell is queued ([*]) and every cell ran ([n]) or one raised (Run All stops there).
    page.wait_for_function(f"""el => {{
        const prompts = [...el.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
        const raised = [...el.querySelectorAll('.jp-OutputArea-output')]
            .some(o => o.textContent.includes('{TRACEBACK}'));
        return !prompts.some(t => t.includes('*')) && (raised || prompts.every(t => /\\[\\d+\\]/.test(t))); }}""",
                           arg=notebook.element_handle(), timeout=timeout_s * 1000, polling=500)
    run_s = time.monotonic() - t0

    problems = []
    texts = notebook.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all("ps => ps.map(p => p.textContent)")
    unrun = [i for i, t in enumerate(texts) if not re.search(r"\[\d+\]", t)]
    if unrun:
        problems.append(f"code cells {unrun} of {len(texts)} did not run")
    for text in notebook.locator(".jp-OutputArea-output").evaluate_all("os => os.map(o => o.textContent)"):
        if TRACEBACK in text:
            problems.append("a cell raised:\n      " + "\n      ".join(text.strip().splitlines()[-6:]))
    figures = notebook.evaluate("""el => Promise.all([...el.querySelectorAll('.jp-OutputArea-output img')]
        .filter(i => i.offsetParent !== null).map(i => i.decode().then(() => i.naturalWidth, () => 0)))""")
    if not any(figures):
        problems.append("no figure rendered")
    slider_problems, moved = move_sliders(page, area_class="jp-OutputArea-output")
    problems += slider_problems
    if not moved and not slider_problems:
        problems.append("no slider to move")
    summary = (f"{len(texts) - len(unrun)}/{len(texts)} code cells ran in {run_s:.0f} s, figures shown "
               f"{sum(w > 0 for w in figures)}, "
               f"sliders moved {moved}")
    return problems, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chapter", default="chapters/sec21_performance.md",
                    help="a notebook page of the book with a slider (default: chapters/sec21_performance.md)")
    ap.add_argument("--budget", default="smoke", help="the budget set in its parameters cell (default: smoke)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed to run all cells (default 600)")
    ap.add_argument("--screenshots", type=Path, help="save a screenshot of the notebook after the run here")
    args = ap.parse_args()
    chapter = (BOOK / args.chapter).resolve()
    if not chapter.is_file() or BOOK not in chapter.parents:
        sys.exit(f"no chapter {chapter}: give --chapter as a path under book/, e.g. chapters/sec21_performance.md")

    t0 = time.monotonic()
    port, token = free_port(), secrets.token_hex(16)
    external: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bnrepro-lab-") as tmp:
        tmp = Path(tmp)
        root, rel = tmp / "root", chapter.relative_to(BOOK.parent).as_posix()
        (root / rel).parent.mkdir(parents=True)
        shutil.copy2(chapter, root / rel)
        lab = start_lab(root, tmp, port, token)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})

                def route(r) -> None:
                    """Abort every request that would leave 127.0.0.1 (there should be none)."""
                    if urlparse(r.request.url).hostname not in (None, "127.0.0.1"):
                        external.append(r.request.url)
                        r.abort()
                    else:
                        r.continue_()

                context.route("**/*", route)
                page = context.new_page()
                page.set_default_timeout(30_000)
                problems, summary = run_chapter(page, f"http://127.0.0.1:{port}/lab/tree/{rel}?token={token}",
                                                chapter.name, args.budget, args.timeout)
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=args.screenshots / f"lab-{chapter.stem}.png")
                browser.close()
        finally:
            stop_lab(lab, port, token)
    problems += [f"request outside 127.0.0.1 (aborted): {u}" for u in external]
    print(f"{'FAIL' if problems else 'ok  '} {args.chapter} at budget {args.budget} in JupyterLab: {summary}")
    for p in problems:
        print(f"    - {p}")
    print(f"wall time {time.monotonic() - t0:.0f} s (server start to shutdown)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
