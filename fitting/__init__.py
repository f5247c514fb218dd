"""fitting: data, observables, losses, gradient routes, optimisation and interventions for grn.

The public surface; implementation lives in the ``_``-prefixed modules.
"""

from ._data import Measurements as Measurements
from ._demo import demo_fit as demo_fit
from ._fit import FitResult as FitResult, default_optimizer as default_optimizer, fit as fit
from ._gradients import (
    GradientEstimate as GradientEstimate,
    score_function_grad as score_function_grad,
)
from ._intervention import (
    DAY as DAY,
    Intervention as Intervention,
    apply_interventions as apply_interventions,
    check_targets as check_targets,
    levels_for as levels_for,
)
from ._losses import (
    energy_distance as energy_distance,
    gaussian_nll as gaussian_nll,
    moment_nll as moment_nll,
)
from ._observables import Observable as Observable, as_observable as as_observable
from ._outcomes import (
    MUTATION_RATE as MUTATION_RATE,
    OUTCOMES as OUTCOMES,
    Outcome as Outcome,
    make_outcome as make_outcome,
    persister_burden as persister_burden,
    priming as priming,
    resistance_risk as resistance_risk,
    sox10_low_fraction as sox10_low_fraction,
    viable_cells as viable_cells,
)
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
from ._scan import (
    ScanResult as ScanResult,
    ScenarioRun as ScenarioRun,
    delay_cost as delay_cost,
    rank as rank,
    scan as scan,
    simulate_scenarios as simulate_scenarios,
)
from ._schedule_optimisation import (
    Optimised as Optimised,
    optimise_schedule as optimise_schedule,
    project_budget as project_budget,
)
from ._sensitivity import (
    Sensitivity as Sensitivity,
    compare as compare,
    midpoints as midpoints,
    sensitivity as sensitivity,
    spearman as spearman,
)
from ._uncertainty import (
    Profile as Profile,
    StandardErrors as StandardErrors,
    hessian as hessian,
    profile_likelihood as profile_likelihood,
    standard_errors as standard_errors,
)
