"""The BRAF-inhibitor stress response of BRAF^V600E melanoma cells (built-in model, issue 5).

Biology (Su et al., Nat Commun 2026, doi:10.1038/s41467-026-71349-4): BRAF inhibition (BRAFi)
disrupts antioxidant defence, reactive oxygen species (ROS) build up, NF-kB (RelA) activates and
recruits histone-modifying enzymes, and chromatin remodelling shuts the melanocytic identity genes
(SOX10, MITF), giving a reversible, slow-cycling, dedifferentiated drug-tolerant state reached
through two sequential transcriptional waves (lambda1, lambda2) and left, after drug removal, by a
slower, different route. Tolerant cells have reduced apoptotic priming that BH3 mimetics restore
(Davern et al., Cell Death Differ 2025, doi:10.1038/s41418-025-01656-8). Cell-to-cell
heterogeneity decides each cell's route (Su et al., PNAS 2017; Su et al., Nat Commun 2020).

Species (counts per cell, in this order): ``E`` phospho-ERK, ``A`` antioxidant capacity, ``R``
ROS, ``Nn`` nuclear RelA, ``Im``/``I`` IkBa mRNA/protein, ``W1`` early-wave programme
(lambda1-like), ``M`` remodelled chromatin loci, ``S`` SOX10/MITF identity, ``W2`` late-wave
mesenchymal programme (lambda2-like), ``B`` free BIM, ``Bc`` free anti-apoptotic pool, ``C``
BIM-Bc complex. Inputs (levels in [0, 1], piecewise constant through a `grn.Schedule`): ``BRAFi``
(drug effect, 0.95 on drug), ``NFKBi``, ``NAC``, ``EPIi``, ``BH3i``. Time in hours.

Reactions: the 27 of ``shared/MODEL.md``'s starting network with its "second pass" variant (rows
13-17, 19, 20 and 23 replaced), recalibrated (issue 5; what changed and why, the structures tried
and the measured behaviours are in ``docs/model.md``): an early wave W1 driven by RelA and
repressed by W2 (Hill 4) with a ~18-day turnover; a cooperative (Hill 3) chromatin feedback with a
per-cell RelA-driven remodelling rate ``kM1`` (log-normal, extrinsic heterogeneity declared in
the network as ``cell_params``), which makes SOX10 loss all-or-none and staggered across cells; a
late
wave W2 that turns over in ~1.4 days and is driven by RelA x W1 and, mainly, by remodelled
chromatin, so that after drug removal it falls as chromatin is restored (memory); a switch-like
(Hill 4) W2 drive of the anti-apoptotic pool; growth that follows pERK steeply. EPIi blocks the
share ``eEPI = 0.5`` of remodelling, not all of it (issue 7; docs/model.md §EPIi efficacy).
Issue 19: the RTK route to ERK is switch-like in W2 (Hill 4; held off while ERK is high, back as
W2 rises: the partial rebound) and ERK dephosphorylation is faster (kEd 20), so pERK falls >= 90 %
within an hour of BRAFi (docs/model.md §pERK); every cell first runs `EQUILIBRATE_DAYS`
untreated (the network's ``equilibrate_h``), so a protocol starts from each cell's own state.

Omega convention (one mechanism, `_Scaled`): every rate law is written once over
*concentrations* in MODEL.md's unscaled units (E_T = N_T = 1000, M_T = 100) and wrapped; species
``s`` of a module with scale ``Omega_m`` has concentration ``n_s / Omega_m``, and a reaction of that
module has propensity ``Omega_m * a(n / Omega)``. Scales are parameters: ``Omega_ERK = 0.02`` (E),
``Omega_ROS = 0.25`` (A, R), ``Omega_NFkB = 0.125`` (Nn, Im, I), ``Omega_slow = 1`` (waves,
chromatin, apoptosis), so E_T = 20 and N_T = 125 copies and a cell fires ~1,100 reactions per hour.
Growth ``gmax h+(E; KEg, nEg)`` and death hazard ``kapo h+(B; KBh, nBh)`` read concentrations too
(they are rates per cell, not propensities).

SBML (`melanoma_sbml`, ``grn.to_sbml(melanoma())``): each row of `_ROWS` also carries its law as
an SBML formula over concentrations (`_Scaled.sbml_formula` writes the Omega scaling out), proven
equal to the Python law by tests/test_melanoma_sbml.py; the SBML lacks the per-cell kM1 spread
(its median is written), the 20-day untreated pre-run (it starts from `X0`) and cell fates.

Parameters (`PARAMS`, every number named): MODEL.md's starting table for the fast modules (rows
1-12), rows 18, 21, 22, 24-27; the slow module (rows 13-17, 19, 20) calibrated against the
five behaviours of MODEL.md and the two-wave kinetics of Su et al. (`grn.models._two_wave`) with an
averaged stochastic surrogate (docs/model.md). They are modelling priors chosen to produce the
behaviours of the papers above, not values measured in those papers. The NF-kB/IkBa module has
the form of the minimal NF-kB oscillator of Krishna, Jensen & Sneppen (PNAS 2006).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax.numpy as jnp

from .._distributions import LogNormal
from .._network import Network, Reaction
from .._rate_laws import AbstractRateLaw, _as_law, hill_ratio, mass_action

SPECIES = ("E", "A", "R", "Nn", "Im", "I", "W1", "M", "S", "W2", "B", "Bc", "C")
INPUTS = ("BRAFi", "NFKBi", "NAC", "EPIi", "BH3i")

OMEGA = {
    "E": "Omega_ERK",
    "A": "Omega_ROS",
    "R": "Omega_ROS",
    "Nn": "Omega_NFkB",
    "Im": "Omega_NFkB",
    "I": "Omega_NFkB",
    **{s: "Omega_slow" for s in ("W1", "M", "S", "W2", "B", "Bc", "C")},
}
"""Species -> the parameter holding its module's copy-number scale Omega."""

