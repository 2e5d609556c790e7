"""The paper's sections, one module each, in book order: each module holds the runs its chapter needs, its
figures and its claim rules, and exports one `SECTION`. `bnrepro.plan` lists every section's runs, and
`bnrepro.judge` reads a section's runs back and judges its claims.

Adding a chapter's section is one line: its module's name in `MODULES`.
"""

from __future__ import annotations

from importlib import import_module

from ..claims import Section

#: The section modules in book order.
MODULES = ("sec21", "sec22", "sec31", "sec33", "sec4", "beyond_lr", "beyond_more")

#: Paper section number ("2.1") -> its `Section`.
SECTIONS: dict[str, Section] = {s.number: s for s in (import_module(f"{__name__}.{m}").SECTION for m in MODULES)}
