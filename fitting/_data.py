"""Measurement and condition tables (PEtab style; the format fixed in DESIGN.md).

Measurement table columns: ``observableId, simulationConditionId, time, measurement,
noiseParameters`` (the measurement's standard deviation) and optionally ``cellId``: rows with a
cell id are single-cell snapshot values (``noiseParameters`` may be empty there), the others
population summaries. The optional time-course condition table has columns ``conditionId, time``
and one column per input; each row sets the inputs' levels from ``time`` on (unlisted inputs 0).
Files are TSV (``.tsv``, ``.txt``) or CSV (``.csv``). Bad rows are rejected with the file and
line, never dropped.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

import grn

MEASUREMENT_COLUMNS = ("observableId", "simulationConditionId", "time", "measurement")
NOISE_COLUMN, CELL_COLUMN = "noiseParameters", "cellId"
CONDITION_COLUMNS = ("conditionId", "time")
DEFAULT_CONDITION = "default"


def _delimiter(path: Path, header: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".txt", ".tab"):
        return "\t"
    return "\t" if "\t" in header else ","


def _read_table(path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line number, row dict) pairs of a TSV/CSV file; checks required columns."""
    path = Path(path)
    text = path.read_text()
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: empty file, expected a header line with {list(required)}")
    reader = csv.reader(lines, delimiter=_delimiter(path, lines[0]))
    header = [h.strip() for h in next(reader)]
    for column in required:
        if column not in header:
            raise ValueError(f"{path}: missing column {column!r} (header: {header})")
    dupes = {h for h in header if header.count(h) > 1}
    if dupes:
        raise ValueError(f"{path}: duplicate column {sorted(dupes)[0]!r}")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ValueError(
                f"{path} line {line}: {len(cells)} fields for {len(header)} columns {header}"
            )
        rows.append((line, {h: c.strip() for h, c in zip(header, cells)}))
    return header, rows