PARAMS: dict[str, float] = {
    # module scales (copies per unscaled unit)
    "Omega_ERK": 0.02,
    "Omega_ROS": 0.25,
    "Omega_NFkB": 0.125,
    "Omega_slow": 1.0,
    # 1-2 ERK
    "ET": 1000.0,
    "kEa": 10.0,
    "kErtk": 1.0,
    "KW2E": 400.0,
    "nW2E": 4.0,
    "kEd": 20.0,
    # 3-6 antioxidant and ROS
    "kA0": 10.0,
    "kA1": 90.0,
    "KEA": 50.0,
    "kA2": 30.0,
    "KRA": 400.0,
    "nRA": 2.0,
    "dA": 0.15,
    "kR0": 300.0,
    "rho": 0.5,
    "ksc": 0.01,
    "kdR": 0.5,
    "kNAC": 5.0,
    # 7-12 NF-kB / IkBa
    "NT": 1000.0,
    "kin": 42.8,
    "KI": 20.2,
    "kex": 2.01,
    "KN": 10.7,
    "ktx0": 0.5,
    "ktx": 373.0,
    "Ktx": 370.0,
    "ntx": 2.0,
    "dIm": 1.64,
    "ktl": 41.9,
    "dI": 0.3,
    "kIKK": 3.74,
    "ikk0": 0.01,
    "KIKK": 100.0,
    "nIKK": 4.0,
    # 13-14 early wave (second pass)
    "kW1": 3.97,
    "b1": 0.000137,
    "KNW1": 200.0,
    "nNW1": 2.0,
    "K21": 183.0,
    "n21": 4.0,
    "dW1": 0.00226,
    # 15-16 chromatin (second pass; kM1 is the median of the per-cell values)
    "MT": 100.0,
    "kM1": 0.0367,
    "KNM": 200.0,
    "nNM": 4.0,
    "kMfb": 0.0196,
    # EPIi blocks the share eEPI of remodelling carried by the enzymes it inhibits (issue 7; with
    # MODEL.md's eEPI = 1, EPIi 0.8 abolished the switch and out-ranked NF-kB inhibition and NAC)
    "eEPI": 0.5,
    "KM": 25.1,
    "nMfb": 3.0,
    "kMe0": 0.0422,
    "kMe1": 0.0118,
    "KSMe": 100.0,
    # 17-18 SOX10/MITF (second pass: KMS)
    "kS": 40.2,
    "s0": 0.05,
    "KSS": 150.0,
    "nSS": 2.0,
    "KMS": 17.5,
    "nMS": 2.0,
    "dS": 0.0286,
    # 19-20 late wave (second pass)
    "kW2": 23.0,
    "w0": 9.13e-05,
    "KNW2": 200.0,
    "nNW2": 2.0,
    "K12": 486.0,
    "cM": 0.663,
    "KMW": 29.2,
    "nMW": 2.0,
    "dW2": 0.0303,
    # 21-27 apoptosis (23 second pass)
    "kB0": 5.0,
    "kB1": 45.0,
    "KEB": 50.0,
    "dB": 0.2,
    "kC0": 10.0,
    "kC1": 40.0,
    "KNC": 150.0,
    "kC2": 150.0,
    "KW2C": 300.0,
    "nW2C": 4.0,
    "dBc": 0.05,
    "kon": 0.02,
    "koff": 0.2,
    "phi": 20.0,
    "dC": 0.1,
    # cell fate
    "gmax": 0.03,
    "KEg": 200.0,
    "nEg": 2.0,
    "kapo": 0.05,
    "KBh": 20.0,
    "nBh": 2.0,
}
"""Default (calibrated) parameters, concentrations in unscaled units, /h."""

