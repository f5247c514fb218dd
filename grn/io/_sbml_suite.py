"""The SBML Test Suite's semantic (deterministic) cases, run with `grn.load_sbml` + `grn.ODE`.

Each case folder ``NNNNN/`` holds ``NNNNN-sbml-lXvY.xml`` (the highest level is used),
``NNNNN-settings.txt`` (output grid, variables, tolerances, which species are amounts or
concentrations), ``NNNNN-results.csv`` and ``NNNNN-model.m`` (its tags). A case passes when every
tabulated value ``U`` satisfies ``|C - U| <= absolute + relative * |C|`` against the expected
``C``. Results are read the documented way: ``sol[id]`` for every id, a concentration as
``sol[species] / sol[compartment]``.
"""

from __future__ import annotations

import csv
import re
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_LEVELS = ("l3v2", "l3v1", "l2v5", "l2v4", "l2v3", "l2v2", "l2v1", "l1v2")
EXCLUDED_PACKAGES = ("comp", "fbc")


@dataclass
class CaseResult:
    """One case: ``status`` is pass, fail (wrong numbers), refused (a named ValueError or
    NotImplementedError), error (any other exception), timeout or excluded (steady-state or
    package cases, outside the count)."""

    case: str
    status: str
    tags: tuple[str, ...] = ()
    message: str = ""
    seconds: float = 0.0
    worst: str = field(default="")  # fail: the worst variable and time
    cpu_seconds: float = 0.0  # process CPU time (all threads): the cost apart from other load


def read_settings(path: Path) -> dict:
    """The settings file as a dict of strings (lists split on commas)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        key, value = key.strip(), value.strip()
        if key in ("variables", "amount", "concentration"):
            out[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            out[key] = value
    return out


def read_tags(path: Path) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(componentTags + testTags, testType, packagesPresent) from a case's ``-model.m``."""
    tags, kind, packages = [], "", []
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        items = [v.strip() for v in value.split(",") if v.strip()]
        if key.strip() in ("componentTags", "testTags"):
            tags += items
        elif key.strip() == "testType":
            kind = value.strip()
        elif key.strip() == "packagesPresent":
            packages = items
    return tuple(tags), kind, tuple(packages)


def case_file(folder: Path, case: str) -> Path:
    """The case's SBML file at the highest level present."""
    for level in _LEVELS:
        path = folder / f"{case}-sbml-{level}.xml"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no SBML file in {folder}")


def _compartments(path: Path) -> dict[str, str]:
    import libsbml

    model = libsbml.readSBMLFromFile(str(path)).getModel()
    return {s.getId(): s.getCompartment() for s in model.getListOfSpecies()}


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def run_case(folder: Path, solver=None) -> CaseResult:
    """Run one case folder; never raises for the case's own failures."""
    import jax

    import grn

    folder = Path(folder)
    case = folder.name
    tags, kind, packages = read_tags(folder / f"{case}-model.m")
    if kind != "TimeCourse" or any(p.split("_")[0] in EXCLUDED_PACKAGES for p in packages):
        why = kind if kind != "TimeCourse" else "package " + ", ".join(packages)
        return CaseResult(case, "excluded", tags, why)
    settings = read_settings(folder / f"{case}-settings.txt")
    start, cpu = time.perf_counter(), time.process_time()
    solver = solver or grn.ODE(rtol=1e-10, atol=1e-12)
    try:
        path = case_file(folder, case)
        network = grn.load_sbml(path)
        t0, steps = float(settings["start"]), int(settings["steps"])
        ts = np.linspace(t0, t0 + float(settings["duration"]), steps + 1)
        sol = grn.simulate(network, ts, solver=solver, key=jax.random.key(0))
        compartments = _compartments(path)
        values = {}
        for name in settings["variables"]:
            v = np.asarray(sol[name])[0]
            if name in settings.get("concentration", ()):
                v = v / np.asarray(sol[compartments[name]])[0]
            values[name] = v
    except (ValueError, NotImplementedError) as err:
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return CaseResult(case, "refused", tags, _first_line(err), seconds, cpu_seconds=cpu)
    except _Timeout:
        raise
    except Exception as err:  # noqa: BLE001 - a crash is a result, recorded as such
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        message = f"{type(err).__name__}: {_first_line(err)}"
        return CaseResult(case, "error", tags, message, seconds, cpu_seconds=cpu)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    expected = _read_results(folder / f"{case}-results.csv")
    tol_abs, tol_rel = float(settings["absolute"]), float(settings["relative"])
    worst, worst_ratio = "", 0.0
    for name, column in expected.items():
        mine = values[name]
        bound = tol_abs + tol_rel * np.abs(column)
        both_nan = np.isnan(column) & np.isnan(mine)
        err = np.where(both_nan, 0.0, np.abs(column - mine))
        ratio = np.where(np.isnan(err), np.inf, err / bound)
        i = int(np.argmax(ratio))
        if ratio[i] > worst_ratio:
            worst_ratio = float(ratio[i])
            worst = f"{name} at t={ts[i]:g}: expected {column[i]:.6g}, got {mine[i]:.6g}"
    status = "pass" if worst_ratio <= 1.0 else "fail"
    detail = worst if status == "fail" else ""
    return CaseResult(case, status, tags, "", seconds, detail, cpu_seconds=cpu)


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _read_results(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    data = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=float)
    return {name: data[:, i] for i, name in enumerate(header) if name.lower() != "time"}


