"""`grn simulate --model melanoma`: protocol options, their defaults and errors, and the observables
files (one short CLE run, 8 cells over 2 days: about 30 s on 2 cores; the rest never simulates)."""

import contextlib
import csv
import io
import json

import numpy as np
import pytest

import grn
from grn.models._melanoma import KM1_LOG_SD, PARAMS, X0
from grn_cli.main import main

N_CELLS = 8


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


class _Captured(Exception):
    """Raised by the spy instead of simulating (not a user error: main lets it through)."""


@pytest.fixture
def captured(monkeypatch):
    """What `grn simulate` passes to `grn.simulate`, without simulating."""
    calls = {}

    def spy(network, ts, **kwargs):
        calls.update(kwargs, ts=np.asarray(ts), network=network)
        raise _Captured

    monkeypatch.setattr(grn, "simulate", spy)

    def run(*options):
        with pytest.raises(_Captured):
            main(["simulate", "--model", "melanoma", *options, "--out", "unused"])
        return calls

    return run


def levels(schedule, name, t):
    i = np.searchsorted(schedule.times, t, side="right") - 1
    return 0.0 if i < 0 or name not in schedule.values else float(schedule.values[name][i])


def test_melanoma_defaults(captured):
    call = captured()
    np.testing.assert_array_equal(call["ts"], 24.0 * np.arange(65))  # daily to day 64
    schedule = call["schedule"]
    assert schedule.times.tolist() == [0.0, 696.0]
    assert schedule.values["BRAFi"].tolist() == [0.95, 0.0]
    # the network draws its own per-cell kM1 (LogNormal, tests/test_heterogeneity.py)
    assert call["params"] is None and call["n_cells"] == 1000
    # a given kM1 sets the median and keeps the spread; --no-heterogeneity: one value
    dist = captured("--param", "kM1=0.05")["params"]["kM1"]
    assert isinstance(dist, grn.LogNormal)
    assert (float(dist.median), float(dist.sigma)) == (0.05, KM1_LOG_SD)
    assert captured("--no-heterogeneity")["params"] == {"kM1": PARAMS["kM1"]}


def test_protocol_options_reach_the_simulation(captured):
    call = captured("--on-days", "3", "--off-days", "2", "--drug-level", "0.5", "--dose",
                    "NFKBi=0.8@0:48", "--dose", "BH3i=1@80", "--no-heterogeneity",
                    "--param", "kM1=0.05")  # fmt: skip
    np.testing.assert_array_equal(call["ts"], 24.0 * np.arange(6))
    s = call["schedule"]
    assert s.times.tolist() == [0.0, 48.0, 72.0, 80.0]
    for t, expected in [(0, (0.5, 0.8, 0)), (50, (0.5, 0, 0)), (72, (0, 0, 0)), (90, (0, 0, 1))]:
        assert tuple(levels(s, n, t) for n in ("BRAFi", "NFKBi", "BH3i")) == expected
    assert call["params"] == {"kM1": 0.05}  # one kM1 for every cell
    # --t-end without --points: still about one output a day
    call = captured("--on-days", "3", "--off-days", "0", "--t-end", "48")
    np.testing.assert_array_equal(call["ts"], [0.0, 24.0, 48.0])
    assert call["schedule"].times.tolist() == [0.0]  # never removed
    # no drug, one intervention
    call = captured("--protocol", "none", "--dose", "EPIi=0.8@24", "--t-end", "96")
    assert call["ts"].shape == (101,)
    assert (
        levels(call["schedule"], "BRAFi", 50) == 0 and levels(call["schedule"], "EPIi", 50) == 0.8
    )
    # deterministic solvers: one trajectory, no per-cell kM1
    assert "kM1" not in (captured("--solver", "ode")["params"] or {})