KM1_LOG_SD = 0.4
"""Per-cell spread of the chromatin remodelling rate: ``kM1_i = kM1 exp(KM1_LOG_SD z_i)``."""

EQUILIBRATE_DAYS = 20.0
"""Untreated days each simulated cell runs from ``X0`` before ``ts[0]`` (``equilibrate_h``), so
that a protocol starts from each cell's own untreated state (its kM1 sets its chromatin, SOX10
and W2; W1 turns over in ~18 days)."""

# The untreated state, in counts at the default scales: the mean of a 256-cell CLE ensemble
# (CLE(dt=0.01), each cell with its own kM1 from the network's distribution) after the network's
# 20-day pre-equilibration, over 50-150 h (tests/test_melanoma.py checks that it does not drift).
# It seeds the pre-equilibration (`EQUILIBRATE_DAYS`), which takes each cell to its own untreated
# state; ``X0["S"] / 2`` is the default SOX10-low threshold. A and R: the shift of the median
# cell's ODE steady state when KEA went 100 -> 50 (issue 19).
X0 = {
    "E": 7,
    "A": 148,
    "R": 12,
    "Nn": 8,
    "Im": 2,
    "I": 113,
    "W1": 208,
    "M": 10,
    "S": 1078,
    "W2": 98,
    "B": 6,
    "Bc": 334,
    "C": 93,
}


# -- the Omega convention ---------------------------------------------------------------------
_SYMBOL = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
"""An identifier in an infix formula (not the exponent of a number such as ``1e-3``)."""


class _Concentrations(Mapping):
    """A lazy view of counts as concentrations: ``x[s] / p[OMEGA[s]]``."""

    def __init__(self, x, p):
        self._x, self._p = x, p

    def __getitem__(self, name):
        return self._x[name] / self._p[OMEGA[name]]

    def __iter__(self):
        return iter(self._x)

    def __len__(self):
        return len(self._x)


