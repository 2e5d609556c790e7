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
