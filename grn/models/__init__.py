"""Built-in networks: the melanoma BRAFi stress-response model and small reference models."""

from ._melanoma import melanoma as melanoma, melanoma_cell_params as melanoma_cell_params
from ._melanoma_protocols import (
    apoptotic_priming as apoptotic_priming,
    bimodality_coefficient as bimodality_coefficient,
    braf_schedule as braf_schedule,
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
