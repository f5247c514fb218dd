"""Network construction and validation: every bad input names its culprit."""

import jax.numpy as jnp
import numpy as np
import pytest

import grn


def telegraph_reactions():
    return [
        grn.Reaction("G_off -> G_on", grn.mass_action("k_on")),
        grn.Reaction("G_on -> G_off", grn.mass_action("k_off")),
        grn.Reaction("G_on -> G_on + M", grn.mass_action("nu")),
        grn.Reaction("M ->", grn.mass_action("delta")),
    ]


def make(**overrides):
    kwargs = dict(
        species=["G_off", "G_on", "M"],
        reactions=telegraph_reactions(),
        params={"k_on": 0.1, "k_off": 1.0, "nu": 20.0, "delta": 1.0},
        x0={"G_off": 1, "G_on": 0, "M": 0},
    )
    kwargs.update(overrides)
    return grn.Network(**kwargs)


def test_stoichiometry_parsing():
    r = grn.Reaction("2 P + Q -> P2 + 3Q", grn.mass_action(1.0))
    assert r.reactants == (("P", 2), ("Q", 1))
    assert r.products == (("P2", 1), ("Q", 3))
    assert grn.Reaction("-> X", grn.mass_action(1.0)).reactants == ()
    assert grn.Reaction("X + X ->", grn.mass_action(1.0)).reactants == (("X", 2),)
    net = grn.Network(["P", "Q", "P2"], [r])
    np.testing.assert_array_equal(net.stoichiometry, [[-2, 2, 1]])


def test_mass_action_combinatorial_and_macroscopic_forms():
    net = grn.Network(
        ["P", "P2"],
        [grn.Reaction("2 P -> P2", grn.mass_action("k"))],
        params={"k": 0.5},
        x0={"P": 10},
    )
    x = jnp.array([10.0, 0.0])
    assert float(net.propensities(x, {"k": 0.5}, jnp.zeros(0))[0]) == pytest.approx(0.5 * 45)
    assert float(net.rates(x, {"k": 0.5}, jnp.zeros(0))[0]) == pytest.approx(0.5 * 50)
    for count in (0.0, 1.0):
        a = net.propensities(jnp.array([count, 0.0]), {"k": 0.5}, jnp.zeros(0))
        assert float(a[0]) == 0.0


def test_hill_laws_and_products():
    net = grn.Network(
        ["X", "Y"],
        [
            grn.Reaction("-> Y", grn.hill_activation("X", vmax="v", K="K", n="n")),
            grn.Reaction("-> X", grn.hill_repression("Y", vmax="v", K="K", n="n")),
            grn.Reaction("X ->", grn.mass_action("d") * grn.hill_repression("Y", K=5.0, n=2.0)),
        ],
        params={"v": 3.0, "K": 2.0, "n": 2.0, "d": 0.5},
    )
    a = net.propensities(
        jnp.array([2.0, 5.0]), {"v": 3.0, "K": 2.0, "n": 2.0, "d": 0.5}, jnp.zeros(0)
    )
    np.testing.assert_allclose(a, [3.0 * 4 / 8, 3.0 * 4 / 29, 0.5 * 2 * 0.5], rtol=1e-6)


def test_callable_law_with_input():
    net = grn.Network(
        ["M"],
        [
            grn.Reaction("-> M", lambda x, p, u: p["nu"] * u["I"]),
            grn.Reaction("M ->", grn.mass_action("delta")),
        ],
        params={"nu": 2.0, "delta": 1.0},
        inputs=["I"],
    )
    a = net.propensities(jnp.array([3.0]), {"nu": 2.0, "delta": 1.0}, jnp.array([0.5]))
    np.testing.assert_allclose(a, [1.0, 3.0])


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(species=["G_off", "G_on", "G_on"]), ValueError, "duplicate species name 'G_on'"),
        (
            dict(reactions=[grn.Reaction("G_off -> Z", grn.mass_action("k_on"))]),
            ValueError,
            "unknown species 'Z'",
        ),
        (
            dict(reactions=[grn.Reaction("G_off -> G_on", grn.mass_action("k_missing"))]),
            ValueError,
            "unknown parameter 'k_missing'",
        ),
        (
            dict(reactions=[grn.Reaction("-> M", lambda x, p, u: p["nu"] * x["Q"])]),
            ValueError,
            "unknown species 'Q'",
        ),
        (
            dict(reactions=[grn.Reaction("-> M", lambda x, p, u: p["nu"] * u["drug"])]),
            ValueError,
            "unknown input 'drug'",
        ),
        (
            dict(params={"k_on": -0.1, "k_off": 1.0, "nu": 20.0, "delta": 1.0}),
            ValueError,
            "parameter 'k_on' must be non-negative",
        ),
        (
            dict(params={"k_on": float("nan"), "k_off": 1.0, "nu": 20.0, "delta": 1.0}),
            ValueError,
            "parameter 'k_on' must be finite",
        ),
        (dict(x0={"G_off": 1, "Bogus": 3}), KeyError, "Bogus"),
        (dict(x0={"G_off": -1}), ValueError, "'G_off' must be non-negative"),
        (dict(inputs=["I", "I"]), ValueError, "duplicate input name 'I'"),
        (
            dict(reactions=[grn.Reaction("M ->", lambda x, p, u: -x["M"] - 1.0)]),
            ValueError,
            "must be finite and non-negative",
        ),
    ],
)
def test_validation_names_the_culprit(overrides, error, match):
    with pytest.raises(error, match=match):
        make(**overrides)


