"""``grn interventions CONFIG.toml --out DIR``: bad configurations are named, and a small melanoma
run writes every output file with a consistent table."""

import csv
import json
import re

import pytest

from grn_cli.main import main

GOOD = """
[model]
builtin = "melanoma"
[protocol]
BRAFi = [[0.0, 0.95]]
[scan]
targets = ["NAC", "EPIi"]
levels = { NAC = 1.0, EPIi = 0.8 }
start_h = [0, 48]
duration_h = [240]
pairs = [["NAC", "EPIi"]]
[outcome]
kind = "persister_burden"
start_day = 0
day = 5
[sensitivity]
bins_h = [0, 48, 120]
n_cells = 4
[optimise]
inputs = ["NAC"]
budget_h = 24
bins_h = [0, 48, 120]
steps = 1
n_cells = 4
[run]
solver = "cle"
dt = 0.02
n_cells = 16
seed = 0
chunk = 3
"""


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[scan]", "[scann]", r"scann: unknown section"),
        ("duration_h = [240]", "duration_h = [240]\nstarts = [1]", r"scan\.starts: unknown key"),
        ("EPIi = 0.8 }", "EPIi = 1.8 }", r"scan\.levels\.EPIi: levels must be in \[0, 1\]"),
        ("duration_h = [240]", "duration_h = [-5]", r"scan\.duration_h: must be positive"),
        ('["NAC", "EPIi"]', '["NAC", "NFKBx"]', r"no level for target 'NFKBx'"),
        ('kind = "persister_burden"', 'kind = "tumour"', r"outcome\.kind: unknown outcome"),
        (
            "start_day = 0",
            "start_day = -1",
            r"outcome\.start_day: the window \[-1, 5\] days lies outside the protocol",
        ),
        ("start_day = 0", "start_day = 6", r"outcome\.start_day: must be before outcome\.day"),
        (
            'kind = "persister_burden"\nstart_day = 0',
            'kind = "priming"\nstart_day = 0',
            r"outcome\.start_day: applies to the integrated",
        ),
        (
            'pairs = [["NAC", "EPIi"]]',
            'pairs = [["NAC", "BH3i"]]',
            r"scan\.pairs: 'BH3i' is not one of scan\.targets",
        ),
        ('solver = "cle"', 'solver = "rk4"', r"run\.solver: unknown solver 'rk4'"),
        ("BRAFi = [[0.0, 0.95]]", "BRAFx = [[0.0, 0.95]]", r"protocol\.BRAFx: not an input"),
        ("[model]", "[model\n", "not valid TOML"),
    ],
)
def test_bad_config_is_named(tmp_path, capsys, old, new, message):
    config = tmp_path / "bad.toml"
    config.write_text(GOOD.replace(old, new, 1))
    assert main(["interventions", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grn: error: ") and "bad.toml" in err
    assert re.search(message, err), err


def test_unknown_target_of_model(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(GOOD.replace('"EPIi"]', '"HDACi"]').replace("EPIi = 0.8", "HDACi = 0.8"))
    assert main(["interventions", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "unknown intervention target 'HDACi'" in capsys.readouterr().err


def test_small_run_writes_everything(tmp_path):
    """16 cells x 6 scenarios x 5 days of the melanoma model (CLE dt 0.02), persister burden over
    days 0-5 with the snapshot beside it, one pair, sensitivities on 4 cells (dt 0.02), one
    optimisation step."""
    config = tmp_path / "c.toml"
    config.write_text(GOOD)
    out = tmp_path / "out"
    assert main(["interventions", str(config), "--out", str(out)]) == 0
    for name in (
        "report.md",
        "interventions.csv",
        "ranking.csv",
        "results.json",
        "heatmap.png",
        "benefit_vs_start.png",
        "trajectories.png",
        "sensitivity.png",
        "optimised_schedule.png",
    ):
        assert (out / name).stat().st_size > 0, name
    with open(out / "interventions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "target",
        "start_h",
        "duration_h",
        "level",
        "outcome",
        "outcome_se",
        "benefit",
        "benefit_se",
    ]
    base = float(rows[0]["outcome"])
    scanned = rows[1:]
    assert len(scanned) == 4 and {r["target"] for r in scanned} == {"NAC", "EPIi"}
    for r in scanned:
        assert float(r["benefit"]) == pytest.approx(base - float(r["outcome"]), abs=1e-9)
    with open(out / "pairs.csv") as fh:
        (pair,) = list(csv.DictReader(fh))
    assert pair["target"] == "NAC+EPIi" and pair["level"] == "1+0.8"
    assert float(pair["benefit"]) == pytest.approx(base - float(pair["outcome"]), abs=1e-9)
    results = json.loads((out / "results.json").read_text())
    assert [r["rank"] for r in results["ranking"]] == [1, 2]
    assert results["outcome"]["name"] == "persister_burden"
    assert set(results["beside"]) == {"sox10_low_fraction", "viable_cells", "resistance_risk"}
    for r in results["ranking"]:
        assert set(r["beside"]["sox10_low_fraction"]) == {
            "rank",
            "benefit",
            "benefit_se",
            "window_h",
        }
        assert {"cost_per_day", "cost_per_day_se", "window_h", "window_se_h"} <= set(r["delay"])
    assert len(results["sensitivity"]["grad"]) == 2
    report = (out / "report.md").read_text()
    assert "CLE(dt=0.02" in report and "16 cells" in report and "seed 0" in report
    assert "each day of delay costs" in report and "## Pairs" in report
    assert "significant at 2 SE" in report
