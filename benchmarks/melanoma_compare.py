"""Every melanoma behaviour observable of one `melanoma_behaviours.py` run against another's.

Each observable reported with a Monte-Carlo standard error in both JSONs is compared by
``z = (b - a) / sqrt(se_a**2 + se_b**2)`` (independent ensembles; the two runs share the per-cell
kM1 draws, which correlates them positively, so this SE is conservative), and all of them
together by Holm's step-down test at the 1 % level (two-sided normal p-values). Observables
without a standard error (the peak days, the R² of the reference fit) are listed for reading.

Usage::

    python benchmarks/melanoma_compare.py results/melanoma_behaviours_ssa_256.json \\
        results/melanoma_behaviours_hybrid_256.json
"""

from __future__ import annotations

import json
import math
import sys


def _binomial_se(p, n):
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)  # as `assess`: one cell's worth floor


def observables(run: dict) -> dict[str, tuple[float, float | None]]:
    """``{name: (value, standard error or None)}`` of one run's JSON."""
    b, n = run["behaviours"], run["cells"]
    b1, b2, b3, b4, b5 = (b[k] for k in sorted(b))
    out = {
        "1 W1 peak day": (b1["W1_peak_day"], None),
        "1 W1(d29)/peak": (b1["W1_d29_over_peak"], b1["W1_d29_over_peak_se"]),
        "1 W2 max day": (b1["W2_max_day"], None),
        "1 W2(d29)/max": (b1["W2_d29_over_max"], b1["W2_d29_over_max_se"]),
        "2 SOX10-low d29": (b2["sox10_low_d29"], b2["sox10_low_d29_se"]),
        "2 SOX10-low d64": (b2["sox10_low_d64"], b2["sox10_low_d64_se"]),
        "2 W1 out": (b2["W1_out"], b2["W1_se"]),
        "2 W1 back": (b2["W1_back"], b2["W1_se"]),
        "3 bimodality max": (b3["max"], b3["max_se_bootstrap"]),
        "4 priming d1": (b4["priming_d1"], b4["priming_d1_se"]),
        "4 priming d10": (b4["priming_d10"], b4["priming_d10_se"]),
        "4 BH3i priming d10": (b4["BH3i_priming_d10"], b4["BH3i_priming_d10_se"]),
        "4 BH3i SOX10-low d29": (
            b4["BH3i_sox10_low_d29"],
            _binomial_se(b4["BH3i_sox10_low_d29"], n),
        ),
    }
    for name, value in b5["sox10_low_d29"].items():
        out[f"5 {name} SOX10-low d29"] = (value, b5["sox10_low_d29_se"][name])
    p = run["perk"]
    out["pERK drop at 1 h"] = (p["drop_1h"], p["drop_1h_se"])
    for key, label in (("24h", "24 h"), ("48h", "48 h"), ("d29", "d29")):
        out[f"pERK E({label})/untreated"] = (p[f"E_{key}_over_untreated"], p[f"E_{key}_se"])
    for wave in ("lambda1", "lambda2"):
        fit = run["reference_fit"][wave]
        for phase in ("on_drug", "drug_removed"):
            out[f"R² {wave} {phase}"] = (fit[f"r2_{phase}"], None)
    return out


def compare(ref: dict, run: dict, level: float = 0.01) -> list[dict]:
    """One row per observable: values, SEs, z, p and the Holm verdict at ``level``."""
    a, b = observables(ref), observables(run)
    rows = []
    for name, (va, sa) in a.items():
        vb, sb = b[name]
        row = {"name": name, "reference": va, "reference_se": sa, "value": vb, "value_se": sb}
        if sa is not None and sb is not None:
            z = (vb - va) / math.hypot(sa, sb)
            row.update(z=z, p=math.erfc(abs(z) / math.sqrt(2)))
        rows.append(row)
    tested = sorted((r for r in rows if "p" in r), key=lambda r: r["p"])
    still = True  # Holm: reject in order of p until the first p above level / (m - i)
    for i, r in enumerate(tested):
        still = still and r["p"] <= level / (len(tested) - i)
        r["holm_reject"] = still
    return rows


def table(rows: list[dict]) -> str:
    def fmt(v, se):
        return f"{v:.4g}" if se is None else f"{v:.4g} ± {se:.2g}"

    lines = [
        "| observable | exact SSA | hybrid | z | Holm 1 % |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        z = f"{r['z']:+.2f}" if "z" in r else ""
        verdict = "" if "z" not in r else ("differs" if r["holm_reject"] else "agrees")
        ref, got = fmt(r["reference"], r["reference_se"]), fmt(r["value"], r["value_se"])
        lines.append(f"| {r['name']} | {ref} | {got} | {z} | {verdict} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ref, run = (json.loads(open(path).read()) for path in argv[:2])
    rows = compare(ref, run)
    print(table(rows))
    tested = [r for r in rows if "z" in r]
    worst = max(tested, key=lambda r: abs(r["z"]))
    print(
        f"\n{len(tested)} observables with SEs; within 3 combined SE: "
        f"{sum(abs(r['z']) <= 3 for r in tested)}; largest |z| {abs(worst['z']):.2f} "
        f"({worst['name']}); Holm at 1 %: {sum(r['holm_reject'] for r in tested)} rejected"
    )
    speed = ref["wall_s"]["control"] / run["wall_s"]["control"]
    print(
        f"64-day control protocol: {ref['wall_s']['control']} s -> {run['wall_s']['control']} s "
        f"({speed:.1f}x; load at start {ref['machine']['loadavg_at_start'][0]} and "
        f"{run['machine']['loadavg_at_start'][0]})"
    )


if __name__ == "__main__":
    main()