class _Scaled(AbstractRateLaw):
    """``p[omega] * law(n / Omega, p, u)``: a law over concentrations as a propensity in counts.

    With ``omega=None`` the law's value is returned unscaled (growth and death rates, which are
    per-cell rates rather than propensities, read concentrations but are not multiplied).
    """

    law: AbstractRateLaw
    omega: str | None
    formula: str | None = None  # ``law`` as an SBML L3 infix formula over concentrations

    def __call__(self, x, p, u, reactants=(), stochastic=True):
        rate = self.law(_Concentrations(x, p), p, u, reactants, stochastic)
        return rate if self.omega is None else p[self.omega] * rate

    def sbml_formula(self, reactants=()) -> str | None:
        """The law in counts as SBML L3 infix (what `grn.to_sbml` writes): ``formula`` with
        each species ``s`` read as ``(s / Omega_s)``, times ``omega``; None without a formula."""
        if self.formula is None:
            return None
        text = _SYMBOL.sub(
            lambda m: f"({m[0]} / {OMEGA[m[0]]})" if m[0] in OMEGA else m[0], self.formula
        )
        return text if self.omega is None else f"{self.omega} * ({text})"


def _hill(x, K, n):
    """h+(x; K, n) = x^n / (K^n + x^n), 0 for x <= 0 (safe for non-integer n)."""
    r = hill_ratio(x, K, n)
    return r / (1.0 + r)


def _free(total, bound):
    """The free pool ``total - bound``, floored at 0 so an overshoot cannot make a rate negative."""
    return jnp.maximum(total - bound, 0.0)


# -- rate laws over concentrations (module-level functions: stable identity, no recompiles) ---
def _erk_activation(x, p, u):  # 1
    drive = p["kEa"] * (1.0 - u["BRAFi"]) + p["kErtk"] * _hill(x["W2"], p["KW2E"], p["nW2E"])
    return drive * _free(p["ET"], x["E"])


def _antioxidant_synthesis(x, p, u):  # 3
    return (
        p["kA0"]
        + p["kA1"] * x["E"] / (p["KEA"] + x["E"])
        + p["kA2"] * _hill(x["R"], p["KRA"], p["nRA"])
    )


def _ros_production(x, p, u):  # 5
    return p["kR0"] * (1.0 + p["rho"] * u["BRAFi"])


def _ros_removal(x, p, u):  # 6
    return (p["ksc"] * x["A"] + p["kdR"] + p["kNAC"] * u["NAC"]) * x["R"]


def _relA_import(x, p, u):  # 7
    return p["kin"] * _free(p["NT"], x["Nn"]) * p["KI"] / (p["KI"] + x["I"])


def _relA_export(x, p, u):  # 8
    return p["kex"] * x["I"] * x["Nn"] / (p["KN"] + x["Nn"])


def _ikba_transcription(x, p, u):  # 9
    return p["ktx0"] + p["ktx"] * _hill(x["Nn"], p["Ktx"], p["ntx"])


def _ikk(x, p):
    return p["ikk0"] + (1.0 - p["ikk0"]) * _hill(x["R"], p["KIKK"], p["nIKK"])


def _ikba_degradation(x, p, u):  # 12
    return (p["dI"] + p["kIKK"] * _ikk(x, p) * (1.0 - u["NFKBi"])) * x["I"]


def _early_wave(x, p, u):  # 13
    drive = p["b1"] + _hill(x["Nn"], p["KNW1"], p["nNW1"])
    repression = 1.0 + (jnp.maximum(x["W2"], 0.0) / p["K21"]) ** p["n21"]
    return p["kW1"] * drive / repression


def _remodelling(x, p, u):  # 15
    rate = p["kM1"] * _hill(x["Nn"], p["KNM"], p["nNM"]) + p["kMfb"] * _hill(
        x["M"], p["KM"], p["nMfb"]
    )
    return (1.0 - p["eEPI"] * u["EPIi"]) * rate * _free(p["MT"], x["M"])


def _restoration(x, p, u):  # 16
    return (p["kMe0"] + p["kMe1"] * x["S"] / (p["KSMe"] + x["S"])) * x["M"]


