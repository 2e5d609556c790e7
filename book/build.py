"""Build the book: execute every notebook page with papermill, then render the site with Jupyter Book, offline.

    python book/build.py --budget smoke|cpu|paper|best [--data PATH] [--device auto|cpu|cuda] [--chapters a,b]
                         [--workers N] [--address HEAD:PORT] [--gpus-per-run F]

Stages, each timed:
0. runs: every run the book needs at the budget (at every seed a page declares) that is not recorded yet is computed
   as `python -m bnrepro book-runs` does, in parallel through Ray (`--workers 1`: one after another without Ray):
   the pages only read records (`bnrepro.judge`). With `--budget best` the pages show the most faithful budget
   recorded, so only the sections that no budget has recorded are computed, at `smoke` (what `best` shows for them).
1. js: `npm ci` in book/ when book/node_modules is missing or older than package-lock.json, then copy require.js,
   the ipywidgets HTML manager (with its fonts and WIDGETS_SETUP_JS) and MathJax 3 into
   book/_widgets_js/_static/vendor/, which the site serves itself (no CDN; see _config.yml).
2. stage: copy the book into book/_build/src/, the staging copy that Jupyter Book renders.
3. execute: every notebook page (a jupytext MyST .md whose front matter has a `kernelspec`: intro.md and
   chapters/*.md) becomes an .ipynb, executed by papermill in a kernel running this interpreter, with the parameters
   it declares among `budget`, `device` and `data` injected (`data` only with --data; BNREPRO_DATA in the
   environment reaches the kernel, made absolute). The executed notebook is what the page shows and what its download
   button serves. A failing cell stops the build with a non-zero exit naming the page and the cell.
4. html: `jupyter-book build` on the staging copy with warnings as errors. The site is book/_build/src/_build/html;
   the last lines printed say how to serve it.

Adding a chapter: write book/chapters/NAME.md (copy the front matter and the cell tagged `parameters` of an existing
chapter) and add the line `- file: chapters/NAME` under its part in book/_toc.yml. `--chapters NAME,...` executes
only those chapters (pages outside chapters/ always run); the others keep their notebook from the previous build,
or leave the table of contents if they were never executed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

from bnrepro.cli import add_compute_options, book_runs, check_device, given_data
from bnrepro.plan import to_compute
from bnrepro.records import RunStore
from bnrepro.report import citation_authors

BOOK = Path(__file__).resolve().parent
STAGE = BOOK / "_build" / "src"
HTML = STAGE / "_build" / "html"
VENDOR = BOOK / "_widgets_js" / "_static" / "vendor"
KERNEL = "bnrepro-build"
NOT_STAGED = {"_build", "node_modules", "__pycache__", ".ipynb_checkpoints", "build.py",
              "check_site.py", "check_lab.py", "package.json", "package-lock.json", "nbval_sanitize.cfg"}
# What the site serves from node_modules: (source, destination under VENDOR).
JS_FILES = [
    ("requirejs/require.js", "requirejs/require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "html-manager/embed-amd.js"),
    ("mathjax/es5/tex-chtml.js", "mathjax/tex-chtml.js"),
    ("mathjax/es5/input", "mathjax/input"),  # TeX extensions MathJax autoloads
    ("mathjax/es5/output/chtml", "mathjax/output/chtml"),  # its fonts
    ("mathjax/es5/ui", "mathjax/ui"),  # the right-click menu
    ("mathjax/es5/a11y", "mathjax/a11y"),  # accessibility extensions the menu loads
]
FONT_SUFFIXES = {".woff2", ".woff", ".ttf", ".eot", ".svg"}  # the HTML manager's icon fonts
# Runs between require.js and the ipywidgets HTML manager (nb_ipywidgets_js in _config.yml). Each module the manager
# defines (@jupyter-widgets/base, controls, html-manager, ...) fetches its icon fonts from its own require.js URL's
# folder, which require.js would resolve relative to each page: point every @jupyter-widgets module at this script's
# folder, where the fonts are. ipywidgets typesets widget labels with MathJax 2's Hub.Queue; the site serves MathJax 3.
WIDGETS_SETUP_JS = """{
    const here = new URL(".", document.currentScript.src).href.slice(0, -1);
    require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
}
window.addEventListener("load", () => {
    if (window.MathJax && MathJax.typesetPromise && !MathJax.Hub)
        MathJax.Hub = {Queue: ([, , element]) => MathJax.typesetPromise([element])};
});
"""


def prepare_js() -> None:
    """Install the pinned npm packages if needed and copy what the site serves into VENDOR."""
    modules = BOOK / "node_modules"
    installed = modules / ".package-lock.json"  # npm's record of what node_modules holds
    if not installed.exists() or installed.stat().st_mtime < (BOOK / "package-lock.json").stat().st_mtime:
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=BOOK, check=True)
    shutil.rmtree(VENDOR, ignore_errors=True)
    for src, dst in JS_FILES:
        src, dst = modules / src, VENDOR / dst
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    for font in (modules / "@jupyter-widgets/html-manager/dist").iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy2(font, VENDOR / "html-manager" / font.name)
    (VENDOR / "html-manager" / "setup.js").write_text(WIDGETS_SETUP_JS)


def is_notebook(path: Path) -> bool:
    """A jupytext MyST notebook: Markdown whose YAML front matter declares a kernelspec."""
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def notebook_pages() -> list[Path]:
    """Every notebook page of the book, as its source .md, in path order (the pages only read records, which stage 0
    computed)."""
    return sorted(p for p in BOOK.rglob("*.md") if not NOT_STAGED & set(p.relative_to(BOOK).parts) and is_notebook(p))


def page_seeds(pages: list[Path]) -> list[int]:
    """Every seed the pages use: the union of the `seeds` each declares in its cell tagged `parameters`."""
    seeds: set[int] = set()
    for page in pages:
        for cell in jupytext.read(page).cells:
            if "parameters" in cell.metadata.get("tags", []):
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "seeds" for t in node.targets):
                        seeds.update(ast.literal_eval(node.value))
    return sorted(seeds)


def compute_runs(args: argparse.Namespace, pages: list[Path]) -> None:
    """Compute the runs the pages read at `args.budget` that are not recorded (see stage 0 above)."""
    seeds = page_seeds(pages)
    if (target := to_compute(args.budget, seeds)) is None:
        print("every section is recorded at some budget: nothing to compute")
        return
    try:
        status = book_runs(target[0], seeds, args.data, RunStore(), args, sections=target[1])
    except ValueError as e:
        sys.exit(f"error: {e}")
    if status:
        sys.exit(status)


def stage() -> dict[Path, bytes]:
    """Fresh staging copy of the book without the notebook sources; returns the executed notebooks it had."""
    previous = {p.relative_to(STAGE): p.read_bytes() for p in STAGE.rglob("*.ipynb") if "_build" not in
                p.relative_to(STAGE).parts} if STAGE.exists() else {}
    shutil.rmtree(STAGE, ignore_errors=True)
    shutil.copytree(BOOK, STAGE, ignore=lambda d, names: {
        n for n in names if n in NOT_STAGED or (n.endswith(".md") and is_notebook(Path(d) / n))})
    config = STAGE / "_config.yml"  # the footer's "By ...": CITATION.cff's authors
    config.write_text(re.sub(r"^author: .*$", f"author: {json.dumps(citation_authors())}", config.read_text(), count=1,
                             flags=re.M))
    return previous


def kernel_name() -> str:
    """Register, in a private folder first on JUPYTER_PATH, a kernelspec that runs this very interpreter: papermill
    then uses this environment whatever kernels the user or the system have installed."""
    root = BOOK / "_build" / "jupyter"
    spec = root / "kernels" / KERNEL / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                "display_name": "Python 3 (ipykernel)", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
    return KERNEL


def execute(page: Path, params: dict, kernel: str) -> None:
    """Convert `page` to an .ipynb in the staging copy and execute it there with the parameters it declares."""
    out = STAGE / page.relative_to(BOOK).with_suffix(".ipynb")
    nbformat.write(jupytext.read(page), out)
    declared = papermill.inspect_notebook(str(out))
    try:
        papermill.execute_notebook(
            str(out), str(out), parameters={k: v for k, v in params.items() if k in declared},
            kernel_name=kernel, cwd=str(out.parent), progress_bar=False, start_timeout=180)
    except papermill.PapermillExecutionError as err:
        source = "\n    ".join(err.source.splitlines()[:8])
        sys.exit(f"\nFAILED: {page.relative_to(BOOK)}, in the cell executed as [{err.exec_count}] (cell "
                 f"{err.cell_index} of the notebook):\n    {source}\n{err.ename}: {err.evalue}\n"
                 f"The notebook with the traceback: {out}")
    # The download button serves this file: name the standard kernel, not the private build kernelspec.
    nb = nbformat.read(out, as_version=4)
    nb.metadata.kernelspec = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    for cell in nb.cells:  # papermill's "# Parameters" cell stays for nbval's re-run, but no page shows it
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata.tags.append("remove-cell")
    nbformat.write(nb, out)


def prune_toc(node: dict, staged: set[str]) -> dict:
    """`node` of _toc.yml without the files that were not staged, and without parts left empty."""
    node = dict(node)
    for key in ("parts", "chapters", "sections"):
        if key in node:
            kids = [prune_toc(k, staged) for k in node[key] if k.get("file") is None or k["file"] in staged]
            node[key] = [k for k in kids if k.keys() & {"file", "url", "glob", "chapters", "sections"}]
            if not node[key]:
                del node[key]
    return node


def render() -> None:
    """Jupyter Book on the staging copy, every warning an error."""
    jb = Path(sys.executable).with_name("jupyter-book")
    if subprocess.run([str(jb), "build", str(STAGE), "--warningiserror", "--all"], check=False).returncode:
        sys.exit("FAILED: jupyter-book build (its output is above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", choices=["smoke", "cpu", "paper", "best"], default="best")
    ap.add_argument("--data", help="CIFAR-10 archive or folder (default: $BNREPRO_DATA or the budget's default)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--chapters", help="comma-separated chapter names (e.g. sec21_ics_performance): run only these")
    add_compute_options(ap)
    args = ap.parse_args()
    try:  # a --device this machine lacks or a --data that is not there fails now, in one line, not in a chapter
        check_device(args.device)
        given_data(args.data)
    except ValueError as e:
        sys.exit(f"error: {e}")
    params = {"budget": args.budget, "device": args.device}
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bar reaches a page (the kernels inherit this)
    if os.environ.get("BNREPRO_DATA"):  # the kernels run inside the staging copy: pass an absolute path on
        os.environ["BNREPRO_DATA"] = str(Path(os.environ["BNREPRO_DATA"]).resolve())
    if args.data:
        params["data"] = str(Path(args.data).resolve())

    pages = notebook_pages()
    if args.chapters:
        wanted = set(args.chapters.split(","))
        if unknown := wanted - {p.stem for p in pages}:
            sys.exit(f"unknown chapters {sorted(unknown)}; choose from {sorted(p.stem for p in pages)}")
        pages = [p for p in pages if p.stem in wanted or p.parent.name != "chapters"]

    kernel = kernel_name()
    times: list[tuple[str, float]] = []

    def timed(name: str, fn, *a):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        result = fn(*a)
        times.append((name, time.perf_counter() - t0))
        return result

    timed(f"runs: the runs the pages read at budget={args.budget} that are not recorded", compute_runs, args, pages)
    timed("js: npm packages into the site", prepare_js)
    previous = timed("stage: copy the book to book/_build/src", stage)
    for page in pages:
        timed(f"execute: {page.relative_to(BOOK)} ({', '.join(f'{k}={v}' for k, v in params.items())})",
              execute, page, params, kernel)
    for page in sorted(set(notebook_pages()) - set(pages)):
        rel = page.relative_to(BOOK).with_suffix(".ipynb")
        ran = json.loads(previous[rel]).get("metadata", {}).get("papermill", {}) if rel in previous else {}
        if ran and not ran.get("exception"):
            (STAGE / rel).write_bytes(previous[rel])
            print(f"   not selected: {rel} keeps its previous execution (parameters {ran.get('parameters')})")
        else:
            print(f"   not selected and never executed without error: {rel} leaves the table of contents")
    staged = {str(p.relative_to(STAGE).with_suffix("")) for p in STAGE.rglob("*") if p.suffix in (".md", ".ipynb")}
    toc = prune_toc(yaml.safe_load((BOOK / "_toc.yml").read_text()), staged)
    (STAGE / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
    timed("html: jupyter-book build -W", render)

    print("\nwall time per stage:")
    for name, seconds in times:
        print(f"  {seconds:7.1f} s  {name}")
    print(f"  {sum(s for _, s in times):7.1f} s  total\n\nThe book: {HTML / 'index.html'}\nServe it: python -m "
          f"http.server -d {os.path.relpath(HTML)} 8000, then open http://localhost:8000")


if __name__ == "__main__":
    main()