@pytest.mark.parametrize(
    "options, message",
    [
        (["--dose", "NAC"], "INPUT=LEVEL@START_H[:DURATION_H]"),
        (["--dose", "NAC=1@"], "INPUT=LEVEL@START_H[:DURATION_H]"),
        (["--dose", "NAC=1@0:"], "INPUT=LEVEL@START_H[:DURATION_H]"),
        (["--dose", "NAC=x@0"], "LEVEL must be a number, got 'x'"),
        (["--dose", "NAC=1@0:y"], "DURATION_H must be a number, got 'y'"),
        (["--dose", "FOO=1@0"], "--dose FOO=1@0: intervention on unknown input 'FOO'"),
        (["--dose", "BRAFi=1@0"], "protocol sets BRAFi"),
        (["--dose", "NAC=2@0"], "--dose NAC=2@0: intervention 'NAC': level must be in [0, 1]"),
        (["--dose", "NAC=1@-4"], "--dose NAC=1@-4: intervention 'NAC': start_h"),
        (["--dose", "NAC=1@0:-3"], "--dose NAC=1@0:-3: intervention 'NAC': duration_h"),
        (["--dose", "NAC=1@0", "--dose", "NAC=0.5@9"], "'NAC' is dosed more than once"),
        (["--dose", "NAC=1@5000"], "--dose NAC=1@5000: starts at 5000 h, not before --t-end"),
        (["--drug-level", "1.5"], "--drug-level"),
        (["--on-days", "0"], "--on-days"),
        (["--off-days", "-1"], "--off-days"),
        (["--protocol", "none", "--on-days", "3"], "--on-days needs --protocol braf"),
        (["--protocol", "sometimes"], "--protocol"),
        (["--model", "telegraph", "--dose", "NAC=1@0"], "--dose applies to --model melanoma"),
        (["--model", "telegraph", "--no-heterogeneity"], "--no-heterogeneity applies to"),
        (["--model", "birth_death", "--protocol", "braf"], "--protocol braf applies to"),
    ],
)
def test_option_errors(tmp_path, options, message):
    argv = ["simulate", "--model", "melanoma", "--cells", "2", *options, "--out", str(tmp_path)]
    code, out, err = _run(argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_melanoma_run_writes_observables(tmp_path):
    out = tmp_path / "run"
    argv = ["simulate", "--model", "melanoma", "--solver", "cle", "--dt", "0.02", "--cells",
            str(N_CELLS), "--on-days", "1", "--off-days", "1", "--dose", "NAC=1@6:6", "--seed",
            "1", "--out", str(out)]  # fmt: skip
    code, stdout, stderr = _run(argv)
    assert code == 0, stderr
    run = json.loads((out / "run.json").read_text())
    assert list(run["files"]) == [
        "simulation", "summary", "plot", "observables", "observables_plot", "run"
    ]  # fmt: skip
    assert all((out / name).is_file() for name in run["files"].values())
    assert (out / "observables.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    protocol = run["protocol"]
    assert protocol["protocol"] == "braf" and protocol["drug_level"] == 0.95
    assert protocol["doses"] == {"NAC": {"level": 1.0, "start_h": 6.0, "duration_h": 6.0}}
    assert protocol["schedule"]["times_h"] == [0.0, 6.0, 12.0, 24.0]
    assert protocol["heterogeneity"] == {
        "kM1": {"distribution": "LogNormal", "median": PARAMS["kM1"], "sigma": KM1_LOG_SD}
    }
    assert protocol["sox10_low_threshold"] == X0["S"] / 2
    assert run["options"]["t_end"] == 48.0 and run["options"]["points"] == 3

    # observables.csv recomputed from simulation.npz
    with open(out / "observables.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, table = rows[0], np.array(rows[1:], dtype=np.float64)
    col = {name: table[:, i] for i, name in enumerate(header)}
    sim = np.load(out / "simulation.npz")
    species = list(sim["species"])
    ys = sim["ys"].astype(np.float64)
    assert ys.shape == (N_CELLS, 3, 13) and np.all(sim["result"] == 0)
    s = ys[..., species.index("S")]
    b = np.maximum(ys[..., species.index("B")], 0.0)  # CLE counts may dip below 0; floored
    np.testing.assert_array_equal(col["day"], [0.0, 1.0, 2.0])
    low = (s < X0["S"] / 2).mean(0)
    np.testing.assert_allclose(col["sox10_low_fraction"], low)
    np.testing.assert_allclose(col["sox10_low_se"], np.sqrt(low * (1 - low) / N_CELLS), atol=1e-7)
    np.testing.assert_allclose(col["W1"], ys[..., species.index("W1")].mean(0), rtol=1e-5)
    np.testing.assert_allclose(col["W2"], ys[..., species.index("W2")].mean(0), rtol=1e-5)
    np.testing.assert_allclose(col["priming"], (b / (b + 20.0)).mean(0), rtol=1e-5)
    np.testing.assert_allclose(col["viable_cells"], np.exp(sim["log_weight"]).mean(0), rtol=1e-5)
    # every cell starts from its own pre-equilibrated untreated state (the network's default)
    assert np.all(np.isfinite(col["S_bimodality"])) and np.ptp(s[:, 0]) > 0
    # on drug BIM rises (priming up), after removal it falls back
    assert col["priming"][1] > 1.5 * col["priming"][0] and col["priming"][2] < col["priming"][1]
