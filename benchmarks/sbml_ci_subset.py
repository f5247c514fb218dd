"""Pick the SBML Test Suite cases that CI runs (issue 17): every supported tag, cheaply.

From a full run's table (``grn sbml-suite --out DIR`` writes ``DIR/sbml_semantic.csv``: case,
status, tags, seconds), a tag is *supported* when it is defined in the suite's ``all-tags.txt``
and at least one passing case carries it. The subset is a greedy weighted set cover of the
supported tags by passing cases: repeatedly take the case that covers the most still-uncovered
tags per CPU second of its run (ties: fewer seconds, then the lower case number), until every
supported tag is covered. ``--copy`` writes the chosen cases (model file at the level the runner
reads, settings, results and the ``-model.m`` that lists the tags) into ``tests/data/sbml-semantic``
and drops the cases there that the subset no longer holds.

Usage (from the repository root)::

    python benchmarks/sbml_ci_subset.py /tmp/sbmlfull/sbml_semantic.csv \
        --suite ../shared/sbml-semantic --copy
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

DATA = HERE.parent / "tests" / "data" / "sbml-semantic"


def defined_tags(suite: Path) -> set[str]:
    """The tag names in ``all-tags.txt`` (comments and blank lines skipped)."""
    tags = set()
    for line in (suite / "all-tags.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tags.add(line.split("\t", 1)[0].strip())
    return tags


def read_run(table: Path) -> list[tuple[str, str, frozenset[str], float]]:
    """(case, status, tags, cost) per row of a run's ``sbml_semantic.csv``; the cost is the
    case's process CPU seconds (its wall seconds in tables without them)."""
    with open(table, newline="") as fh:
        return [
            (
                row["case"],
                row["status"],
                frozenset(row["tags"].split()),
                float(row.get("cpu_seconds") or row["seconds"]),
            )
            for row in csv.DictReader(fh)
        ]


def choose(rows, tags: set[str]) -> list[str]:
    """The greedy weighted set cover of the module docstring; returns case numbers, sorted."""
    passing = [(case, t & tags, max(s, 1e-3)) for case, status, t, s in rows if status == "pass"]
    uncovered = set().union(*(t for _, t, _ in passing)) if passing else set()
    chosen = []
    while uncovered:
        case, covers, _ = max(
            passing,
            key=lambda r: (len(r[1] & uncovered) / r[2], -r[2], -int(r[0])),
        )
        chosen.append(case)
        uncovered -= covers
    return sorted(chosen)


def copy_cases(suite: Path, cases: list[str], dest: Path = DATA) -> None:
    """Copy each case's files the runner reads into ``dest``; remove other case folders there."""
    from grn.io._sbml_suite import case_file

    for old in dest.iterdir():
        if old.is_dir() and old.name.isdigit() and old.name not in cases:
            shutil.rmtree(old)
    for case in cases:
        src, out = suite / case, dest / case
        out.mkdir(parents=True, exist_ok=True)
        files = [case_file(src, case)] + [
            src / f"{case}-{suffix}" for suffix in ("settings.txt", "results.csv", "model.m")
        ]
        for f in files:
            shutil.copyfile(f, out / f.name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("table", type=Path, help="sbml_semantic.csv of a full run")
    parser.add_argument("--suite", type=Path, required=True, help="the sbml-semantic/ folder")
    parser.add_argument("--copy", action="store_true", help="write tests/data/sbml-semantic")
    args = parser.parse_args(argv)
    rows = read_run(args.table)
    tags = defined_tags(args.suite)
    cases = choose(rows, tags)
    by_case = {r[0]: r for r in rows}
    supported = set().union(*(r[2] & tags for r in rows if r[1] == "pass"))
    seconds = sum(by_case[c][3] for c in cases)
    print(f"{len(cases)} cases cover {len(supported)} supported tags ({seconds:.0f} s CPU):")
    for c in cases:
        print(f"  {c} ({by_case[c][3]:.1f} s): {' '.join(sorted(by_case[c][2] & tags))}")
    never = sorted(tags - supported)
    print("tags no passing case carries:", " ".join(never) or "none")
    if args.copy:
        copy_cases(args.suite, cases)
        print(f"copied into {DATA}")


if __name__ == "__main__":
    main()
