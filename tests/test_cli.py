"""`grn simulate` end to end, in process: files, their mutual consistency, and option errors."""

import contextlib
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grn
from grn_cli.main import main
from grn_cli.simulate import SOLVERS

N_CELLS, N_POINTS, T_END = 50, 11, 10.0


def _ssa_argv(out):
    """The shared SSA run's options (the same options reuse its compiled program)."""
    return ["simulate", "--model", "telegraph", "--cells", str(N_CELLS), "--points",
            str(N_POINTS), "--t-end", str(T_END), "--seed", "3", "--param", "nu=5",
            "--param", "k_on=0.5", "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def bare_import():
    """``import grn`` in a fresh interpreter, started first so it overlaps the compiles."""
    code = "import sys, grn, grn_cli.main; assert 'matplotlib' not in sys.modules"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stderr.close()


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=np.float64)


@pytest.fixture(scope="module")
def ssa_run(tmp_path_factory):
    """One small SSA run of the telegraph model shared by the tests that read its files."""
    out = tmp_path_factory.mktemp("ssa") / "nested" / "out"
    code, stdout, stderr = _run(_ssa_argv(out))
    return out, code, stdout, stderr


def test_ssa_writes_all_files(ssa_run):
    out, code, stdout, stderr = ssa_run
    assert code == 0, stderr
    for name in ("simulation.npz", "summary.csv", "trajectories.png", "run.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert str(out) in stdout
    assert "cell" in stderr  # the progress bar
    assert (out / "trajectories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ssa_npz_and_csv_agree(ssa_run):
    out = ssa_run[0]
    data = np.load(out / "simulation.npz")
    assert set(data.files) == {"ts", "ys", "log_weight", "n_events", "result", "species"}
    assert tuple(data["species"]) == ("G_off", "G_on", "M")
    ys = data["ys"]
    assert ys.shape == (N_CELLS, N_POINTS, 3)
    assert data["log_weight"].shape == (N_CELLS, N_POINTS)
    assert data["n_events"].shape == data["result"].shape == (N_CELLS,)
    assert np.all(data["result"] == grn.RESULTS.successful)
    assert np.all(data["n_events"] > 0)
    np.testing.assert_allclose(data["ts"], np.linspace(0.0, T_END, N_POINTS), rtol=1e-6)
    np.testing.assert_array_equal(ys[:, 0], np.tile([1.0, 0.0, 0.0], (N_CELLS, 1)))
    np.testing.assert_array_equal(ys, np.round(ys))  # counts
    np.testing.assert_array_equal(ys[..., 0] + ys[..., 1], 1.0)  # one gene copy

    header, table = _read_csv(out / "summary.csv")
    assert header == ["time", "G_off_mean", "G_off_sd", "G_on_mean", "G_on_sd", "M_mean", "M_sd"]
    assert table.shape == (N_POINTS, 7)
    np.testing.assert_allclose(table[:, 0], data["ts"], rtol=1e-6)
    ys64 = ys.astype(np.float64)
    np.testing.assert_allclose(table[:, 1::2], ys64.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(table[:, 2::2], ys64.std(axis=0, ddof=1), rtol=1e-12, atol=1e-12)
    assert table[-1, 5] > 0 and table[-1, 6] > 0


def test_ssa_run_json(ssa_run):
    out = ssa_run[0]
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["model"] == "telegraph"
    assert run["options"]["solver"] == "ssa"
    assert run["options"]["cells"] == N_CELLS and run["options"]["points"] == N_POINTS
    assert run["options"]["param"] == {"nu": 5.0, "k_on": 0.5}
    assert run["params"] == {"k_on": 0.5, "k_off": 1.0, "nu": 5.0, "delta": 1.0}
    assert run["versions"]["grn"] == grn.__version__
    assert run["versions"]["jax"] == jax.__version__
    assert run["device"]["backend"] == jax.default_backend()
    assert run["wall_time_s"]["total"] >= run["wall_time_s"]["simulate"] > 0
    assert run["result_counts"] == {"successful": N_CELLS} and run["failed_cells"] == 0
    data = np.load(out / "simulation.npz")
    assert run["total_events"] == int(data["n_events"].sum())


def test_same_seed_same_result(ssa_run, tmp_path):
    """Re-running with the same options reproduces the trajectories (and reuses the compile)."""
    out = ssa_run[0]
    argv = _ssa_argv(tmp_path)
    assert _run(argv)[0] == 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "simulation.npz")["ys"], np.load(out / "simulation.npz")["ys"]
    )


def test_failed_cells_exit_1(ssa_run, tmp_path, monkeypatch):
    """Cells that fail are reported, left out of the summary, and give exit status 1."""
    real = grn.simulate

    def one_failure(*args, **kwargs):
        assert kwargs["throw"] is False
        sol = real(*args, **kwargs)
        result = sol.result.at[0].set(grn.RESULTS.max_events_reached)
        ys = sol.ys.at[0].set(jnp.nan)
        return eqx.tree_at(lambda s: (s.result, s.ys), sol, (result, ys))

    monkeypatch.setattr(grn, "simulate", one_failure)
    argv = _ssa_argv(tmp_path)
    code, _, err = _run(argv)
    assert code == 1
    assert f"1 of {N_CELLS} cells failed" in err and "maximum number of events" in err
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["failed_cells"] == 1 and run["result_counts"]["max_events_reached"] == 1
    _, table = _read_csv(tmp_path / "summary.csv")
    ys = np.load(ssa_run[0] / "simulation.npz")["ys"][1:].astype(np.float64)
    np.testing.assert_allclose(table[:, 1::2], ys.mean(axis=0), rtol=1e-12, atol=1e-12)


def test_ode_float64(tmp_path):
    """ODE: one trajectory matching immigration-death's exact mean; --float64 stays local."""
    argv = ["simulate", "--model", "immigration_death", "--solver", "ode", "--points",
            str(N_POINTS), "--t-end", str(T_END), "--float64", "--out", str(tmp_path)]  # fmt: skip
    code, _, err = _run(argv)
    assert code == 0, err
    assert not jax.config.jax_enable_x64
    data = np.load(tmp_path / "simulation.npz")
    assert data["ys"].shape == (1, N_POINTS, 1) and data["ys"].dtype == np.float64
    header, table = _read_csv(tmp_path / "summary.csv")
    assert header == ["time", "X_mean", "X_sd"]
    exact = 1.0 / 0.1 * (1.0 - np.exp(-0.1 * table[:, 0]))  # alpha / mu (1 - exp(-mu t))
    np.testing.assert_allclose(table[:, 1], exact, rtol=1e-3)  # global error >> rtol=1e-6
    np.testing.assert_allclose(table[:, 1], data["ys"][0, :, 0], rtol=1e-12)
    np.testing.assert_array_equal(table[:, 2], 0.0)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["dtype"] == "float64" and run["trajectories"] == 1
    assert (tmp_path / "trajectories.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, culprit",
    [
        (["--model", "nope"], "nope"),
        (["--cells", "0"], "--cells"),
        (["--cells", "-5"], "--cells"),
        (["--cells", "many"], "many"),
        (["--points", "0"], "--points"),
        (["--t-end", "0"], "--t-end"),
        (["--t-end", "-2"], "--t-end"),
        (["--t-end", "inf"], "--t-end"),
        (["--solver", "magic"], "magic"),
        (["--param", "nu"], "'nu'"),
        (["--param", "=3"], "'=3'"),
        (["--param", "nu=fast"], "'fast'"),
        (["--param", "bogus=1"], "'bogus'"),
        (["--param", "nu=-1"], "'nu'"),
        (["--param", "nu=1", "--param", "nu=2"], "'nu'"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_options(extra, culprit, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["simulate", "--cells", "2", "--points", "3", *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and culprit in err
    assert "Traceback" not in err
    assert not out.exists()


def test_unknown_model_lists_valid_ones(capsys):
    assert main(["simulate", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in grn.models.BUILTIN)


def test_grn_errors_are_one_line(capsys, tmp_path):
    """Errors raised by grn itself are caught and printed as 'grn: error: ...'."""
    assert main(["simulate", "--param", "delta=nan", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grn: error:") and "'delta'" in err and "\n" not in err


def test_internal_errors_keep_their_traceback(monkeypatch, tmp_path):
    """Only errors raised by grn's own checks become 'grn: error:'; others propagate."""

    def broken(*args, **kwargs):
        raise TypeError("not a user error")

    monkeypatch.setattr(grn, "simulate", broken)
    with pytest.raises(TypeError, match="not a user error"):
        main(["simulate", "--cells", "2", "--out", str(tmp_path)])


def test_help_version_and_no_command(capsys):
    assert main(["--version"]) == 0
    assert grn.__version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "simulate" in capsys.readouterr().out
    assert main(["simulate", "--help"]) == 0
    help_text = capsys.readouterr().out
    options = "model solver cells t-end points dt seed param batch-size out float64".split()
    assert all(f"--{opt}" in help_text for opt in options)
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_solver_names_resolve():
    from grn_cli.main import build_parser
    from grn_cli.simulate import make_solver

    for name in SOLVERS:
        args = build_parser().parse_args(["simulate", "--solver", name, "--dt", "0.05"])
        solver = make_solver(args)
        assert isinstance(solver, grn.AbstractSolver)
        assert getattr(solver, "dt", 0.05) == 0.05


def test_import_grn_does_not_import_matplotlib(bare_import):
    assert bare_import.wait(timeout=120) == 0, bare_import.stderr.read()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sbml_suite_command_writes_its_tables(tmp_path, jobs):
    """One shipped, passing case in this process; with ``--jobs 2`` the two lowest-numbered
    ones in two worker processes, listed in case order."""
    pytest.importorskip("libsbml")
    suite = Path(__file__).parent / "data" / "sbml-semantic"
    shipped = sorted(p.name for p in suite.iterdir() if p.name.isdigit())
    cases = shipped[-1:] if jobs == 1 else shipped[:2]
    out = tmp_path / "suite"
    argv = ["sbml-suite", "--cases", *cases, "--suite", str(suite), "--out", str(out)]
    assert main([*argv, "--jobs", str(jobs)]) == 0
    rows = list(csv.DictReader((out / "sbml_semantic.csv").read_text().splitlines()))
    assert [(r["case"], r["status"]) for r in rows] == [(c, "pass") for c in cases]
    assert f"passed **{len(cases)}**" in (out / "sbml_semantic.md").read_text()
    assert json.loads((out / "run.json").read_text())["pass"] == len(cases)
    assert not jax.config.jax_enable_x64  # float64 only inside the command
