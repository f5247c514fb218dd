"""Streaming ensembles (``reduce=``): the same statistics as the stored path, without the cells."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn._simulate import TRACE_COUNT

TS = jnp.linspace(0.0, 6.0, 7)
EDGES = jnp.linspace(0.0, 40.0, 9)


def _fate_network():
    """Birth-death with a state-dependent growth and death, so cell weights differ."""
    return grn.Network(
        ["X", "Y"],
        [
            grn.Reaction("-> X", grn.mass_action("alpha")),
            grn.Reaction("X ->", grn.mass_action("mu")),
            grn.Reaction("X -> X + Y", grn.mass_action("beta")),
            grn.Reaction("Y ->", grn.mass_action("mu")),
        ],
        params={"alpha": 20.0, "mu": 1.0, "beta": 0.5},
        x0={"X": 5, "Y": 0},
        growth=lambda x, p, u: 0.02 * x["X"],
        death=grn.mass_action(0.1),
    )


def _close(a, b, scale):
    """Equal up to float32 rounding of quantities of size ``scale``."""
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6 * scale)


def _assert_same(stored, streamed, edges=EDGES):
    scale = float(jnp.max(jnp.abs(stored.mean)))
    _close(streamed.mean, stored.mean, scale)
    _close(streamed.cov, stored.cov, scale**2)
    _close(streamed.std, stored.std, scale)
    for got, want in zip(streamed.moments(weighted=True), stored.moments(weighted=True)):
        _close(got, want, scale ** (got.ndim - 1))
    _close(streamed.viable_cells(3.0), stored.viable_cells(3.0), 3.0)
    assert streamed.n_cells == stored.n_cells == int(streamed.count)
    np.testing.assert_array_equal(
        streamed.result_counts, np.bincount(stored.result, minlength=len(grn.RESULTS))
    )
    assert float(streamed.n_events) == float(jnp.sum(stored.n_events))
    for name, hist in streamed.histograms.items():
        x = np.asarray(stored[name])
        want = [np.histogram(x[:, t], np.asarray(edges))[0] for t in range(x.shape[1])]
        np.testing.assert_array_equal(hist.counts, want)


@pytest.mark.parametrize("solver", [grn.SSA(), grn.CLE(dt=0.02)], ids=["SSA", "CLE"])
def test_streamed_statistics_equal_the_stored_ones(solver):
    net = _fate_network()
    args = dict(ts=TS, key=jax.random.key(5), solver=solver, n_cells=203)
    stored = grn.simulate(net, **args)
    assert float(jnp.std(stored.log_weight[:, -1])) > 0.05  # weights really differ
    reduce = grn.Moments(histograms={"X": EDGES, "Y": EDGES})
    for batch_size, progress in [(37, False), (50, True)]:
        streamed = grn.simulate(
            net, **args, batch_size=batch_size, progress=progress, reduce=reduce
        )
        assert isinstance(streamed, grn.EnsembleMoments)
        _assert_same(stored, streamed)


def test_moment_solver_covariances_stream_too():
    """LNA per-parameter-set covariances: the mixture's moments, as `Solution.moments`."""
    net = _fate_network()
    alpha = jnp.linspace(5.0, 30.0, 11)
    args = dict(ts=TS, solver=grn.LNA(), params={"alpha": alpha})
    stored = grn.simulate(net, **args)
    streamed = grn.simulate(net, **args, batch_size=4, reduce="moments")
    assert streamed.histograms == {}
    assert stored.cov_within is not None and streamed.cov_within is not None
    _assert_same(stored, streamed)


def test_no_recompilation_for_new_values():
    net = _fate_network()
    args = dict(ts=TS, solver=grn.CLE(dt=0.05), n_cells=40, batch_size=15)
    runs = [
        (jax.random.key(0), {"alpha": 10.0}, EDGES),
        (jax.random.key(1), {"alpha": 30.0, "beta": 0.1}, EDGES * 2.0),
        (jax.random.key(2), {"alpha": jnp.linspace(1.0, 9.0, 40)}, EDGES + 1.0),
    ]
    means, before = [], None
    for key, params, edges in runs[:1] + runs:
        out = grn.simulate(net, key=key, params=params, reduce=grn.Moments({"X": edges}), **args)
        means.append(out.mean)
        if before is None:
            before = TRACE_COUNT["ensemble"]
            # per-cell alpha changes the pytree structure: the third run traces once more
    assert TRACE_COUNT["ensemble"] == before + 1
    assert not np.array_equal(means[1], means[2])


def test_failed_cells_are_counted_and_left_out():
    # Immigration at rate 0.01 or 20 per cell: by t = 6 the first cells see Poisson(0.06) births
    # (at most twice as many events), the others Poisson(120), so a budget of 10 events splits
    # them for any key (P(5 or more births) ~ 6e-9).
    net = grn.models.immigration_death()
    alpha = jnp.where(jnp.arange(9) % 3 == 0, 0.01, 20.0)
    solver = grn.SSA(max_events=10)
    args = dict(ts=TS, key=jax.random.key(0), n_cells=9, batch_size=4, solver=solver)
    args["params"] = {"alpha": alpha}
    with pytest.raises(Exception, match="maximum number of events"):
        grn.simulate(net, reduce="moments", **args)
    # Cells that succeed are the statistics; those that did not are only counted.
    stored = grn.simulate(net, throw=False, **args)
    ok = np.asarray(stored.result) == grn.RESULTS.successful
    np.testing.assert_array_equal(ok, np.arange(9) % 3 == 0)
    out = grn.simulate(net, throw=False, reduce="moments", **args)
    assert int(out.result_counts[grn.RESULTS.max_events_reached]) == 9 - ok.sum()
    assert out.n_cells == 9
    assert int(out.count) == ok.sum()
    _close(out.mean, np.asarray(stored.ys)[ok].mean(axis=0), 10.0)


@pytest.mark.parametrize(
    "reduce, error, match",
    [
        ("mean", ValueError, 'reduce must be None, "moments"'),
        (3, TypeError, "reduce must be None"),
        (grn.Moments({"Q": [0.0, 1.0]}), KeyError, "unknown species 'Q'"),
    ],
)
def test_reduce_validation(reduce, error, match):
    with pytest.raises(error, match=match):
        grn.simulate(grn.models.telegraph(), TS, jax.random.key(0), n_cells=2, reduce=reduce)


@pytest.mark.parametrize(
    "edges, match", [([1.0], "at least 2 edges"), ([0.0, 2.0, 1.0], "increasing")]
)
def test_histogram_edges_are_checked(edges, match):
    with pytest.raises(ValueError, match=f"edges of 'M'.*{match}"):
        grn.Moments({"M": edges})
