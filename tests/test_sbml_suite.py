"""SBML Test Suite semantic cases shipped with the tests, run the way `run_sbml_suite` runs them.

The shipped cases are the CI subset of `benchmarks/sbml_ci_subset.py`: every tag that some
passing case of the suite carries, covered by the cheapest passing cases (greedy set cover)."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from grn.io import run_sbml_suite, summary_markdown
from grn.io._sbml_suite import read_settings, read_tags

pytest.importorskip("libsbml")

DATA = Path(__file__).parent / "data" / "sbml-semantic"
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_shipped_case_passes(case):
    with jax.enable_x64(True):
        (result,) = run_sbml_suite(DATA, cases=[case], timeout=None)
    assert result.status == "pass", (result.status, result.message, result.worst)


def _rate_rule_case() -> Path:
    """A shipped Level 3 case with a rate rule (its model has a listOfRules)."""
    for name in CASES:
        folder = DATA / name
        xml = next(folder.glob("*.xml"))
        if "RateRule" in read_tags(folder / f"{name}-model.m")[0] and "l3v" in xml.name:
            return folder
    raise AssertionError("no shipped Level 3 case with a rate rule")


def test_runner_records_refusals_and_summarises_by_tag(tmp_path):
    source = _rate_rule_case()
    case = tmp_path / "00002"
    case.mkdir()
    for f in source.iterdir():
        text = f.read_text().replace(source.name, "00002")
        if f.suffix == ".xml":  # an algebraic rule: refused, naming the rule
            text = text.replace(
                "<listOfRules>",
                '<listOfRules><algebraicRule><math xmlns="http://www.w3.org/1998/Math/MathML">'
                "<cn> 0 </cn></math></algebraicRule>",
            )
        (case / f.name.replace(source.name, "00002")).write_text(text)
    with jax.enable_x64(True):
        (result,) = run_sbml_suite(tmp_path, timeout=None)
    assert result.status == "refused" and "algebraicRule" in result.message
    assert "RateRule" in result.tags
    text = summary_markdown([result], "grn sbml-suite")
    assert "| RateRule | 1 | 0 | 0 | 1 | 0 | 0 |" in text
    assert read_settings(case / "00002-settings.txt")["variables"]
