"""notebooks/02_fitting.ipynb runs from top to bottom (nbclient) and recovers the truth."""

from _notebooks import run_notebook


def test_notebook_runs(tmp_path, monkeypatch):
    # the notebook asserts |estimate - truth| < 4 standard errors
    text = run_notebook("02_fitting.ipynb", tmp_path, monkeypatch)
    assert "alpha: " in text and "mu: " in text
