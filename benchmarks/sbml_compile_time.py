"""Compile time of imported SBML models against model size (issue 17): is it at most linear?

Size is ``species + reactions + rules + events``. Two families, each row in a fresh process (no
warm caches), ``grn.ODE(rtol=1e-10, atol=1e-12)`` in float64:

- ``synthetic``: ``n`` units, each one species ``S_i``, one reaction ``S_i -> S_{i+1}`` whose law
  reads an assignment-rule parameter, that assignment rule, one rate rule and one timed event
  (size ``5 n``), for ``n`` = 2, 4, ..., 64: the growth law over two decades of size;
- ``suite``: SBML Test Suite cases spread over the sizes found in the suite (``--suite``; a
  case grn refuses is skipped).

``first_s`` is the first ``grn.simulate`` call's wall time (trace + compile + run), ``run_s`` a
second call with a new key, ``compile_s = first_s - run_s``, ``compile_cpu_s`` the first call's
process CPU time (less sensitive to other load on a shared machine), ``load_s`` the
``grn.load_sbml`` time. The slope of ``log compile_cpu_s`` against ``log size`` (least squares
over all sizes; and between the two largest synthetic sizes, where the fixed cost of the
integrator matters least) says whether compile time grows faster than linearly (> 1).

Usage (from the repository root)::

    python benchmarks/sbml_compile_time.py --suite ../shared/sbml-semantic
    python benchmarks/sbml_compile_time.py --units 2 8 --no-json     # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

MATH = '<math xmlns="http://www.w3.org/1998/Math/MathML">{}</math>'


def _apply(op: str, *args: str) -> str:
    return f"<apply><{op}/>{''.join(args)}</apply>"


def _ci(name: str) -> str:
    return f"<ci>{name}</ci>"


def _cn(value: float) -> str:
    return f"<cn>{value}</cn>"


def synthetic_sbml(n: int, t_end: float = 10.0) -> str:
    """The ``n``-unit model of the module docstring as SBML Level 3 Version 2."""
    species, params, rules, reactions, events = [], [], [], [], []
    for i in range(n):
        nxt = (i + 1) % n
        species.append(
            f'<species id="S{i}" compartment="C" initialAmount="{1.0 + i % 3}" '
            'hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>'
        )
        params.append(f'<parameter id="k{i}" value="{0.5 + 0.01 * i}" constant="true"/>')
        params.append(f'<parameter id="a{i}" constant="false"/>')
        params.append(f'<parameter id="r{i}" value="1" constant="false"/>')
        rules.append(
            f'<assignmentRule variable="a{i}">'
            + MATH.format(_apply("times", _ci(f"k{i}"), _ci(f"r{i}")))
            + "</assignmentRule>"
        )
        rules.append(
            f'<rateRule variable="r{i}">'
            + MATH.format(_apply("times", _cn(-0.1), _ci(f"r{i}")))
            + "</rateRule>"
        )
        flux = _apply("times", _ci(f"a{i}"), _ci(f"S{i}"))
        law = _apply("divide", flux, _apply("plus", _cn(1), _ci(f"S{i}")))
        ref = '<speciesReference species="{}" stoichiometry="1" constant="true"/>'
        reactions.append(
            f'<reaction id="R{i}" reversible="false">'
            f"<listOfReactants>{ref.format(f'S{i}')}</listOfReactants>"
            f"<listOfProducts>{ref.format(f'S{nxt}')}</listOfProducts>"
            f"<kineticLaw>{MATH.format(law)}</kineticLaw></reaction>"
        )
        when = t_end * (i + 0.5) / n
        trigger = _apply(
            "geq",
            '<csymbol encoding="text" definitionURL='
            '"http://www.sbml.org/sbml/symbols/time">t</csymbol>',
            _cn(when),
        )
        events.append(
            f'<event id="E{i}" useValuesFromTriggerTime="true"><trigger initialValue="false" '
            f'persistent="true">{MATH.format(trigger)}</trigger><listOfEventAssignments>'
            f'<eventAssignment variable="S{i}">'
            + MATH.format(_apply("plus", _ci(f"S{i}"), _cn(1)))
            + "</eventAssignment></listOfEventAssignments></event>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">'
        f'<model id="units{n}"><listOfCompartments><compartment id="C" size="1" '
        'spatialDimensions="3" constant="true"/></listOfCompartments>'
        f"<listOfSpecies>{''.join(species)}</listOfSpecies>"
        f"<listOfParameters>{''.join(params)}</listOfParameters>"
        f"<listOfRules>{''.join(rules)}</listOfRules>"
        f"<listOfReactions>{''.join(reactions)}</listOfReactions>"
        f"<listOfEvents>{''.join(events)}</listOfEvents></model></sbml>\n"
    )


def model_size(path: Path) -> int:
    """species + reactions + rules + events of an SBML file."""
    import libsbml

    m = libsbml.readSBMLFromFile(str(path)).getModel()
    return m.getNumSpecies() + m.getNumReactions() + m.getNumRules() + m.getNumEvents()


def worker(path: str, t_end: float, steps: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import grn

    start = time.perf_counter()
    try:
        net = grn.load_sbml(path)
    except (ValueError, NotImplementedError) as err:  # refused by name: no compile to measure
        return {"refused": str(err).splitlines()[0]}
    load_s = time.perf_counter() - start
    ts = np.linspace(0.0, t_end, steps + 1)
    solver = grn.ODE(rtol=1e-10, atol=1e-12)

    def run(key):
        sol = grn.simulate(net, ts, key=key, solver=solver)
        return jax.block_until_ready(sol.ys)

    cpu, start = time.process_time(), time.perf_counter()
    run(jax.random.key(0))
    first, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    run(jax.random.key(1))
    run_s = time.perf_counter() - start
    return {
        "size": model_size(Path(path)),
        "load_s": round(load_s, 3),
        "first_s": round(first, 3),
        "run_s": round(run_s, 4),
        "compile_s": round(first - run_s, 3),
        "compile_cpu_s": round(cpu, 3),
    }


def measure(label: str, path: Path, t_end: float, steps: int) -> dict | None:
    """One row, or None (printed) where grn refuses the model."""
    cmd = [sys.executable, __file__, "--worker", str(path), str(t_end), str(steps)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    row = {"model": label, **json.loads(proc.stdout.strip().splitlines()[-1])}
    if "refused" in row:
        print(f"{label:>14} refused: {row['refused']}", flush=True)
        return None
    print(
        f"{label:>14} size {row['size']:4d}  load {row['load_s']:6.2f} s  compile "
        f"{row['compile_s']:6.2f} s (CPU {row['compile_cpu_s']:6.2f} s)  run {row['run_s']:.3f} s",
        flush=True,
    )
    return row


def slope(rows: list[dict], key: str = "compile_cpu_s") -> float:
    """Least-squares slope of log(key) against log(size)."""
    xs = [math.log(r["size"]) for r in rows]
    ys = [math.log(r[key]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def suite_spread(suite: Path, count: int) -> list[tuple[str, Path, float, int]]:
    """``count`` counted suite cases at evenly spaced ranks of size (the first case per size)."""
    sys.path.insert(0, str(HERE.parent))
    from grn.io._sbml_suite import EXCLUDED_PACKAGES, case_file, read_settings, read_tags

    by_size: dict[int, tuple[str, Path, float, int]] = {}
    for folder in sorted(p for p in suite.iterdir() if p.is_dir() and p.name.isdigit()):
        case = folder.name
        _, kind, packages = read_tags(folder / f"{case}-model.m")
        if kind != "TimeCourse" or any(p.split("_")[0] in EXCLUDED_PACKAGES for p in packages):
            continue
        path = case_file(folder, case)
        s = read_settings(folder / f"{case}-settings.txt")
        t_end = float(s["start"]) + float(s["duration"])
        size = model_size(path)
        if size > 0:  # a model of parameters alone has no size to put on a log scale
            by_size.setdefault(size, (case, path, t_end, int(s["steps"])))
    sizes = sorted(by_size)
    picks = sorted({sizes[round(i * (len(sizes) - 1) / max(count - 1, 1))] for i in range(count)})
    return [by_size[s] for s in picks]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--units", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--suite", type=Path, default=None, help="the sbml-semantic/ folder")
    parser.add_argument("--suite-cases", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sbml_compile_time.json")
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        path, t_end, steps = args.worker
        print(json.dumps(worker(path, float(t_end), int(steps))))
        return

    from _machine import loadavg, machine_info

    machine = machine_info()
    synthetic = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.units:
            path = Path(tmp) / f"units{n}.xml"
            path.write_text(synthetic_sbml(n))
            row = measure(f"synthetic n={n}", path, 10.0, 50)
            assert row is not None, "grn refuses the synthetic model"
            synthetic.append(row)
    suite = []
    if args.suite is not None:
        for case, path, t_end, steps in suite_spread(args.suite, args.suite_cases):
            row = measure(f"suite {case}", path, t_end, steps)
            suite += [row] if row is not None else []
    slopes = {"synthetic": round(slope(synthetic), 2)}
    if len(synthetic) >= 2:
        slopes["synthetic_last_two"] = round(slope(synthetic[-2:]), 2)
    if len(suite) >= 2:
        slopes["suite"] = round(slope(suite), 2)
    print("log-log slope of compile CPU time against size:", slopes)
    doc = {
        "benchmark": "compile time of imported SBML models (first call minus a second call), "
        "fresh process per row, grn.ODE(rtol=1e-10, atol=1e-12), float64",
        "size": "species + reactions + rules + events",
        "target": "compile time at most linear in model size (slope <= 1)",
        "machine": machine,
        "loadavg_at_end": loadavg(),
        "synthetic": synthetic,
        "suite": suite,
        "slope": slopes,
    }
    if not args.no_json:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