def _identity_synthesis(x, p, u):  # 17
    drive = p["s0"] + _hill(x["S"], p["KSS"], p["nSS"])
    return p["kS"] * drive / (1.0 + (jnp.maximum(x["M"], 0.0) / p["KMS"]) ** p["nMS"])


def _late_wave(x, p, u):  # 19
    relA_w1 = _hill(x["Nn"], p["KNW2"], p["nNW2"]) * x["W1"] / (p["K12"] + x["W1"])
    chromatin = p["cM"] * _hill(x["M"], p["KMW"], p["nMW"])
    return p["kW2"] * (p["w0"] + relA_w1 + chromatin)


def _bim_synthesis(x, p, u):  # 21
    return p["kB0"] + p["kB1"] * p["KEB"] / (p["KEB"] + x["E"])


def _antiapoptotic_synthesis(x, p, u):  # 23
    return (
        p["kC0"]
        + p["kC1"] * x["Nn"] / (p["KNC"] + x["Nn"])
        + p["kC2"] * _hill(x["W2"], p["KW2C"], p["nW2C"])
    )


def _complex_dissociation(x, p, u):  # 26
    return p["koff"] * (1.0 + p["phi"] * u["BH3i"]) * x["C"]


def _growth(x, p, u):
    return p["gmax"] * _hill(x["E"], p["KEg"], p["nEg"])


def _death(x, p, u):
    return p["kapo"] * _hill(x["B"], p["KBh"], p["nBh"])


def _h(x: str, K: str, n: str) -> str:
    """`_hill` as an SBML L3 infix formula (``max(x, 0)``: 0 for x <= 0, as `hill_ratio`)."""
    ratio = f"(max({x}, 0) / {K}) ^ {n}"
    return f"({ratio} / (1 + {ratio}))"


