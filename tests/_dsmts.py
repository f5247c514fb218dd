"""Reading the DSMTS reference data (Evans, Gillespie & Wilkinson 2008) and scoring a simulation.

The data live outside the repository, in ``$GRN_SHARED/dsmts`` or else ``../shared/dsmts`` beside
the clone. Each case folder ``NNNNN`` holds ``NNNNN-results.csv`` (``time, X-mean, ..., X-sd, ...``,
columns in any order) and ``NNNNN-settings.txt`` (time grid, species, pass ranges).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def shared_dsmts_dir() -> Path | None:
    """The DSMTS folder, or None when it is not there."""
    override = os.environ.get("GRN_SHARED")
    base = Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared"
    path = base / "dsmts"
    return path if (path / "INDEX.md").is_file() else None


def _parse_range(text: str) -> tuple[float, float]:
    lo, hi = text.strip().strip("()").split(",")
    return float(lo), float(hi)


@dataclass(frozen=True)
class Reference:
    """One case's reference: output times, per-species exact mean and sd, and pass ranges."""

    case: str
    times: np.ndarray
    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    mean_range: tuple[float, float]
    sd_range: tuple[float, float]

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.mean)


def load_reference(root: Path, case: str) -> Reference:
    folder = root / case
    settings = {}
    for line in (folder / f"{case}-settings.txt").read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            settings[key.strip()] = value.strip()
    with open(folder / f"{case}-results.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    data = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=np.float64)
    columns = {name: data[:, i] for i, name in enumerate(header)}
    species = [s.strip() for s in settings["variables"].split(",") if s.strip()]
    start, duration, steps = (float(settings[k]) for k in ("start", "duration", "steps"))
    times = columns["time"]
    expected = np.linspace(start, start + duration, int(steps) + 1)
    if not np.allclose(times, expected):
        raise ValueError(f"case {case}: results times {times} do not match the settings grid")
    return Reference(
        case=case,
        times=times,
        mean={s: columns[f"{s}-mean"] for s in species},
        sd={s: columns[f"{s}-sd"] for s in species},
        mean_range=_parse_range(settings["meanRange"]),
        sd_range=_parse_range(settings["sdRange"]),
    )


@dataclass(frozen=True)
class Score:
    """DSMTS statistics of one species: Z_t (mean test), Y_t (sd test), NaN where sd_t = 0."""

    species: str
    z: np.ndarray
    y: np.ndarray
    mean_fails: np.ndarray  # times where Z_t is outside the mean range
    sd_fails: np.ndarray  # times where Y_t is outside the sd range
    exact_mismatch: np.ndarray  # times with sd_t = 0 where some sample differs from the mean


def score(ref: Reference, species: str, samples) -> Score:
    """Score ``samples`` (cells, times) of one species against the reference (user guide §3).

    Z_t = sqrt(n) (Xbar_t - mu_t) / sigma_t and Y_t = sqrt(n / 2) (S_t^2 / sigma_t^2 - 1), with
    S_t^2 the unbiased sample variance; where sigma_t = 0 every sample must equal mu_t exactly.
    """
    x = np.asarray(samples, np.float64)
    n = x.shape[0]
    mu, sigma = ref.mean[species], ref.sd[species]
    if x.shape[1] != mu.shape[0]:
        raise ValueError(f"{x.shape[1]} sampled times for {mu.shape[0]} reference times")
    degenerate = sigma == 0
    safe = np.where(degenerate, 1.0, sigma)
    z = np.where(degenerate, np.nan, np.sqrt(n) * (x.mean(axis=0) - mu) / safe)
    y = np.where(degenerate, np.nan,
                 np.sqrt(n / 2) * (x.var(axis=0, ddof=1) / safe**2 - 1.0))
    (lo_m, hi_m), (lo_s, hi_s) = ref.mean_range, ref.sd_range
    mean_fails = ref.times[~degenerate & ~((z > lo_m) & (z < hi_m))]
    sd_fails = ref.times[~degenerate & ~((y > lo_s) & (y < hi_s))]
    mismatch = ref.times[degenerate & np.any(x != mu, axis=0)]
    return Score(species, z, y, mean_fails, sd_fails, mismatch)
