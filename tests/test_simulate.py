"""The simulate entry point: API contract, result codes, recompilation, chunking and devices."""

import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn._simulate import TRACE_COUNT

TS = jnp.linspace(0.0, 10.0, 11)


def test_api_contract_shapes():
    net = grn.models.telegraph()
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), solver=grn.SSA(), n_cells=64)
    assert sol.ys.shape == (64, 11, 3) and sol.species == ("G_off", "G_on", "M")
    assert sol["M"].shape == (64, 11)
    assert sol.mean.shape == (11, 3) and sol.cov.shape == (11, 3, 3)
    assert sol.log_weight.shape == (64, 11) and sol.n_events.shape == (64,)
    assert sol.result.shape == (64,) and bool(jnp.all(sol.result == grn.RESULTS.successful))
    # One gene copy: G_off + G_on is conserved in every cell at every time.
    np.testing.assert_array_equal(sol["G_off"] + sol["G_on"], 1.0)
    with pytest.raises(KeyError, match="no species 'Q'"):
        sol["Q"]
    ode = grn.simulate(net, ts=TS, solver=grn.ODE())
    assert ode.ys.shape == (1, 11, 3)
    np.testing.assert_allclose(ode.mean, ode.ys[0])
    np.testing.assert_array_equal(ode.cov, 0.0)


def test_no_recompilation_for_new_values():
    net = grn.models.immigration_death().__class__(
        species=["X"],
        reactions=[
            grn.Reaction("-> X", lambda x, p, u: p["alpha"] * u["I"]),
            grn.Reaction("X ->", grn.mass_action("mu")),
        ],
        params={"alpha": 5.0, "mu": 0.5},
        x0={"X": 0},
        inputs=["I"],
    )
    for solver in (grn.SSA(), grn.ODE()):
        runs = [
            dict(
                key=jax.random.key(0),
                params=None,
                x0=None,
                schedule=grn.Schedule([0.0, 4.0], {"I": [1.0, 0.5]}),
            ),
            dict(
                key=jax.random.key(1),
                params={"alpha": 7.0, "mu": 0.25},
                x0={"X": 3},
                schedule=grn.Schedule([0.0, 2.5], {"I": [2.0, 0.0]}),
            ),
            dict(
                key=jax.random.key(2),
                params={"alpha": 1.0},
                x0={"X": 9},
                schedule=grn.Schedule([1.0, 7.5], {"I": [0.3, 1.0]}),
            ),
        ]
        before = None
        outs = []
        for run in runs:
            sol = grn.simulate(net, ts=TS, solver=solver, n_cells=16, **run)
            outs.append(sol.ys)
            if before is None:
                before = TRACE_COUNT["ensemble"]
        assert TRACE_COUNT["ensemble"] == before, f"{type(solver).__name__} recompiled"
        assert not np.array_equal(outs[0], outs[1])  # the new values were used


def test_batches_and_progress_give_identical_results():
    net = grn.models.toggle_switch()
    common = dict(ts=TS, key=jax.random.key(3), n_cells=50)
    whole = grn.simulate(net, **common)
    batched = grn.simulate(net, batch_size=7, **common)
    shown = grn.simulate(net, batch_size=16, progress=True, **common)
    np.testing.assert_array_equal(whole.ys, batched.ys)
    np.testing.assert_array_equal(whole.ys, shown.ys)
    np.testing.assert_array_equal(whole.n_events, shown.n_events)


def test_per_cell_parameters():
    net = grn.models.immigration_death()
    alpha = jnp.where(jnp.arange(40) % 2 == 0, 0.0, 50.0)
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), params={"alpha": alpha})
    assert sol.n_cells == 40
    assert bool(jnp.all(sol["X"][0::2] == 0)) and bool(jnp.all(sol["X"][1::2, -1] > 0))
    x0 = jnp.arange(40.0)
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), x0={"X": x0}, params={"alpha": 0.0})
    np.testing.assert_array_equal(sol["X"][:, 0], x0)
    ode = grn.simulate(net, ts=TS, solver=grn.ODE(), params={"alpha": jnp.array([1.0, 2.0])})
    np.testing.assert_allclose(ode["X"][1], 2 * ode["X"][0], rtol=1e-4)
    with pytest.raises(ValueError, match="n_cells=3 but per-cell values have 40"):
        grn.simulate(net, ts=TS, key=jax.random.key(0), n_cells=3, params={"alpha": alpha})


def test_log_weight_is_exact_for_constant_net_growth():
    net = grn.Network(
        ["X"],
        [grn.Reaction("-> X", grn.mass_action("k"))],
        params={"k": 3.0},
        growth=grn.mass_action(0.2),
        death=lambda x, p, u: 0.05 * (x["X"] > -1),
    )
    for solver in (grn.SSA(), grn.ODE()):
        sol = grn.simulate(net, ts=TS + 2.0, key=jax.random.key(0), n_cells=8, solver=solver)
        np.testing.assert_allclose(
            sol.log_weight, jnp.broadcast_to(0.15 * TS, (sol.n_cells, 11)), rtol=1e-5, atol=1e-5
        )


def test_max_events_raises_or_reports():
    # Immigration at rate 10 fires Poisson(100) times by t = 10: P(fewer than 10) ~ 1e-30.
    net = grn.models.immigration_death()
    run = dict(ts=TS, key=jax.random.key(0), n_cells=4, params={"alpha": 10.0})
    with pytest.raises(Exception, match="maximum number of events"):
        grn.simulate(net, solver=grn.SSA(max_events=10), **run)
    sol = grn.simulate(net, solver=grn.SSA(max_events=10), throw=False, **run)
    assert bool(jnp.all(sol.result == grn.RESULTS.max_events_reached))
    assert bool(jnp.all(sol.n_events == 10))
    # Never a silently truncated trajectory: times after the budget ran out are NaN.
    assert bool(jnp.all(jnp.isnan(sol.ys[:, -1]))) and not bool(jnp.any(jnp.isnan(sol.ys[:, 0])))


