"""CITATION.cff cites this version of the book and references the paper it reproduces."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_citation_names_this_version_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == version, "bump CITATION.cff's version (and date-released) with pyproject.toml's"
    (paper,) = cff["references"]
    assert [a["family-names"] for a in paper["authors"]] == ["Santurkar", "Tsipras", "Ilyas", "Madry"]
    assert paper["year"] == 2018 and "1805.11604" in paper["url"]
    assert "MIT License" in (ROOT / "LICENSE").read_text() and cff["license"] == "MIT"


def test_the_books_footer_names_the_citation_authors(tmp_path):
    from bnrepro.report import citation_authors

    cff = tmp_path / "CITATION.cff"
    cff.write_text("authors:\n  - name: A team\n  - given-names: Ada\n    family-names: Lovelace\n")
    assert citation_authors(cff) == "A team and Ada Lovelace"
    names = [a.get("name") or a["family-names"] for a in yaml.safe_load((ROOT / "CITATION.cff").read_text())["authors"]]
    assert all(n in citation_authors() for n in names)
    # book/build.py replaces _config.yml's one author line with them in the staged copy
    assert [line for line in (ROOT / "book/_config.yml").read_text().splitlines() if line.startswith("author:")]