# (equation, law over concentrations, module scale, name, the same law as an SBML L3 infix
# formula over concentrations); rows as numbered in MODEL.md. The formulas are what `grn.to_sbml`
# writes (`_Scaled.sbml_formula`); tests/test_melanoma_sbml.py proves them equal to the functions.
_ROWS = (
    (
        "-> E",
        _erk_activation,
        "Omega_ERK",
        "erk_activation",
        f"(kEa * (1 - BRAFi) + kErtk * {_h('W2', 'KW2E', 'nW2E')}) * max(ET - E, 0)",
    ),  # 1
    ("E ->", mass_action("kEd"), "Omega_ERK", "erk_deactivation", "kEd * E"),  # 2
    (
        "-> A",
        _antioxidant_synthesis,
        "Omega_ROS",
        "antioxidant_synthesis",
        f"kA0 + kA1 * E / (KEA + E) + kA2 * {_h('R', 'KRA', 'nRA')}",
    ),  # 3
    ("A ->", mass_action("dA"), "Omega_ROS", "antioxidant_decay", "dA * A"),  # 4
    ("-> R", _ros_production, "Omega_ROS", "ros_production", "kR0 * (1 + rho * BRAFi)"),  # 5
    (
        "R ->",
        _ros_removal,
        "Omega_ROS",
        "ros_removal",
        "(ksc * A + kdR + kNAC * NAC) * R",
    ),  # 6
    (
        "-> Nn",
        _relA_import,
        "Omega_NFkB",
        "relA_import",
        "kin * max(NT - Nn, 0) * KI / (KI + I)",
    ),  # 7
    ("Nn ->", _relA_export, "Omega_NFkB", "relA_export", "kex * I * Nn / (KN + Nn)"),  # 8
    (
        "-> Im",
        _ikba_transcription,
        "Omega_NFkB",
        "ikba_transcription",
        f"ktx0 + ktx * {_h('Nn', 'Ktx', 'ntx')}",
    ),  # 9
    ("Im ->", mass_action("dIm"), "Omega_NFkB", "ikba_mrna_decay", "dIm * Im"),  # 10
    ("Im -> Im + I", mass_action("ktl"), "Omega_NFkB", "ikba_translation", "ktl * Im"),  # 11
    (
        "I ->",
        _ikba_degradation,
        "Omega_NFkB",
        "ikba_degradation",
        f"(dI + kIKK * (ikk0 + (1 - ikk0) * {_h('R', 'KIKK', 'nIKK')}) * (1 - NFKBi)) * I",
    ),  # 12
    (
        "-> W1",
        _early_wave,
        "Omega_slow",
        "early_wave",
        f"kW1 * (b1 + {_h('Nn', 'KNW1', 'nNW1')}) / (1 + (max(W2, 0) / K21) ^ n21)",
    ),  # 13
    ("W1 ->", mass_action("dW1"), "Omega_slow", "early_wave_decay", "dW1 * W1"),  # 14
    (
        "-> M",
        _remodelling,
        "Omega_slow",
        "chromatin_remodelling",
        f"(1 - eEPI * EPIi) * (kM1 * {_h('Nn', 'KNM', 'nNM')} + kMfb * {_h('M', 'KM', 'nMfb')})"
        " * max(MT - M, 0)",
    ),  # 15
    (
        "M ->",
        _restoration,
        "Omega_slow",
        "chromatin_restoration",
        "(kMe0 + kMe1 * S / (KSMe + S)) * M",
    ),  # 16
    (
        "-> S",
        _identity_synthesis,
        "Omega_slow",
        "sox10_synthesis",
        f"kS * (s0 + {_h('S', 'KSS', 'nSS')}) / (1 + (max(M, 0) / KMS) ^ nMS)",
    ),  # 17
    ("S ->", mass_action("dS"), "Omega_slow", "sox10_decay", "dS * S"),  # 18
    (
        "-> W2",
        _late_wave,
        "Omega_slow",
        "late_wave",
        f"kW2 * (w0 + {_h('Nn', 'KNW2', 'nNW2')} * W1 / (K12 + W1) + cM * {_h('M', 'KMW', 'nMW')})",
    ),  # 19
    ("W2 ->", mass_action("dW2"), "Omega_slow", "late_wave_decay", "dW2 * W2"),  # 20
    ("-> B", _bim_synthesis, "Omega_slow", "bim_synthesis", "kB0 + kB1 * KEB / (KEB + E)"),  # 21
    ("B ->", mass_action("dB"), "Omega_slow", "bim_decay", "dB * B"),  # 22
    (
        "-> Bc",
        _antiapoptotic_synthesis,
        "Omega_slow",
        "antiapoptotic_synthesis",
        f"kC0 + kC1 * Nn / (KNC + Nn) + kC2 * {_h('W2', 'KW2C', 'nW2C')}",
    ),  # 23
    ("Bc ->", mass_action("dBc"), "Omega_slow", "antiapoptotic_decay", "dBc * Bc"),  # 24
    ("B + Bc -> C", mass_action("kon"), "Omega_slow", "bim_sequestration", "kon * B * Bc"),  # 25
    (
        "C -> B + Bc",
        _complex_dissociation,
        "Omega_slow",
        "bim_release",
        "koff * (1 + phi * BH3i) * C",
    ),  # 26
    ("C ->", mass_action("dC"), "Omega_slow", "complex_decay", "dC * C"),  # 27
)
_GROWTH = f"gmax * {_h('E', 'KEg', 'nEg')}"
_DEATH = f"kapo * {_h('B', 'KBh', 'nBh')}"
"""The growth and death laws as formulas over concentrations (per-cell rates, not scaled)."""


