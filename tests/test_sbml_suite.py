"""SBML Test Suite semantic cases shipped with the tests, run the way `run_sbml_suite` runs them."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from grn.io import run_sbml_suite, summary_markdown
from grn.io._sbml_suite import read_settings

pytest.importorskip("libsbml")

DATA = Path(__file__).parent / "data" / "sbml-semantic"
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_shipped_case_passes(case):
    with jax.enable_x64(True):
        (result,) = run_sbml_suite(DATA, cases=[case], timeout=None)
    assert result.status == "pass", (result.status, result.message, result.worst)


def test_runner_records_refusals_and_summarises_by_tag(tmp_path):
    source = DATA / "01205"
    case = tmp_path / "00002"
    case.mkdir()
    for f in source.iterdir():
        text = f.read_text().replace("01205", "00002")
        if f.suffix == ".xml":  # an algebraic rule: refused, naming the rule
            text = text.replace(
                "<listOfRules>",
                '<listOfRules><algebraicRule><math xmlns="http://www.w3.org/1998/Math/MathML">'
                "<cn> 0 </cn></math></algebraicRule>",
            )
        (case / f.name.replace("01205", "00002")).write_text(text)
    with jax.enable_x64(True):
        (result,) = run_sbml_suite(tmp_path, timeout=None)
    assert result.status == "refused" and "algebraicRule" in result.message
    assert "RateRule" in result.tags
    text = summary_markdown([result], "grn sbml-suite")
    assert "| RateRule | 1 | 0 | 0 | 1 | 0 | 0 |" in text
    assert read_settings(case / "00002-settings.txt")["variables"]