@pytest.mark.parametrize(
    "reactions, x0, code",
    [
        ([grn.Reaction("-> 2 X", lambda x, p, u: 5.0 - x["X"])], 0, grn.RESULTS.invalid_propensity),
        ([grn.Reaction("X ->", lambda x, p, u: 1.0)], 0, grn.RESULTS.negative_population),
        ([grn.Reaction("-> X", grn.mass_action(1e6))], 2**24 - 20, grn.RESULTS.count_overflow),
    ],
)
def test_runtime_trouble_sets_result_codes(reactions, x0, code):
    net = grn.Network(["X"], reactions, x0={"X": x0})
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), n_cells=3, throw=False)
    assert bool(jnp.all(sol.result == code))
    with pytest.raises(Exception, match=re.escape(grn.RESULTS.message(code)[:30])):
        grn.simulate(net, ts=TS, key=jax.random.key(0), n_cells=3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(ts=jnp.array([0.0, 2.0, 1.0])), ValueError, r"ts\[1\] = 2.0 is followed by ts\[2\]"),
        (dict(ts=jnp.array([0.0, 1.0, 1.0])), ValueError, "strictly increasing"),
        (dict(n_cells=0), ValueError, "n_cells must be a positive integer"),
        (dict(params={"bogus": 1.0}), KeyError, "unknown parameter 'bogus'"),
        (dict(params={"k_on": -1.0}), ValueError, "parameter 'k_on' must be finite and non-neg"),
        (dict(x0={"M": 1.5}), ValueError, "initial count of 'M' must be an integer"),
        (dict(x0={"Q": 1}), KeyError, "unknown species 'Q'"),
        (dict(key=None), ValueError, "needs a PRNG key"),
        (dict(schedule=grn.Schedule([0.0], {"drug": [1.0]})), ValueError, "unknown input 'drug'"),
        (dict(solver="ssa"), TypeError, "solver must be a grn solver"),
        (dict(batch_size=0), ValueError, "batch_size"),
    ],
)
def test_simulate_validation(kwargs, error, match):
    args = dict(ts=TS, key=jax.random.key(0), n_cells=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        grn.simulate(grn.models.telegraph(), **args)


def test_solver_settings_are_validated():
    with pytest.raises(ValueError, match="max_events"):
        grn.SSA(max_events=0)
    with pytest.raises(ValueError, match="tolerances"):
        grn.ODE(rtol=0.0)


_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp, numpy as np, grn
    net = grn.models.toggle_switch()
    sol = grn.simulate(net, ts=jnp.linspace(0.0, 5.0, 6), key=jax.random.key(7), n_cells=37,
                       batch_size=5)
    np.save(sys.argv[1], np.asarray(sol.ys))
    st = grn.simulate(net, ts=jnp.linspace(0.0, 5.0, 6), key=jax.random.key(7), n_cells=37,
                      batch_size=5, reduce="moments")
    np.save(sys.argv[1] + ".moments.npy", np.stack([st.mean, st.std]))
    print(json.dumps({"devices": jax.local_device_count(), "dtype": str(sol.ys.dtype)}))
    """
)


@pytest.mark.parametrize("n_devices", [1, 4])
def test_same_key_same_result_on_any_device_count(tmp_path, n_devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}")
    out = tmp_path / "ys.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _DEVICE_SCRIPT, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["devices"] == n_devices
    here = grn.simulate(
        grn.models.toggle_switch(), ts=jnp.linspace(0.0, 5.0, 6), key=jax.random.key(7), n_cells=37
    )
    np.testing.assert_array_equal(np.load(out), here.ys)
    # Streamed statistics: the same cells, merged per device, so equal up to float rounding.
    streamed = np.load(str(out) + ".moments.npy")
    np.testing.assert_allclose(streamed, np.stack([here.mean, here.std]), rtol=1e-5, atol=1e-4)


def test_float64_mode(tmp_path):
    env = dict(os.environ, JAX_ENABLE_X64="1")
    proc = subprocess.run(
        [sys.executable, "-c", _DEVICE_SCRIPT, str(tmp_path / "ys.npy")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1])["dtype"] == "float64"


def test_events_assign_parameters_and_refuse_unsupported_solvers():
    base = grn.models.immigration_death()
    stop = grn.Event(at=4.5, assign={"alpha": 0.0, "X": 0})
    net = grn.Network(base.species, base.reactions, {"alpha": 20.0, "mu": 0.1}, events=[stop])
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), n_cells=32)
    late = np.asarray(TS) >= 4.5
    assert bool(jnp.all(sol["X"][:, ~late][:, 1:] > 0))  # immigration before the event
    np.testing.assert_array_equal(sol["X"][:, late], 0.0)  # none after it: alpha was set to 0
    # A state event that doubles the death rate from the state each time X reaches 10.
    grow = grn.Event(when=lambda t, x, p: x["X"] >= 10, assign={"mu": lambda x, p, u: 2 * p["mu"]})
    net = grn.Network(base.species, base.reactions, {"alpha": 20.0, "mu": 0.1}, events=[grow])
    sol = grn.simulate(net, ts=TS, key=jax.random.key(0), n_cells=8)
    assert bool(jnp.all(sol.result == grn.RESULTS.successful))
    for solver in (grn.ODE(), grn.LNA()):
        with pytest.raises(ValueError, match="cannot honour the network's events"):
            grn.simulate(net, ts=TS, key=jax.random.key(0), solver=solver)