def melanoma() -> Network:
    """The BRAF-inhibitor stress-response network of melanoma cells (see the module docstring).

    13 species, 27 reactions, inputs ``BRAFi``, ``NFKBi``, ``NAC``, ``EPIi``, ``BH3i``; hours;
    growth and death laws for the cell-fate weights; ``x0`` the untreated ensemble's mean. The
    network declares the per-cell log-normal spread of the chromatin remodelling rate kM1
    (``cell_params``, drawn by `grn.simulate` from its key) and a 20-day untreated
    pre-equilibration (``equilibrate_h``), so the plain ``grn.simulate(melanoma(), ts, key=key,
    n_cells=n, schedule=...)`` starts from each cell's own untreated state.
    """
    reactions = [
        Reaction(eq, _Scaled(_as_law(law), omega, formula), name)
        for eq, law, omega, name, formula in _ROWS
    ]
    km1 = LogNormal(median=PARAMS["kM1"], sigma=KM1_LOG_SD)
    return Network(
        species=SPECIES,
        reactions=reactions,
        params=PARAMS,
        x0=X0,
        inputs=INPUTS,
        growth=_Scaled(_as_law(_growth), None, _GROWTH),
        death=_Scaled(_as_law(_death), None, _DEATH),
        cell_params={"kM1": km1},
        equilibrate_h=EQUILIBRATE_DAYS * 24.0,
    )


def melanoma_sbml(washout_h: float | None = None) -> str:
    """The model as an SBML Level 3 Version 2 document (`grn.to_sbml` of `melanoma`, id melanoma).

    Species are counts (amounts in the compartment ``cell`` of size 1, initial amounts `X0`);
    each kinetic law is its row's formula over concentrations with the Omega scaling written
    out (``Omega_m * f(n / Omega)``, a propensity in counts); the inputs (``BRAFi``, ...) are
    parameters of value 0 that the receiving tool sets. Not in the SBML: the per-cell
    log-normal spread of kM1 (written as its median), the 20-day untreated pre-run (the model
    starts from `X0`), and cell fates (growth and death are assignment rules on ``grn_growth``
    and ``grn_death`` that nothing reads). ``washout_h``: an event at that time (the trigger
    ``time >= washout_h`` with the number written in) sets every input to 0, the drug removal
    of a protocol whose on-drug levels a PEtab condition sets.
    """
    import warnings

    from ..io._mathml import _libsbml
    from ..io._sbml_export import to_sbml

    with warnings.catch_warnings():  # the dropped spread and pre-run, said above
        warnings.filterwarnings("ignore", message="SBML cannot carry", category=UserWarning)
        text = to_sbml(melanoma(), model_id="melanoma")
    if washout_h is None:
        return text
    if not (isinstance(washout_h, int | float) and 0 < washout_h < float("inf")):
        raise ValueError(f"washout_h must be a positive finite number of hours, got {washout_h!r}")
    libsbml = _libsbml()
    doc = libsbml.readSBMLFromString(text)
    event = doc.getModel().createEvent()
    event.setId("washout")
    event.setUseValuesFromTriggerTime(True)
    trigger = event.createTrigger()
    trigger.setInitialValue(False)
    trigger.setPersistent(True)
    trigger.setMath(libsbml.parseL3Formula(f"time >= {float(washout_h)!r}"))
    for name in INPUTS:
        assignment = event.createEventAssignment()
        assignment.setVariable(name)
        assignment.setMath(libsbml.parseL3Formula("0"))
    return libsbml.writeSBMLToString(doc)


def melanoma_cell_params(
    key, n_cells: int, kM1: float | None = None, log_sd: float = KM1_LOG_SD
) -> dict:
    """Explicit per-cell draws ``{"kM1": kM1 * exp(log_sd * z)}``, ``z ~ N(0, 1)`` per cell.

    The network draws these itself (``cell_params``); this helper gives them as an explicit
    ``params=`` override, e.g. for another median or spread. ``kM1`` (the median) defaults to the
    network's, ``PARAMS["kM1"]``.
    """
    if not isinstance(n_cells, int) or isinstance(n_cells, bool) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    median = PARAMS["kM1"] if kM1 is None else kM1
    return {"kM1": LogNormal(median=median, sigma=log_sd).sample(key, n_cells)}
