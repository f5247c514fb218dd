"""fitting: data, observables, losses, gradient routes, optimisation and interventions for grn.

The public surface; implementation lives in the ``_``-prefixed modules.
"""

from ._data import Measurements as Measurements
from ._fit import FitResult as FitResult, default_optimizer as default_optimizer, fit as fit
from ._gradients import (
    GradientEstimate as GradientEstimate,
    score_function_grad as score_function_grad,
)
from ._interventions import (
    Intervention as Intervention,
    Outcome as Outcome,
    apply_interventions as apply_interventions,
    compare as compare,
    make_outcome as make_outcome,
    midpoints as midpoints,
    optimise_schedule as optimise_schedule,
    priming as priming,
    project_budget as project_budget,
    rank as rank,
    scan as scan,
    sensitivity as sensitivity,
    simulate_scenarios as simulate_scenarios,
    sox10_low_fraction as sox10_low_fraction,
    spearman as spearman,
    viable_cells as viable_cells,
)
from ._losses import (
    energy_distance as energy_distance,
    gaussian_nll as gaussian_nll,
    moment_nll as moment_nll,
)
from ._observables import Observable as Observable
from ._parameters import (
    Parameter as Parameter,
    ParameterSpace as ParameterSpace,
    lognormal_factors as lognormal_factors,
)
from ._petab import (
    PetabError as PetabError,
    PetabProblem as PetabProblem,
    default_petab_solver as default_petab_solver,
    load_petab as load_petab,
    log_likelihood as log_likelihood,
)
from ._problem import Problem as Problem
from ._uncertainty import (
    Profile as Profile,
    StandardErrors as StandardErrors,
    hessian as hessian,
    profile_likelihood as profile_likelihood,
    standard_errors as standard_errors,
)
