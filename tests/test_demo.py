"""``grn demo``: its interventions config is valid, and the quick demo (the README's main job at
small size, ~45 s on 2 cores) writes its report, table and figures."""

import json

import pytest

from grn_cli.demo import config_text
from grn_cli.interventions import load_config
from grn_cli.main import main


@pytest.mark.parametrize("quick", [True, False])
def test_demo_config_is_valid(tmp_path, quick):
    path = tmp_path / "interventions.toml"
    path.write_text(config_text({"kM1": 0.08}, quick, 3))
    cfg = load_config(path)
    assert cfg["scan"]["targets"] == ["NFKBi", "NAC", "EPIi", "BH3i"]
    assert cfg["scan"]["levels"] == {"NFKBi": 0.8, "NAC": 1.0, "EPIi": 0.8, "BH3i": 1.0}
    assert cfg["model"]["params"] == {"kM1": 0.08} and cfg["run"]["seed"] == 3
    assert bool(cfg["optimise"]) is not quick


def test_quick_demo(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "# grn demo --quick (seed 0)" in report and "## Ranking" in report
    results = json.loads((out / "results.json").read_text())
    assert len(results["ranking"]) == 4 and results["fit"]["status"] == "fitted"
    assert results["outcome"]["name"] == "persister_burden"
    snapshot = results["beside"]["sox10_low_fraction"]["ranking"]
    assert snapshot[-1]["target"] == "BH3i" and snapshot[-1]["benefit"] == 0
    assert results["sensitivity"]["n_excluded"] == 0  # every path derivative finite at dt 0.005
    assert len(results["pairs"]) == 6 and "each day of delay costs" in report
    for name in (
        "interventions.csv",
        "pairs.csv",
        "heatmap.png",
        "sensitivity.png",
        "trajectories.png",
    ):
        assert (out / name).exists()