def _number(where: str, column: str, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {column} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {column} must be finite, got {text!r}")
    return value


class Measurements:
    """Data to fit: one entry per measurement-table row, plus per-condition input schedules.

    Build with `Measurements.read(measurements, conditions=None)` from files or
    `Measurements.from_rows(rows, conditions=None)` from dicts with the same column names
    (``conditions`` then maps a condition id to rows ``{"time": t, input: level, ...}``).
    Attributes are NumPy arrays over rows: ``observable``, ``condition``, ``cell`` (str, ``""``
    for population rows), ``time``, ``value``, ``sigma`` (NaN where not given); ``where[i]``
    names row ``i``'s source ("file line N") for error messages.
    """

    def __init__(self, rows, conditions=None, source: str = "measurements", where=None):
        self.source = source
        self._parse_rows(rows, where)
        self.condition_levels = None if conditions is None else self._parse_conditions(conditions)
        self._check_conditions()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def read(cls, measurements, conditions=None) -> Measurements:
        """Load the measurement table and, optionally, the time-course condition table."""
        path = Path(measurements)
        _, rows = _read_table(path, MEASUREMENT_COLUMNS)
        where = [f"{path} line {line}" for line, _ in rows]
        levels = None
        if conditions is not None:
            cpath = Path(conditions)
            header, crows = _read_table(cpath, CONDITION_COLUMNS)
            levels = {}
            for line, row in crows:
                cid = row["conditionId"]
                if not cid:
                    raise ValueError(f"{cpath} line {line}: empty conditionId")
                entry = {"time": row["time"], "__where__": f"{cpath} line {line}"}
                entry.update({h: row[h] for h in header if h not in CONDITION_COLUMNS})
                levels.setdefault(cid, []).append(entry)
        return cls([r for _, r in rows], levels, source=str(path), where=where)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping], conditions: Mapping | None = None):
        """Measurements from row dicts (columns as in the table) and optional condition rows."""
        rows = list(rows)
        return cls(rows, conditions, where=[f"row {i}" for i in range(len(rows))])

    def _parse_rows(self, rows, where):
        obs, cond, cell, time, value, sigma = [], [], [], [], [], []
        for i, row in enumerate(rows):
            at = where[i] if where else f"row {i}"
            for column in MEASUREMENT_COLUMNS:
                if column not in row or str(row[column]).strip() == "":
                    raise ValueError(f"{at}: missing {column}")
            cid = str(row.get(CELL_COLUMN, "") or "").strip()
            t = _number(at, "time", row["time"])
            if t < 0:
                raise ValueError(f"{at}: negative time {t}")
            noise = str(row.get(NOISE_COLUMN, "") or "").strip()
            if noise == "":
                if not cid:
                    raise ValueError(
                        f"{at}: missing {NOISE_COLUMN} (the measurement's standard deviation)"
                    )
                s = math.nan
            else:
                s = _number(at, NOISE_COLUMN, noise)
                if s <= 0:
                    raise ValueError(f"{at}: {NOISE_COLUMN} must be positive, got {s}")
            obs.append(str(row["observableId"]).strip())
            cond.append(str(row["simulationConditionId"]).strip())
            cell.append(cid)
            time.append(t)
            value.append(_number(at, "measurement", row["measurement"]))
            sigma.append(s)
        if not obs:
            raise ValueError(f"{self.source}: no measurements")
        self.observable = np.array(obs, dtype=object)
        self.condition = np.array(cond, dtype=object)
        self.cell = np.array(cell, dtype=object)
        self.time = np.array(time, np.float64)
        self.value = np.array(value, np.float64)
        self.sigma = np.array(sigma, np.float64)
        self.where = list(where) if where else [f"row {i}" for i in range(len(obs))]

    def _parse_conditions(self, conditions: Mapping) -> dict[str, tuple[np.ndarray, dict, list]]:
        parsed = {}
        for cid, entries in conditions.items():
            times, levels, places = [], {}, []
            entries = list(entries)
            for k, entry in enumerate(entries):
                at = entry.get("__where__", f"condition {cid!r} row {k}")
                t = _number(at, "time", entry.get("time"))
                if t < 0:
                    raise ValueError(f"{at}: negative time {t}")
                times.append(t)
                places.append(at)
                for name, level in entry.items():
                    if name in ("time", "__where__"):
                        continue
                    text = str(level).strip()
                    levels.setdefault(name, [None] * len(entries))
                    levels[name][k] = 0.0 if text == "" else _number(at, name, level)
            order = np.argsort(times, kind="stable")
            times = np.asarray(times)[order]
            if np.any(np.diff(times) == 0):
                k = int(np.argmax(np.diff(times) == 0)) + 1
                raise ValueError(
                    f"{places[order[k]]}: condition {cid!r} sets its inputs twice at time "
                    f"{times[k]}"
                )
            values = {
                name: np.array([0.0 if v is None else v for v in col])[order]
                for name, col in levels.items()
            }
            parsed[str(cid)] = (times, values, [places[i] for i in order])
        return parsed

    def _check_conditions(self):
        ids = self.condition_ids
        if self.condition_levels is None:
            if len(ids) > 1:
                i = int(np.argmax(self.condition != ids[0]))
                raise ValueError(
                    f"{self.where[i]}: condition {self.condition[i]!r} differs from "
                    f"{ids[0]!r}; several conditions need a condition table"
                )
            return
        for i, cid in enumerate(self.condition):
            if cid not in self.condition_levels:
                raise ValueError(
                    f"{self.where[i]}: unknown condition {cid!r} (conditions: "
                    f"{list(self.condition_levels)})"
                )

    # -- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.time.shape[0]

    @property
    def condition_ids(self) -> tuple[str, ...]:
        """Condition ids in order of first appearance in the measurement table."""
        return tuple(dict.fromkeys(self.condition.tolist()))

    @property
    def observable_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.observable.tolist()))

    @property
    def is_cell(self) -> np.ndarray:
        """Rows that are single-cell snapshot values."""
        return self.cell != ""

    def check(self, observables: Sequence[str], inputs: Sequence[str]) -> None:
        """Raise, naming file and line, for rows with an unknown observable or input."""
        for i, name in enumerate(self.observable):
            if name not in observables:
                raise ValueError(
                    f"{self.where[i]}: unknown observable {name!r} (observables: "
                    f"{list(observables)})"
                )
        for cid, (_, values, places) in (self.condition_levels or {}).items():
            for name in values:
                if name not in inputs:
                    raise ValueError(
                        f"{places[0]}: condition {cid!r} sets unknown input {name!r} "
                        f"(the network's inputs: {list(inputs)})"
                    )

    def schedule(self, condition: str) -> grn.Schedule | None:
        """The piecewise-constant `grn.Schedule` of ``condition`` (None: all inputs 0)."""
        if self.condition_levels is None:
            return None
        times, values, _ = self.condition_levels[condition]
        if not values:
            return None
        return grn.Schedule(times=times.tolist(), values={k: v.tolist() for k, v in values.items()})

    def write(self, path) -> Path:
        """Write the measurement table (TSV unless ``path`` ends in ``.csv``)."""
        path = Path(path)
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
        columns = [*MEASUREMENT_COLUMNS, NOISE_COLUMN] + ([CELL_COLUMN] if any(self.cell) else [])
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
            writer.writerow(columns)
            for i in range(len(self)):
                row = [
                    self.observable[i],
                    self.condition[i],
                    repr(float(self.time[i])),
                    repr(float(self.value[i])),
                    "" if math.isnan(self.sigma[i]) else repr(float(self.sigma[i])),
                ]
                writer.writerow(row + ([self.cell[i]] if len(columns) == 6 else []))
        return path

    def write_conditions(self, path) -> Path | None:
        """Write the condition table (if any), one column per input named in it."""
        if self.condition_levels is None:
            return None
        path = Path(path)
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
        inputs = sorted({n for _, v, _ in self.condition_levels.values() for n in v})
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
            writer.writerow([*CONDITION_COLUMNS, *inputs])
            for cid, (times, values, _) in self.condition_levels.items():
                for k, t in enumerate(times):
                    levels = [repr(float(values[n][k])) if n in values else "0" for n in inputs]
                    writer.writerow([cid, repr(float(t)), *levels])
        return path