@pytest.mark.parametrize(
    "equation, match",
    [
        ("A => B", "exactly one '->'"),
        ("A -> B -> C", "exactly one '->'"),
        ("A <-> B", "reversible"),
        ("2.5 A -> B", "malformed term '2.5 A'"),
        ("A + -> B", "malformed term ''"),
        ("0 A -> B", "zero coefficient"),
    ],
)
def test_malformed_reaction_strings(equation, match):
    with pytest.raises(ValueError, match=match):
        grn.Reaction(equation, grn.mass_action(1.0))


def test_bad_rate_law_type():
    with pytest.raises(TypeError, match="rate law"):
        grn.Reaction("A -> B", object())


def test_duplicate_reaction_names():
    with pytest.raises(ValueError, match="duplicate reaction name 'r'"):
        grn.Network(
            ["A"],
            [
                grn.Reaction("A ->", grn.mass_action(1.0), "r"),
                grn.Reaction("-> A", grn.mass_action(1.0), "r"),
            ],
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(times=[0.0, 5.0, 5.0], values={"I": [1, 2, 3]}), ValueError, "strictly increasing"),
        (dict(times=[0.0, float("inf")], values={"I": [1, 2]}), ValueError, "finite"),
        (dict(times=[0.0, 1.0], values={"I": [1.0]}), ValueError, "input 'I' has"),
        (dict(times=[0.0, 1.0], values={"I": [1.0, float("nan")]}), ValueError, "input 'I'"),
        (dict(times=[0.0], values={}), ValueError, "non-empty mapping"),
    ],
)
def test_schedule_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        grn.Schedule(**kwargs)


def test_reference_models_build_with_documented_names():
    expected = {
        "birth_death": (("X",), {"lam", "mu"}),
        "immigration_death": (("X",), {"alpha", "mu"}),
        "dimerisation": (("P", "P2"), {"k1", "k2"}),
        "telegraph": (("G_off", "G_on", "M"), {"k_on", "k_off", "nu", "delta"}),
        "toggle_switch": (("U", "V"), {"a", "K", "n", "d"}),
    }
    for name, (species, params) in expected.items():
        net = grn.models.BUILTIN[name]()
        assert net.species == species
        assert set(net.params) == params
    assert grn.models.schlogl().n_reactions == 4
    assert grn.models.vilar_oscillator().n_reactions == 16


@pytest.mark.parametrize(
    "event, match",
    [
        (lambda: grn.Event(assign={"M": 0}), "exactly one of at="),
        (lambda: grn.Event(assign={"M": 0}, at=1.0, when=lambda t, x, p: True), "exactly one"),
        (lambda: grn.Event(assign={}, at=1.0), "non-empty mapping"),
        (lambda: grn.Event(assign={"M": 0}, at=float("inf")), "must be finite"),
        (lambda: make(events=[grn.Event(assign={"Q": 0}, at=1.0)]), "assigns 'Q'"),
        (
            lambda: make(events=[grn.Event(assign={"M": 0}, when=lambda t, x, p: x["Q"] > 1)]),
            "trigger uses unknown species 'Q'",
        ),
        (
            lambda: make(events=[grn.Event(assign={"M": lambda x, p, u: p["zz"]}, at=1.0)]),
            "unknown parameter 'zz'",
        ),
        (lambda: make(rules={"M": lambda x, p, u: 2 * x["M"]}), "name of a species"),
    ],
)
def test_event_and_rule_validation(event, match):
    with pytest.raises(ValueError, match=match):
        event()


def test_rules_are_evaluated_on_states():
    net = make(rules={"y": lambda x, p, u: 2 * x["M"]})
    values = net.rule_values(jnp.array([1.0, 0.0, 3.0]), net.params, jnp.zeros(0))
    assert float(values["y"]) == 6.0
