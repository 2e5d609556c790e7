"""The package's layout, read from its imports with `ast`: no module imports one that imports it back, no import of a
bnrepro module hides inside a function unless the module wraps an optional heavy dependency, judging never reaches
the modules that compute runs, and importing any module needs neither torchvision nor Ray."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bnrepro"
#: Optional heavy dependencies: a bnrepro module importing one at its top may be imported inside a function.
HEAVY = {"torchvision", "ray", "myst_nb", "ipywidgets"}
#: The modules that compute runs (training a book run and storing it, alone or through Ray).
COMPUTE = {"bnrepro.experiments", "bnrepro.distributed"}
#: What runs the book needs, judging and presenting: they read records and never reach COMPUTE.
READERS = {"bnrepro.specs", "bnrepro.claims", "bnrepro.readings", "bnrepro.sections", "bnrepro.plan", "bnrepro.judge",
           "bnrepro.report", "bnrepro.results", "bnrepro.figures", "bnrepro.costs"}


def module_name(path: Path) -> str:
    parts = ("bnrepro", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def targets(module: str, node: ast.Import | ast.ImportFrom) -> tuple[set[str], set[str]]:
    """(the bnrepro modules, the other top-level packages) that an import statement of `module` imports."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    ours, others = set(), set()
    for name in names:
        if name.split(".")[0] != "bnrepro":
            others.add(name.split(".")[0])
            continue
        while name not in MODULES:
            name = name.rsplit(".", 1)[0]
        ours.add(name)
    return ours - {module}, others


def module_imports(module: str, source: str) -> dict[str, set]:
    """The bnrepro modules `module` imports at its top ("top") and inside functions ("lazy", with line numbers), and
    the other packages it imports at its top ("packages"). `sections` imports each module it names in MODULES
    (through importlib)."""
    tree = ast.parse(source)
    found = {"top": set(), "lazy": set(), "packages": set()}
    lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            ours, others = targets(module, node)
            if id(node) in lazy:
                found["lazy"] |= {(t, node.lineno) for t in ours}
            else:
                found["top"] |= ours
                found["packages"] |= others
        elif module == "bnrepro.sections" and isinstance(node, ast.Assign) and \
                getattr(node.targets[0], "id", None) == "MODULES":
            found["top"] |= {f"bnrepro.sections.{m}" for m in ast.literal_eval(node.value)}
    return found


IMPORTS = {m: module_imports(m, p.read_text()) for m, p in MODULES.items()}


def reach(module: str, graph: dict = IMPORTS, kinds=("top", "lazy")) -> set[str]:
    """Every bnrepro module `module` imports, directly or through others (by the `kinds` of imports)."""
    seen, todo = set(), [module]
    while todo:
        found = graph[todo.pop()]
        for t in {t if kind == "top" else t[0] for kind in kinds for t in found[kind]} - seen:
            seen.add(t)
            todo.append(t)
    return seen


def circles(graph: dict) -> list[str]:
    """Each set of modules that import one another, directly or through others."""
    return sorted({" <-> ".join(sorted({m} | {t for t in reach(m, graph) if m in reach(t, graph)}))
                   for m in graph if m in reach(m, graph)})


def test_no_module_imports_one_that_imports_it_back():
    assert not circles(IMPORTS), f"import circles (top-level and function-level imports): {circles(IMPORTS)}"


def test_the_reader_sees_relative_function_level_and_registry_imports_and_circles():
    source = "import numpy\nfrom ..claims import Rule\nfrom . import sec31\n\ndef f():\n    from ..widgets import s\n"
    found = module_imports("bnrepro.sections.sec33", source)
    assert found == {"top": {"bnrepro.claims", "bnrepro.sections.sec31"}, "lazy": {("bnrepro.widgets", 6)},
                     "packages": {"numpy"}}
    assert {"bnrepro.sections.sec21", "bnrepro.sections.sec4"} <= IMPORTS["bnrepro.sections"]["top"]  # MODULES
    node = {"top": set(), "lazy": set(), "packages": set()}
    graph = {"a": node | {"top": {"b"}}, "b": node | {"lazy": {("c", 3)}}, "c": node | {"top": {"a"}},
             "d": node | {"top": {"a"}}}
    assert circles(graph) == ["a <-> b <-> c"]
    assert reach("a", graph, ("top",)) == {"b"}


def heavy(module: str) -> bool:
    """Whether importing `module` imports an optional heavy dependency (at its top, or through modules it imports
    at their top)."""
    return any(IMPORTS[m]["packages"] & HEAVY for m in {module} | reach(module, kinds=("top",)))


def test_imports_inside_functions_only_wrap_heavy_dependencies():
    hidden = sorted(f"{m} line {line} imports {t}" for m, found in IMPORTS.items() for t, line in found["lazy"]
                    if not heavy(t))
    assert not hidden, ("a bnrepro module imported inside a function, though importing it needs no optional heavy "
                        f"dependency ({', '.join(sorted(HEAVY))}): import it at the top: {hidden}")


def test_judging_and_presenting_never_reach_the_modules_that_compute_runs():
    readers = {m for m in MODULES if m in READERS or m.startswith("bnrepro.sections.")}
    assert readers >= {"bnrepro.judge", "bnrepro.sections.sec21"}
    leaks = {m: sorted(reach(m) & COMPUTE) for m in sorted(readers) if reach(m) & COMPUTE}
    assert not leaks, f"these modules read records only, but import what computes runs: {leaks}"


def test_no_module_needs_torchvision_or_ray_to_import():
    names = sorted(m for m in MODULES if m != "bnrepro.__main__")
    code = ("import importlib, sys\nsys.modules['torchvision'] = sys.modules['ray'] = None\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