def run_sbml_suite(
    suite_dir, cases=None, solver=None, timeout: float | None = 60.0, log=None
) -> list[CaseResult]:
    """Run the semantic cases in ``suite_dir`` (all, or the case numbers in ``cases``).

    ``solver`` defaults to ``grn.ODE(rtol=1e-10, atol=1e-12)``; float64 must be enabled by the
    caller (``jax.config.update("jax_enable_x64", True)``). ``timeout`` bounds each case in
    seconds (SIGALRM, main thread only; None for no bound). ``log`` is called with each
    `CaseResult` as it completes.
    """
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        raise FileNotFoundError(f"no SBML test suite folder at {str(suite_dir)!r}")
    if cases is None:
        folders = sorted(p for p in suite_dir.iterdir() if p.is_dir() and p.name.isdigit())
    else:
        folders = [suite_dir / f"{int(c):05d}" for c in cases]
    results = []
    for folder in folders:
        if timeout:
            previous = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, timeout)
        start = time.perf_counter()
        try:
            result = run_case(folder, solver)
        except _Timeout:
            tags = read_tags(folder / f"{folder.name}-model.m")[0]
            result = CaseResult(
                folder.name, "timeout", tags, f"over {timeout} s", time.perf_counter() - start
            )
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        results.append(result)
        if log is not None:
            log(result)
    return results


def summary_markdown(results: list[CaseResult], command: str = "") -> str:
    """A markdown report: totals, a table per tag, refusal reasons and every failure."""
    counted = [r for r in results if r.status != "excluded"]
    totals = Counter(r.status for r in counted)
    n = len(counted)
    lines = ["# SBML Test Suite, semantic cases: grn.load_sbml + grn.ODE", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    passed = totals["pass"]
    lines += [
        f"Counted cases (time courses without comp/fbc): {n}; passed **{passed}** "
        f"({100 * passed / max(n, 1):.1f} %), failed (wrong numbers) {totals['fail']}, "
        f"refused {totals['refused']}, errors {totals['error']}, timeouts {totals['timeout']}; "
        f"excluded {len(results) - n}.",
        "",
        "| tag | cases | pass | fail | refused | error | timeout |",
        "|---|---|---|---|---|---|---|",
    ]
    per_tag: dict[str, Counter] = defaultdict(Counter)
    for r in counted:
        for tag in r.tags:
            per_tag[tag][r.status] += 1
    for tag in sorted(per_tag):
        c = per_tag[tag]
        lines.append(
            f"| {tag} | {sum(c.values())} | {c['pass']} | {c['fail']} | {c['refused']} | "
            f"{c['error']} | {c['timeout']} |"
        )
    reasons = Counter(_reason(r.message) for r in counted if r.status in ("refused", "error"))
    if reasons:
        lines += ["", "## Refusals and errors by reason", "", "| cases | reason |", "|---|---|"]
        lines += [f"| {k} | {reason} |" for reason, k in reasons.most_common()]
    lines += ["", "## Cases not passing", "", "| case | status | tags | detail |"]
    lines += ["|---|---|---|---|"]
    for r in counted:
        if r.status != "pass":
            detail = (r.worst or r.message).replace("|", "\\|")
            lines.append(f"| {r.case} | {r.status} | {', '.join(r.tags)} | {detail} |")
    times = [r.seconds for r in counted]
    cpus = [r.cpu_seconds for r in counted]
    if times:
        lines += [
            "",
            f"Seconds per case (load + compile + run): median {np.median(times):.2f}, "
            f"max {max(times):.1f}, total {sum(times) / 60:.1f} min; process CPU seconds per "
            f"case (all threads): median {np.median(cpus):.2f}, max {max(cpus):.1f}, total "
            f"{sum(cpus) / 60:.1f} min.",
        ]
    return "\n".join(lines) + "\n"


def _reason(message: str) -> str:
    """A refusal message with the model's label and quoted names dropped (for counting)."""
    text = message.split(": ", 1)[1] if ".xml: " in message else message
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\([^()]*\)", "(…)", text)
    return text[:160]
