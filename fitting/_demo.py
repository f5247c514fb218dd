"""The fit of ``grn demo``: the built-in melanoma model's chromatin and IKK rates, briefly fitted
to the bundled synthetic data set's on-drug population means (`demo_fit`).

The command ``grn demo`` runs it, then the interventions scan, and writes the files and report.
"""

from __future__ import annotations

import time
from pathlib import Path

FIT_DAYS = 3
"""The fit uses the first days of the on-drug response (29 days of pathwise gradients, or of the
stiff, oscillating ODE, are too slow for the demo's budget on 2 CPU cores)."""
FIT_CELLS = 8
FIT_DT = 0.005
"""CLE step of the fit: path derivatives of the melanoma model are stable at 0.005 h (at 0.02 h
they blow up within 12-48 h in most cells; `fitting.sensitivity`)."""
FREE = {"kM1": (0.02, 0.3), "kIKK": (1.0, 15.0)}
"""Parameters the demo's fit moves (log scale, bounds): the RelA-driven chromatin remodelling rate
and the IKK-driven IkBa degradation, the two rates that set how fast cells leave SOX10-high."""


def demo_fit(steps: int, seed: int, out: Path, log=print) -> dict:
    """A short fit of `FREE` to the on-drug population means of the bundled synthetic data.

    Chemical Langevin ensemble (`grn.CLE(dt=FIT_DT)`, `FIT_CELLS` cells, fixed noise: pathwise
    reverse-mode gradients) on the
    rows up to day `FIT_DAYS` of the ``braf`` condition's population means (pERK, W1, W2, SOX10,
    priming),
    Gaussian likelihood with the table's noise; starts at 0.7x the network's values; ``steps``
    Adam steps. The rows used are written to ``out/fit_measurements.tsv``; ``log`` gets the
    progress lines. Returns ``{"status", "params", ...}``; without the data files the demo goes
    on with the defaults and says so.
    """
    import csv

    import jax

    import grn

    from ._data import Measurements
    from ._fit import fit
    from ._parameters import ParameterSpace
    from ._problem import Problem

    paths = grn.models.synthetic_paths()
    if not paths["measurements"].exists():
        log(f"fit: no bundled data at {paths['measurements']}; using the model's parameters")
        return {"status": "skipped: bundled synthetic data not found", "params": {}}
    started = time.perf_counter()
    network = grn.models.melanoma()
    keep = set(grn.models.SYNTHETIC_OBSERVABLES)
    with open(paths["measurements"], newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = [
            r
            for r in reader
            if r["observableId"] in keep
            and r["simulationConditionId"] == "braf"
            and not r.get("cellId")
            and float(r["time"]) <= FIT_DAYS * 24.0
        ]
        fields = [f for f in reader.fieldnames or () if f != "cellId"]
    table = out / "fit_measurements.tsv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields, delimiter="\t", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    measurements = Measurements.read(table, paths["conditions"])
    present = {r["observableId"] for r in rows}
    observables = {k: v for k, v in grn.models.SYNTHETIC_OBSERVABLES.items() if k in present}
    free = {
        name: {"init": 0.7 * float(network.params[name]), "lower": lo, "upper": hi, "scale": "log"}
        for name, (lo, hi) in FREE.items()
    }
    problem = Problem(
        network,
        measurements,
        observables,
        ParameterSpace(free),
        solver=grn.CLE(dt=FIT_DT),
        n_cells=FIT_CELLS,
        key=jax.random.key(seed),
    )
    log(f"fit: {list(FREE)} to {len(rows)} population means (CLE), {steps} Adam steps")
    result = fit(problem, key=jax.random.key(seed), steps=steps, progress=True)
    params = {name: float(result.params[name]) for name in FREE}
    return {
        "status": "fitted",
        "solver": f"CLE(dt={FIT_DT}), {FIT_CELLS} cells, pathwise reverse-mode gradients",
        "rows": len(rows),
        "days": FIT_DAYS,
        "steps": int(result.n_steps),
        "loss_history": [float(v) for v in result.history[:, result.best_start]],
        "start": {k: v["init"] for k, v in free.items()},
        "params": params,
        "truth": {name: float(network.params[name]) for name in FREE},
        "seconds": time.perf_counter() - started,
    }
