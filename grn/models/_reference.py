"""Small reference networks with known behaviour, used in tests, benchmarks and examples.

Defaults of the first three are the DSMTS variants 001-01, 002-01 and 003-01 (Evans, Gillespie &
Wilkinson 2008, Bioinformatics 24:285), whose exact means and standard deviations are published.
"""

from .._network import Network, Reaction
from .._rate_laws import hill_repression, mass_action


def birth_death() -> Network:
    """Linear birth-death ``X -> 2X`` (lam), ``X -> 0`` (mu); DSMTS 001-01 (X0 = 100)."""
    return Network(
        species=["X"],
        reactions=[
            Reaction("X -> 2 X", mass_action("lam"), "birth"),
            Reaction("X ->", mass_action("mu"), "death"),
        ],
        params={"lam": 0.1, "mu": 0.11},
        x0={"X": 100},
    )


def immigration_death() -> Network:
    """Immigration-death ``0 -> X`` (alpha), ``X -> 0`` (mu); DSMTS 002-01.

    X(t) is Poisson with mean ``alpha/mu (1 - exp(-mu t))`` from X0 = 0.
    """
    return Network(
        species=["X"],
        reactions=[
            Reaction("-> X", mass_action("alpha"), "immigration"),
            Reaction("X ->", mass_action("mu"), "death"),
        ],
        params={"alpha": 1.0, "mu": 0.1},
        x0={"X": 0},
    )


def dimerisation() -> Network:
    """Dimerisation ``2P -> P2`` (k1, propensity k1 P (P-1)/2), ``P2 -> 2P`` (k2); DSMTS 003-01."""
    return Network(
        species=["P", "P2"],
        reactions=[
            Reaction("2 P -> P2", mass_action("k1"), "dimerisation"),
            Reaction("P2 -> 2 P", mass_action("k2"), "dissociation"),
        ],
        params={"k1": 0.001, "k2": 0.01},
        x0={"P": 100, "P2": 0},
    )


def telegraph() -> Network:
    """Two-state (telegraph) gene expression (Peccoud & Ycart 1995, Theor. Pop. Biol. 48:222).

    The gene switches on at k_on and off at k_off, makes mRNA M at nu while on; M decays at delta.
    The stationary law of M is a Poisson-beta mixture (Raj et al. 2006, PLoS Biol. 4:e309).
    """
    return Network(
        species=["G_off", "G_on", "M"],
        reactions=[
            Reaction("G_off -> G_on", mass_action("k_on"), "activation"),
            Reaction("G_on -> G_off", mass_action("k_off"), "inactivation"),
            Reaction("G_on -> G_on + M", mass_action("nu"), "transcription"),
            Reaction("M ->", mass_action("delta"), "decay"),
        ],
        params={"k_on": 0.1, "k_off": 1.0, "nu": 20.0, "delta": 1.0},
        x0={"G_off": 1, "G_on": 0, "M": 0},
    )


def toggle_switch() -> Network:
    """Genetic toggle switch (Gardner, Cantor & Collins 2000, Nature 403:339).

    U and V repress each other's synthesis, ``a / (1 + (x/K)^n)``, and decay at ``d``; bistable.
    """
    return Network(
        species=["U", "V"],
        reactions=[
            Reaction("-> U", hill_repression("V", vmax="a", K="K", n="n"), "make_U"),
            Reaction("U ->", mass_action("d"), "decay_U"),
            Reaction("-> V", hill_repression("U", vmax="a", K="K", n="n"), "make_V"),
            Reaction("V ->", mass_action("d"), "decay_V"),
        ],
        params={"a": 50.0, "K": 20.0, "n": 2.5, "d": 1.0},
        x0={"U": 0, "V": 0},
    )


def schlogl() -> Network:
    """Schlögl's bistable model (Schlögl 1972, Z. Physik 253:147), buffered A and B folded in.

    ``2X -> 3X`` (k1 = c1 A), ``3X -> 2X`` (k2), ``0 -> X`` (k3 = c3 B), ``X -> 0`` (k4), with the
    constants of Cao, Gillespie & Petzold's test set (c1 = 3e-7, A = 1e5, c2 = 1e-4, c3 = 1e-3,
    B = 2e5, c4 = 3.5): stable states near X = 85 and X = 565.
    """
    return Network(
        species=["X"],
        reactions=[
            Reaction("2 X -> 3 X", mass_action("k1")),
            Reaction("3 X -> 2 X", mass_action("k2")),
            Reaction("-> X", mass_action("k3")),
            Reaction("X ->", mass_action("k4")),
        ],
        params={"k1": 3e-7 * 1e5, "k2": 1e-4, "k3": 1e-3 * 2e5, "k4": 3.5},
        x0={"X": 250},
    )


def vilar_oscillator() -> Network:
    """Noise-resistant circadian oscillator (Vilar, Kueh, Barkai & Leibler 2002, PNAS 99:5988).

    Activator A binds its own and the repressor's promoters (DA, DR; bound DAp, DRp); A and the
    repressor R form an inactive complex C. Parameters are those of the paper (hours).
    """
    ma = mass_action
    reactions = [
        Reaction("DA + A -> DAp", ma("gammaA")),
        Reaction("DAp -> DA + A", ma("thetaA")),
        Reaction("DR + A -> DRp", ma("gammaR")),
        Reaction("DRp -> DR + A", ma("thetaR")),
        Reaction("DA -> DA + MA", ma("alphaA")),
        Reaction("DAp -> DAp + MA", ma("alphaAp")),
        Reaction("DR -> DR + MR", ma("alphaR")),
        Reaction("DRp -> DRp + MR", ma("alphaRp")),
        Reaction("MA -> MA + A", ma("betaA")),
        Reaction("MR -> MR + R", ma("betaR")),
        Reaction("A + R -> C", ma("gammaC")),
        Reaction("C -> R", ma("deltaA")),
        Reaction("A ->", ma("deltaA")),
        Reaction("R ->", ma("deltaR")),
        Reaction("MA ->", ma("deltaMA")),
        Reaction("MR ->", ma("deltaMR")),
    ]
    return Network(
        species=["DA", "DAp", "DR", "DRp", "MA", "MR", "A", "R", "C"],
        reactions=reactions,
        params={
            "gammaA": 1.0,
            "thetaA": 50.0,
            "gammaR": 1.0,
            "thetaR": 100.0,
            "alphaA": 50.0,
            "alphaAp": 500.0,
            "alphaR": 0.01,
            "alphaRp": 50.0,
            "betaA": 50.0,
            "betaR": 5.0,
            "gammaC": 2.0,
            "deltaA": 1.0,
            "deltaR": 0.2,
            "deltaMA": 10.0,
            "deltaMR": 0.5,
        },
        x0={"DA": 1, "DR": 1},
    )
