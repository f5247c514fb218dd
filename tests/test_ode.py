"""The ODE solver against independent references, and the fate integral ``log_weight``.

Error bounds. diffrax's PID controller keeps every step's local error estimate below
``rtol |y| + atol`` (RMS norm over the state). All systems here are dissipative (trajectories
relax onto stable equilibria), so local errors are damped rather than amplified; still, the global
error of per-step error control is not a fixed multiple of the tolerance: it scales like
tol^(p/(p+1)) for an order-p method (Hairer, Norsett & Wanner, Solving ODEs I, ch. II), and values
at the output times come from a third-order Hermite interpolant between steps. So we allow
``|y - y_ref| <= C (rtol |y_ref| + atol)`` with C = 100 at tol = 1e-8 (observed worst: ~56, for
the schedule with its restarts at breakpoints). A wrong term in a rate law (a missing factorial, a
wrong power, a wrong input level) produces O(1) relative errors, 10^5-10^7 times the bound.
References come from scipy's Radau at rtol = atol = 1e-12, negligible against the bound.
Tight checks run in float64 inside ``jax.enable_x64(True)`` (a context, so it does not leak into
other tests); the default float32 configuration is checked at its default tolerances, where
float32 rounding (eps = 1.2e-7 relative) stays well below ``C rtol``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import grn

C = 100.0
TIGHT = 1e-8


@pytest.fixture(autouse=True)
def _no_x64_leak():
    """float64 is enabled only inside `jax.enable_x64` contexts: prove none of them leaks."""
    yield
    assert jnp.zeros(()).dtype == jnp.float32, "a test left jax_enable_x64 on"


def _solve_ref(rhs, y0, ts):
    sol = solve_ivp(rhs, (ts[0], ts[-1]), y0, method="Radau", t_eval=ts, rtol=1e-12, atol=1e-12)
    assert sol.success
    return sol.y.T


def _ode(network, ts, x64, tol=None, **kwargs):
    solver = grn.ODE(rtol=tol, atol=tol) if tol else grn.ODE()
    with jax.enable_x64(x64):
        sol = grn.simulate(network, jnp.asarray(ts), solver=solver, **kwargs)
        assert sol.ys.dtype == (jnp.float64 if x64 else jnp.float32)
        assert np.all(np.asarray(sol.result) == grn.RESULTS.successful)
        return np.asarray(sol.ys[0], np.float64), np.asarray(sol.log_weight[0], np.float64)


def _assert_within(y, ref, rtol, atol):
    ratio = np.abs(y - ref) / (rtol * np.abs(ref) + atol)
    print(f"max error / (rtol |y| + atol) = {ratio.max():.3g}")
    assert ratio.max() <= C, f"worst at {np.unravel_index(ratio.argmax(), ratio.shape)}"


# -- reference models against hand-written reaction-rate equations --------------------------
def _dimerisation_rhs(p):
    k1, k2 = float(p["k1"]), float(p["k2"])

    def rhs(t, y):  # 2P -> P2 at k1 P^2 / 2, P2 -> 2P at k2 P2
        r1, r2 = k1 * y[0] ** 2 / 2, k2 * y[1]
        return [-2 * r1 + 2 * r2, r1 - r2]

    return rhs


def _toggle_rhs(p):
    a, K, n, d = (float(p[k]) for k in ("a", "K", "n", "d"))

    def rhs(t, y):  # each represses the other's synthesis a / (1 + (x / K)^n), decays at d
        u, v = y
        return [a / (1 + (v / K) ** n) - d * u, a / (1 + (u / K) ** n) - d * v]

    return rhs


def _schlogl_rhs(p):
    k1, k2, k3, k4 = (float(p[k]) for k in ("k1", "k2", "k3", "k4"))

    def rhs(t, y):  # 2X -> 3X at k1 X^2 / 2!, 3X -> 2X at k2 X^3 / 3!, -> X at k3, X -> at k4 X
        x = y[0]
        return [k1 * x**2 / 2 - k2 * x**3 / 6 + k3 - k4 * x]

    return rhs


ODE_CASES = {
    "dimerisation": (grn.models.dimerisation, _dimerisation_rhs, {"P": 100, "P2": 0}, 50.0),
    "toggle_switch": (grn.models.toggle_switch, _toggle_rhs, {"U": 10, "V": 0}, 20.0),
    # Either side of the unstable state near X = 248: to the low (85) and high (565) states.
    "schlogl_low": (grn.models.schlogl, _schlogl_rhs, {"X": 200}, 10.0),
    "schlogl_high": (grn.models.schlogl, _schlogl_rhs, {"X": 300}, 10.0),
}


# Every case in float64 at tight tolerances; one nonlinear case (Hill powers n = 2.5) also in the
# default float32 configuration (each extra case costs a compilation of ~10 s).
@pytest.mark.parametrize(
    ("case", "x64"),
    [(case, True) for case in ODE_CASES] + [("toggle_switch", False)],
    ids=[f"{case}-float64" for case in ODE_CASES] + ["toggle_switch-float32"],
)
def test_ode_matches_scipy(case, x64):
    build, make_rhs, x0, t_end = ODE_CASES[case]
    net = build()
    ts = np.linspace(0.0, t_end, 41)
    ref = _solve_ref(make_rhs(net.params), [float(x0[s]) for s in net.species], ts)
    if case.startswith("schlogl"):  # the two runs really end in the two stable states
        assert abs(ref[-1, 0] - (85 if case.endswith("low") else 565)) < 10
    rtol = TIGHT if x64 else grn.ODE().rtol
    atol = TIGHT if x64 else grn.ODE().atol
    y, lw = _ode(net, ts, x64, TIGHT if x64 else None, x0=x0)
    _assert_within(y, ref, rtol, atol)
    np.testing.assert_array_equal(lw, 0.0)  # no fate laws: no weight


# -- piecewise-constant schedule ---------------------------------------------------------------
@pytest.mark.parametrize("x64", [True, False], ids=["float64", "float32"])
@pytest.mark.parametrize("t0", [0.0, 3.0])
def test_ode_stepped_schedule(stepped, t0, x64):
    """The rate equation of linear immigration-death is the exact mean: x0 e^{-mu t} + m(t)."""
    ts = t0 + 0.5 * np.arange(25)
    x0 = 5
    mean, _, _ = stepped.law(ts, t0, x0)
    y, _ = _ode(
        stepped.network, ts, x64, TIGHT if x64 else None, x0={"X": x0}, schedule=stepped.schedule
    )
    tol = TIGHT if x64 else grn.ODE().rtol
    _assert_within(y[:, 0], mean, tol, tol)


# -- the fate integral log_weight = int (g - h) dt ---------------------------------------------
def _fate_network():
    """Immigration-death with constant growth g and death hazard h = c X per cell."""
    return grn.Network(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", grn.mass_action("alpha")),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": 20.0, "mu": 0.5, "g": 0.7, "c": 0.01},
        growth=grn.mass_action("g"),
        death=lambda x, p, u: p["c"] * x["X"],
    )


FATE = _fate_network()


def _int_mean(t, alpha, mu):
    """int_0^t E X ds for E X(s) = alpha / mu (1 - e^{-mu s}) (immigration-death from 0)."""
    return alpha / mu * (t - (1 - np.exp(-mu * t)) / mu)


def _int_var(t, alpha, mu):
    """Var int_0^t X ds from X(0) = 0: Cov(X_s, X_u) = E X_s e^{-mu (u - s)} for s <= u, so
    Var = (2 alpha / mu^2) (t - 2 (1 - e^{-mu t}) / mu + t e^{-mu t})."""
    return 2 * alpha / mu**2 * (t - 2 * (1 - np.exp(-mu * t)) / mu + t * np.exp(-mu * t))


def test_ode_log_weight_is_the_fate_integral():
    p = {k: float(v) for k, v in FATE.params.items()}
    ts = np.linspace(0.0, 12.0, 25)
    y, lw = _ode(FATE, ts, True, TIGHT)
    mean_x = p["alpha"] / p["mu"] * (1 - np.exp(-p["mu"] * ts))
    _assert_within(y[:, 0], mean_x, TIGHT, TIGHT)
    exact = p["g"] * ts - p["c"] * _int_mean(ts, p["alpha"], p["mu"])
    _assert_within(lw, exact, TIGHT, TIGHT)


def test_ssa_log_weight_is_the_fate_integral(stats):
    p = {k: float(v) for k, v in FATE.params.items()}
    ts = np.linspace(0.0, 12.0, 25)  # exact in float32
    sol = grn.simulate(FATE, jnp.asarray(ts), key=jax.random.key(12), n_cells=10_000)
    lw = np.asarray(sol.log_weight, np.float64)
    np.testing.assert_array_equal(lw[:, 0], 0.0)
    # E lw = g t - c int E X and Var lw = c^2 Var int X, exactly.
    mean = p["g"] * ts - p["c"] * _int_mean(ts, p["alpha"], p["mu"])
    var = p["c"] ** 2 * _int_var(ts, p["alpha"], p["mu"])
    z = stats.z_mean(lw[:, 1:], mean[1:], var[1:])
    print("z(log_weight) =", np.round(z, 2))
    assert np.all(np.abs(z) < 4.0)

    # With c = 0 the weight is g (t - t0) up to float32 summation: each cell adds one term
    # g dt per step (events and restarts at output times), each term and each addition rounding
    # by at most u = 2^-24 relative, so |error| <= (steps + 1) 2u g t (Higham 2002, ch. 4).
    sol = grn.simulate(
        FATE, jnp.asarray(ts), key=jax.random.key(13), n_cells=1_000, params={"c": 0.0}
    )
    lw = np.asarray(sol.log_weight, np.float64)
    steps = np.asarray(sol.n_events, np.float64)[:, None] + len(ts)
    bound = (steps + 1) * 2.0**-23 * p["g"] * ts
    err = np.abs(lw - p["g"] * ts)
    print(f"log_weight summation error / bound: {np.max(err / np.maximum(bound, 1e-30)):.3g}")
    assert np.all(err <= bound)


# -- ODE(steady_state=True): stop at a steady state, hold it -----------------------------------
def _steady_solver(**kw):
    import diffrax

    return grn.ODE(method=diffrax.Kvaerno3(), rtol=1e-8, atol=1e-10, steady_state=True, **kw)


def test_steady_state_stop_holds_the_equilibrium_and_its_gradient():
    """Immigration-death relaxes to alpha / mu with rate mu. Stopped once |dx/dt| <= atol +
    rtol |x|, the state is within (atol + rtol x) / mu of alpha / mu; the outputs before the
    stop are the ordinary solution, those after hold the steady state (far fewer steps than
    integrating to 1e6), and d x_ss / d mu = -alpha / mu^2 through the stop."""
    net = grn.models.immigration_death()
    ts = np.array([0.0, 1.0, 10.0, 1e3, 1e5, 1e6])
    with jax.enable_x64(True):
        solver = _steady_solver()
        sol = grn.simulate(net, ts, solver=solver)
        y = np.asarray(sol.ys)[0, :, 0]
        exact = 10.0 * (1 - np.exp(-0.1 * ts))
        _assert_within(y[:3], exact[:3], TIGHT, TIGHT)
        bound = (solver.atol + solver.rtol * 10.0) / 0.1
        assert np.all(np.abs(y[3:] - 10.0) <= bound)
        assert y[3] == y[4] == y[5]  # held after the stop

        def final(mu):
            s = grn.simulate(net, ts, solver=solver, params={"alpha": 1.0, "mu": mu})
            return s.ys[0, -1, 0]

        np.testing.assert_allclose(jax.grad(final)(0.1), -1.0 / 0.1**2, rtol=1e-5)


def test_steady_state_stop_waits_for_the_last_schedule_change(stepped):
    """Immigration at level 1 is steady at alpha / mu = 20 long before the level doubles at
    t = 100: the solve must not stop before that change (then 2 alpha / mu = 40)."""
    ts = np.array([0.0, 90.0, 1e4])
    schedule = grn.Schedule(times=[0.0, 100.0], values={"I": [1.0, 2.0]})
    with jax.enable_x64(True):
        sol = grn.simulate(stepped.network, ts, solver=_steady_solver(), schedule=schedule)
        y = np.asarray(sol.ys)[0, :, 0]
    steady = stepped.alpha / stepped.mu
    assert abs(y[1] - steady) < 1e-4
    assert abs(y[2] - 2 * steady) < 1e-4


def test_steady_state_refuses_fate_laws_and_sbml_events():
    with pytest.raises(ValueError, match="growth/death"):
        grn.simulate(FATE, np.array([0.0, 1.0]), solver=_steady_solver())
    from pathlib import Path

    xml = Path(__file__).parent / "data" / "sbml-semantic" / "00965" / "00965-sbml-l3v2.xml"
    net = grn.load_sbml(xml)
    with pytest.raises(ValueError, match="SBML events"):
        grn.simulate(net, np.array([0.0, 1.0]), solver=_steady_solver())
