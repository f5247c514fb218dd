"""A SYNTHETIC measurement set generated from the built-in melanoma model (exact SSA ensembles).

Not data from any laboratory: ensembles of `melanoma()` with its default ("true") parameters,
its own per-cell chromatin heterogeneity and untreated pre-equilibration (the plain call),
simulated with the exact SSA, summarised as population means
and SOX10-low fractions plus single-cell SOX10 snapshots, with Gaussian measurement noise added.
It is shipped as package data (``grn/models/data/melanoma_synthetic_*``) for the fitting demo and
tests, in the tables ``shared/DESIGN.md`` fixes:

- ``melanoma_synthetic_measurements.tsv``: ``observableId, simulationConditionId, time,
  measurement, noiseParameters, cellId`` (time in hours; noiseParameters the noise standard
  deviation; rows with a cellId are single-cell snapshot values, the rest population summaries);
- ``melanoma_synthetic_conditions.tsv``: ``conditionId, time, BRAFi, NFKBi, NAC, EPIi, BH3i``
  (each row sets the levels from ``time`` on);
- ``melanoma_synthetic.json``: the truth (parameters, observables, noise model, ensemble sizes,
  seeds, solver), labelled synthetic.

Regenerate with ``python -m grn.models._melanoma_data`` (a few minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
PREFIX = "melanoma_synthetic"

DAY = 24.0
CONDITIONS = {
    # conditionId: [(time_h, {input: level})], each row setting levels from time on
    "braf": [(0.0, {"BRAFi": 0.95}), (29 * DAY, {"BRAFi": 0.0})],
    "braf_nfkbi": [(0.0, {"BRAFi": 0.95, "NFKBi": 0.8}), (29 * DAY, {"BRAFi": 0.0, "NFKBi": 0.0})],
}
DAYS = {
    "braf": (0, 1, 2, 3, 5, 7, 10, 14, 21, 29, 31, 33, 36, 43, 50, 57, 64),
    "braf_nfkbi": (0, 1, 2, 3, 5, 7, 10, 14, 21, 29),
}
OBSERVABLES = {
    "pERK": "E / 20",
    "W1": "W1",
    "W2": "W2",
    "SOX10": "S",
    "priming": "B / (B + 20)",
}
"""Population observables: ensemble means of these expressions over species counts."""
SOX10_LOW = "sox10_low"
"""The fraction of cells with S below half the untreated mean (``X0["S"] / 2``)."""
SNAPSHOT_DAYS = (0, 3, 7)
SNAPSHOT_CELLS = 100
RELATIVE_NOISE = 0.05
NOISE_FLOOR = {"pERK": 0.01, "W1": 2.0, "W2": 2.0, "SOX10": 5.0, "priming": 0.005}
FRACTION_NOISE = 0.03


def schedule(condition: str):
    """The `grn.Schedule` of a condition (inputs not listed are 0)."""
    import grn

    from ._melanoma import INPUTS

    rows = CONDITIONS[condition]
    times = [t for t, _ in rows]
    values = {u: [levels.get(u, 0.0) for _, levels in rows] for u in INPUTS}
    return grn.Schedule(times=times, values={u: v for u, v in values.items() if any(v)})


_OBSERVABLE_VALUES = {
    "pERK": lambda c: c["E"] / 20,
    "W1": lambda c: c["W1"],
    "W2": lambda c: c["W2"],
    "SOX10": lambda c: c["S"],
    "priming": lambda c: c["B"] / (c["B"] + 20),
}
"""`OBSERVABLES` evaluated over per-cell count arrays."""


def generate(out_dir: Path = DATA_DIR, n_cells: int = 256, seed: int = 0, progress=print) -> dict:
    """Simulate every condition with the exact SSA and write the three files into ``out_dir``."""
    import grn

    from ._melanoma import X0, melanoma

    net = melanoma()
    key = jax.random.key(seed)
    _, k_sim, k_noise, k_pick = jax.random.split(key, 4)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_noise)).ravel())
    threshold = 0.5 * X0["S"]
    rows, walls = [], {}
    for c, condition in enumerate(CONDITIONS):
        days = np.asarray(DAYS[condition], float)
        started = time.perf_counter()
        sol = grn.simulate(
            net,
            ts=jnp.asarray(days * DAY),
            key=jax.random.fold_in(k_sim, c),
            solver=grn.SSA(max_events=10**9),
            n_cells=n_cells,
            schedule=schedule(condition),
        )
        counts = {s: np.asarray(sol[s], np.float64) for s in sol.species}
        walls[condition] = round(time.perf_counter() - started, 1)
        progress(f"{condition}: {n_cells} cells, {days[-1]:.0f} days, {walls[condition]} s")
        for obs in OBSERVABLES:
            mean = _OBSERVABLE_VALUES[obs](counts).mean(axis=0)
            sd = np.maximum(RELATIVE_NOISE * np.abs(mean), NOISE_FLOOR[obs])
            noisy = mean + sd * rng.standard_normal(mean.shape)
            rows += [(obs, condition, d * DAY, y, s, "") for d, y, s in zip(days, noisy, sd)]
        low = (counts["S"] < threshold).mean(axis=0)
        noisy = np.clip(low + FRACTION_NOISE * rng.standard_normal(low.shape), 0.0, 1.0)
        rows += [
            (SOX10_LOW, condition, d * DAY, y, FRACTION_NOISE, "") for d, y in zip(days, noisy)
        ]
        if condition == "braf":
            n_pick = min(SNAPSHOT_CELLS, n_cells)
            pick = jax.random.choice(k_pick, n_cells, (n_pick,), replace=False)
            picked = np.sort(np.asarray(pick))
            for d in SNAPSHOT_DAYS:
                i = int(np.flatnonzero(days == d)[0])
                values = counts["S"][picked, i]
                rows += [
                    ("SOX10", condition, d * DAY, v, None, f"cell{j}")
                    for j, v in zip(picked, values)
                ]
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{PREFIX}_measurements.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(
            [
                "observableId",
                "simulationConditionId",
                "time",
                "measurement",
                "noiseParameters",
                "cellId",
            ]
        )
        for obs, cond, t, y, sd, cell in rows:
            noise = "" if sd is None else f"{sd:.6g}"  # snapshot rows: no noise model
            w.writerow([obs, cond, f"{t:g}", f"{y:.6g}", noise, cell])
    from ._melanoma import INPUTS

    with open(out_dir / f"{PREFIX}_conditions.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["conditionId", "time", *INPUTS])
        for cond, steps in CONDITIONS.items():
            for t, levels in steps:
                w.writerow([cond, f"{t:g}", *(f"{levels.get(u, 0.0):g}" for u in INPUTS)])
    truth = {
        "synthetic": True,
        "description": "SYNTHETIC data generated from grn.models.melanoma() by exact SSA "
        "ensembles with the default parameters; not laboratory measurements.",
        "params": {k: float(v) for k, v in net.params.items()},
        "per_cell": {
            name: {"distribution": type(d).__name__}
            | {f.name: float(getattr(d, f.name)) for f in dataclasses.fields(d)}
            for name, d in net.cell_params.items()
        },
        "equilibrate_h": net.equilibrate_h,
        "observables": {**OBSERVABLES, SOX10_LOW: f"fraction of cells with S < {threshold:g}"},
        "noise": {
            "population": f"Gaussian, sd = max({RELATIVE_NOISE} * value, floor)",
            "floor": NOISE_FLOOR,
            SOX10_LOW: f"Gaussian, sd = {FRACTION_NOISE}, clipped to [0, 1]",
            "snapshots": "none (noiseParameters empty): single-cell S values",
        },
        "conditions": {k: [[t, lv] for t, lv in v] for k, v in CONDITIONS.items()},
        "days": DAYS,
        "snapshot_days": SNAPSHOT_DAYS,
        "snapshot_cells": min(SNAPSHOT_CELLS, n_cells),
        "solver": "grn.SSA (exact)",
        "n_cells": n_cells,
        "seed": seed,
        "wall_s": walls,
        "grn_version": grn.__version__,
    }
    (out_dir / f"{PREFIX}.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def synthetic_paths() -> dict[str, Path]:
    """Paths of the packaged synthetic set: ``measurements``, ``conditions``, ``truth``."""
    return {
        "measurements": DATA_DIR / f"{PREFIX}_measurements.tsv",
        "conditions": DATA_DIR / f"{PREFIX}_conditions.tsv",
        "truth": DATA_DIR / f"{PREFIX}.json",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Regenerate the synthetic melanoma data set.")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--cells", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    generate(args.out, args.cells, args.seed)
    print(f"wrote {args.out}/{PREFIX}_*")


if __name__ == "__main__":
    main()
