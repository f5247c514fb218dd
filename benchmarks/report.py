"""Regenerate the benchmark plots and the results table of benchmarks/README.md from results/*.json.

Writes ``results/throughput_vs_cells.png`` (SSA events/s against ensemble size, from
``ssa_throughput.json`` and every ``gpu_*.json``), ``results/compile_time_vs_size.png`` (from
``compile_time.json``) and replaces the text between ``<!-- results:start -->`` and
``<!-- results:end -->`` in benchmarks/README.md with one table per results file: what was run,
on which machine, when, under what load. Files that are missing are skipped.

Usage (from the repository root)::

    python benchmarks/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _machine(doc: dict) -> str:
    m = doc.get("machine", {})
    cpus = m.get("cpu_affinity") or m.get("cpu_count")
    return (
        f"{m.get('jax_backend', '?')} ({', '.join(m.get('jax_devices', [])[:1])}), {cpus} CPUs, "
        f"jax {m.get('jax_version', '?')}, {m.get('date', '?')}, load {m.get('loadavg_at_start')}"
    )


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


def ssa_points() -> dict[str, tuple[list[int], list[float]]]:
    """Series name -> (cells, events/s) for the throughput plot."""
    series = {}
    doc = _load("ssa_throughput.json")
    if doc:
        for model, res in doc.get("results", {}).items():
            cells = sorted(res.get("cells", {}), key=int)
            pts = [(int(c), res["cells"][c].get("grn", {}).get("events_per_s")) for c in cells]
            pts = [p for p in pts if p[1]]
            if pts:
                series[f"grn SSA {model} (cpu, ssa_throughput)"] = tuple(map(list, zip(*pts)))
            gp = [(int(c), res["cells"][c].get("gillespy2", {}).get("events_per_s")) for c in cells]
            gp = [p for p in gp if p[1]]
            if gp:
                series[f"GillesPy2 {model}"] = tuple(map(list, zip(*gp)))
    for path in sorted(RESULTS.glob("gpu_*.json")):
        doc = json.loads(path.read_text())
        pts = [(r["cells"], r["rate"]) for r in doc["rows"] if r["solver"] == "SSA"]
        if pts:
            series[f"grn SSA toggle ({doc['device']}, gpu.py)"] = tuple(map(list, zip(*pts)))
    return series


def plot_throughput() -> Path | None:
    series = ssa_points()
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in series.items():
        ax.loglog(x, y, "o-", label=name)
    ax.set_xlabel("cells")
    ax.set_ylabel("SSA events / s")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    out = RESULTS / "throughput_vs_cells.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_compile() -> Path | None:
    doc = _load("compile_time.json")
    if not doc or not doc.get("network_size"):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for solver in sorted({r["solver"] for r in doc["network_size"]}):
        rows = sorted(
            (r for r in doc["network_size"] if r["solver"] == solver), key=lambda r: r["reactions"]
        )
        x = [r["reactions"] for r in rows]
        ax.loglog(x, [r["compile_cpu_s"] for r in rows], "o-", label=f"{solver} (CPU s)")
    xs = [r["reactions"] for r in doc["network_size"]]
    y0 = min(r["compile_cpu_s"] for r in doc["network_size"])
    ax.loglog([min(xs), max(xs)], [y0, y0 * max(xs) / min(xs)], "k:", label="linear")
    ax.set_xlabel("reactions")
    ax.set_ylabel("compile time (s)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    out = RESULTS / "compile_time_vs_size.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def tables() -> list[str]:
    lines = []
    for path in sorted(RESULTS.glob("streaming*.json")):
        doc = json.loads(path.read_text())
        lines += ["", f"**Streaming** (`streaming.py`, `{path.name}`): {doc['model']}; "]
        lines[-1] += f"{doc['times']}."
        lines += [""]
        lines += [f"Machine: {_machine(doc)}", ""]
        cols = ["cells", "solver", "batch_size", "wall_s", "cell_hours_per_s", "peak_rss_mb"]
        lines += _table(doc["runs"], cols + ["mean_S_72h"])
    doc = _load("compile_time.json")
    if doc:
        lines += ["", "**Compile time** (`compile_time.py`), fresh process per row.", ""]
        lines += [f"Machine: {_machine(doc)}; load at end {doc.get('loadavg_at_end')}", ""]
        cols = ["model", "solver", "reactions", "compile_s", "compile_cpu_s", "run_s"]
        lines += _table(doc["melanoma"] + doc["network_size"], cols)
        lines += ["", f"Growth exponent (CPU time, last two sizes): {doc['growth_exponent']}"]
    doc = _load("multi_device.json")
    if doc:
        lines += ["", "**Multi-device** (`multi_device.py`), host devices on the CPU.", ""]
        lines += [f"Machine: {_machine(doc)}; load at end {doc.get('loadavg_at_end')}", ""]
        cols = ["workload", "devices", "cells", "run_s", "speedup_vs_1"]
        lines += _table(doc["rows"], cols + ["events_per_s", "cell_hours_per_s"])
    for path in sorted(RESULTS.glob("gpu_*.json")):
        doc = json.loads(path.read_text())
        lines += ["", f"**Throughput** (`gpu.py`) on {doc['device']}.", ""]
        lines += [f"Machine: {_machine(doc)}; memory {doc['memory']}", ""]
        lines += _table(
            doc["rows"], ["solver", "model", "cells", "first_s", "run_s", "rate", "unit"]
        )
    others = ["ssa_throughput.json", "approximate_solvers.json", "gradient_cost.json"]
    listed = [n for n in others if (RESULTS / n).exists()]
    if listed:
        lines += ["", "Other results (see each script's docstring and JSON):", ""]
        for name in listed:
            lines.append(f"- `results/{name}`: {_machine(_load(name))}")
    return lines


def main() -> None:
    images = [p for p in (plot_throughput(), plot_compile()) if p is not None]
    body = tables() + [""] + [f"![{p.stem}](results/{p.name})" for p in images]
    readme = HERE / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + "\n".join(body) + "\n" + END + tail)
    print(f"updated {readme}; plots: {[str(p) for p in images]}")


if __name__ == "__main__":
    main()
