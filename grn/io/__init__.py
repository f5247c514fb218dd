"""Model exchange: SBML import (`load_sbml`) and export (`save_sbml`, `to_sbml`); the SBML Test
Suite's semantic cases (`run_sbml_suite`, `summary_markdown`)."""

from ._mathml import SBMLMath as SBMLMath
from ._sbml_export import (
    consistency_errors as consistency_errors,
    save_sbml as save_sbml,
    to_sbml as to_sbml,
)
from ._sbml_import import load_sbml as load_sbml
from ._sbml_suite import (
    CaseResult as CaseResult,
    run_sbml_suite as run_sbml_suite,
    summary_markdown as summary_markdown,
)
