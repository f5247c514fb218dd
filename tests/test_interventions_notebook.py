"""notebooks/03_interventions.ipynb runs from top to bottom (nbclient)."""

from _notebooks import run_notebook


def test_notebook_runs(tmp_path, monkeypatch):
    text = run_notebook("03_interventions.ipynb", tmp_path, monkeypatch)
    assert "Spearman(predicted, scanned)" in text and "benefit over the best constant" in text
    assert "mean_X  A: day-0 benefit" in text and "X_hours B: day-0 benefit" in text
