"""grn: differentiable, GPU-ready stochastic simulation of gene-regulatory networks in JAX."""

from . import models as models
from ._conformance import run_dsmts as run_dsmts, write_table as write_dsmts_table  # noqa: F401
from ._distributions import (
    Distribution as Distribution,
    LogNormal as LogNormal,
    stratified_normal as stratified_normal,
)
from ._network import Event as Event, Network as Network, Reaction as Reaction
from ._rate_laws import (
    AbstractRateLaw as AbstractRateLaw,
    hill_activation as hill_activation,
    hill_repression as hill_repression,
    mass_action as mass_action,
)
from ._schedule import Schedule as Schedule
from ._simulate import simulate as simulate
from ._solution import RESULTS as RESULTS, Solution as Solution
from ._solvers import (
    CLE as CLE,
    LNA as LNA,
    ODE as ODE,
    SSA as SSA,
    AbstractSolver as AbstractSolver,
    Hybrid as Hybrid,
    Rodas4 as Rodas4,
    Rodas5P as Rodas5P,
    TauLeap as TauLeap,
)
from ._streaming import (
    EnsembleMoments as EnsembleMoments,
    Histogram as Histogram,
    Moments as Moments,
)
from .io import load_sbml as load_sbml, save_sbml as save_sbml, to_sbml as to_sbml

__version__ = "0.1.0"
