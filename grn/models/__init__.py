"""Built-in networks: the melanoma BRAFi stress-response model and small reference models."""

from typing import TYPE_CHECKING

from ._melanoma import (
    KM1_LOG_SD as KM1_LOG_SD,
    melanoma as melanoma,
    melanoma_cell_params as melanoma_cell_params,
    melanoma_sbml as melanoma_sbml,
)
from ._melanoma_protocols import (
    DAY as DAY,
    DRUG as DRUG,
    apoptotic_priming as apoptotic_priming,
    bimodality_coefficient as bimodality_coefficient,
    braf_schedule as braf_schedule,
    default_sox10_threshold as default_sox10_threshold,
    melanoma_observables as melanoma_observables,
    priming_per_cell as priming_per_cell,
    protocol_times as protocol_times,
    sox10_low_fraction as sox10_low_fraction,
    sox10_low_per_cell as sox10_low_per_cell,
    wave_scores as wave_scores,
)
from ._reference import (
    birth_death as birth_death,
    dimerisation as dimerisation,
    immigration_death as immigration_death,
    schlogl as schlogl,
    telegraph as telegraph,
    toggle_switch as toggle_switch,
    vilar_oscillator as vilar_oscillator,
)

if TYPE_CHECKING:  # imported lazily at run time, by __getattr__ below
    from ._melanoma_data import (
        OBSERVABLES as SYNTHETIC_OBSERVABLES,  # noqa: F401
        synthetic_paths as synthetic_paths,
    )

BUILTIN = {
    "melanoma": melanoma,
    "birth_death": birth_death,
    "immigration_death": immigration_death,
    "dimerisation": dimerisation,
    "telegraph": telegraph,
    "toggle_switch": toggle_switch,
    "schlogl": schlogl,
    "vilar_oscillator": vilar_oscillator,
}
"""Name -> constructor of every built-in network (the CLI and configs use these names)."""


def __getattr__(name: str):
    """``synthetic_paths`` and ``SYNTHETIC_OBSERVABLES`` of the bundled synthetic melanoma data,
    imported on first use (their module also runs as a script: ``python -m``)."""
    if name in ("synthetic_paths", "SYNTHETIC_OBSERVABLES"):
        from . import _melanoma_data

        return (
            _melanoma_data.synthetic_paths
            if name == "synthetic_paths"
            else _melanoma_data.OBSERVABLES
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
