"""The synthetic melanoma data set as a PEtab v1 problem (issue 18, item 6), for stochastic fitting.

Written from the shipped synthetic tables (`grn.models._melanoma_data`) and the SBML export of the
model (`grn.models.melanoma_sbml`) into ``grn/models/data/melanoma_petab/``; regenerate with
``python -m grn.models._melanoma_petab``. Fit it with ``grn fit
grn/models/data/melanoma_petab/melanoma.yaml --solver cle --dt 0.01 --cells 8 --optimizer adam``
(docs/fitting.md, "The melanoma data set as a PEtab problem": the step size, memory and cost).
The choices PEtab v1 forces:

- Drug schedule: PEtab v1 conditions are constant, so each condition table row sets the on-drug
  input levels (``BRAFi``, ``NFKBi``, ... are SBML parameters) and the SBML event ``washout``
  sets every input to 0 at the common washout time of the synthetic protocol (day 29, 696 h;
  the trigger ``time >= 696`` holds the number, so it is the same in every condition).
- Initial state: the model's `X0` (the untreated ensemble mean) in every condition; no PEtab
  pre-equilibration (the CLE refuses it: an ensemble mean has no exact steady state), and no
  20-day untreated pre-run (SBML cannot hold it), so every simulated cell starts from `X0`.
- Per-cell heterogeneity: SBML holds no distribution; kM1 is its median, the same in every cell
  (the data came from cells with a log-normal kM1 spread: the fitted model cannot reproduce the
  staggered SOX10 loss exactly).
- Observables: the population means ``<id>_mean`` (a PEtab id may not be a model id such as
  ``W1``) of pERK (``E / 20``), W1, W2, SOX10 (``S``) and priming (``B / (B + 20)``), formulas
  of the ensemble-mean state (`fitting.load_petab`'s stochastic
  semantics): ``priming`` is B/(B+20) of the mean B, not the mean of B/(B+20) that the data
  hold. The SOX10-low fraction and the single-cell SOX10 snapshots are not formulas of a mean
  state and are left out.
- Noise: normal, ``noiseFormula`` ``noiseParameter1_<id>_mean``, the synthetic table's standard
  deviation per row in ``noiseParameters``.
- Parameters: the two the ``grn demo`` fit frees (`fitting._demo.FREE`: kM1, kIKK), log10 scale,
  bounds one decade either side of the truth, nominal the truth; every other model parameter
  fixed (``estimate`` 0) at its value.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ._melanoma import INPUTS, PARAMS, melanoma_sbml
from ._melanoma_data import CONDITIONS, OBSERVABLES, synthetic_paths

PETAB_DIR = Path(__file__).resolve().parent / "data" / "melanoma_petab"
YAML = "melanoma.yaml"
ESTIMATED = ("kM1", "kIKK")
"""Estimated parameters: those of the ``grn demo`` fit (`fitting._demo.FREE`)."""
DECADES = 1.0
"""Bounds: the truth times 10^-DECADES and 10^DECADES."""


def washout_time() -> float:
    """The hour at which every condition sets every input to 0 (raises if they differ)."""
    times = set()
    for cid, steps in CONDITIONS.items():
        off = [t for t, levels in steps[1:] if not any(levels.values())]
        if len(steps) != 2 or steps[0][0] != 0.0 or len(off) != 1:
            raise ValueError(
                f"condition {cid!r}: PEtab encodes levels from 0 h and one washout to 0, got "
                f"{steps}"
            )
        times.add(off[0])
    if len(times) != 1:
        raise ValueError(f"the conditions wash out at different times {sorted(times)}")
    return times.pop()


def _write(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def write_petab(out_dir: Path = PETAB_DIR) -> Path:
    """Write the PEtab problem into ``out_dir``; returns the path of its YAML file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.xml").write_text(melanoma_sbml(washout_h=washout_time()))
    _write(
        out_dir / "conditions.tsv",
        ["conditionId", *INPUTS],
        [
            [cid, *(f"{steps[0][1].get(u, 0.0):g}" for u in INPUTS)]
            for cid, steps in CONDITIONS.items()
        ],
    )
    _write(
        out_dir / "observables.tsv",
        [
            "observableId",
            "observableFormula",
            "noiseFormula",
            "observableTransformation",
            "noiseDistribution",
        ],
        [
            [f"{oid}_mean", f, f"noiseParameter1_{oid}_mean", "lin", "normal"]
            for oid, f in OBSERVABLES.items()
        ],
    )
    with open(synthetic_paths()["measurements"], newline="") as f:
        rows = [
            [f"{r['observableId']}_mean", r["simulationConditionId"], r["time"], r["measurement"]]
            + [r["noiseParameters"]]
            for r in csv.DictReader(f, delimiter="\t")
            if r["observableId"] in OBSERVABLES and not r["cellId"]
        ]
    _write(
        out_dir / "measurements.tsv",
        ["observableId", "simulationConditionId", "time", "measurement", "noiseParameters"],
        rows,
    )
    scale = 10.0**DECADES
    _write(
        out_dir / "parameters.tsv",
        [
            "parameterId",
            "parameterScale",
            "lowerBound",
            "upperBound",
            "nominalValue",
            "estimate",
        ],
        [
            [name, "log10", f"{value / scale:.12g}", f"{value * scale:.12g}", repr(value), "1"]
            if name in ESTIMATED
            else [name, "lin", "", "", repr(value), "0"]
            for name, value in PARAMS.items()
        ],
    )
    yaml = out_dir / YAML
    yaml.write_text(
        "format_version: 1\n"
        "parameter_file: parameters.tsv\n"
        "problems:\n"
        "- sbml_files: [model.xml]\n"
        "  condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n"
    )
    return yaml


def petab_path() -> Path:
    """The shipped problem's YAML file."""
    return PETAB_DIR / YAML


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the melanoma PEtab problem.")
    parser.add_argument("--out", type=Path, default=PETAB_DIR)
    args = parser.parse_args(argv)
    print(f"wrote {write_petab(args.out)}")


if __name__ == "__main__":
    main()
