"""Observables: what a measurement measures, as a function of a simulated ensemble.

An observable is an arithmetic expression over species names (``"X"``, ``"S / (S + 20)"``,
``"2 * A + B"``) reduced over cells to a statistic: the ensemble mean, variance or standard
deviation, or the fraction of cells whose value exceeds a threshold. Expressions are parsed with
`fitting._formula` (the parser PEtab formulas share) and restricted to numbers, species names,
``+ - * / **``, unary minus and the functions ``exp, log, sqrt, abs, tanh``; nothing is evaluated
with ``eval``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from ._formula import OBSERVABLE, evaluate, parse

STATISTICS = ("mean", "var", "std", "fraction")
"""``mean``/``var``/``std`` of the expression over cells; ``fraction`` of cells above threshold."""


class Observable(eqx.Module):
    r"""A measured quantity: a statistic over cells of an expression over species.

    - ``expression``: arithmetic over species names, e.g. ``"X"`` or ``"S / (S + 20)"``.
    - ``statistic``: ``"mean"`` (default), ``"var"``, ``"std"`` or ``"fraction"`` of cells with
      value above ``threshold`` (below it with ``above=False``).
    - ``threshold`` / ``width``: the fraction uses the soft indicator
      ``sigmoid((f - threshold) / width)`` so that it has gradients (``width`` defaults to 5 % of
      ``|threshold|``, or 0.05); `Observable.hard` gives the hard indicator for reporting.
    - ``scale`` / ``offset``: names of nuisance parameters (found in the `ParameterSpace`), so the
      prediction is ``scale * statistic + offset``; ``None`` means 1 and 0.

    On a moment solution (`grn.LNA`: mean ``mu`` and covariance ``Sigma`` per trajectory) the
    expression is linearised (delta method): mean ``f(mu)``, variance ``grad f^T Sigma grad f``,
    and the fraction above a threshold ``Phi((f(mu) - threshold) / sd)`` under the LNA's Gaussian
    law. A deterministic solution (`grn.ODE`) has variance 0 and no fraction.
    """

    expression: str = eqx.field(static=True)
    statistic: str = eqx.field(static=True)
    threshold: float | None = eqx.field(static=True)
    width: float | None = eqx.field(static=True)
    above: bool = eqx.field(static=True)
    scale: str | None = eqx.field(static=True)
    offset: str | None = eqx.field(static=True)

    def __init__(
        self,
        expression: str,
        statistic: str = "mean",
        threshold: float | None = None,
        width: float | None = None,
        above: bool = True,
        scale: str | None = None,
        offset: str | None = None,
    ):
        if not isinstance(expression, str) or not expression.strip():
            raise TypeError(f"an observable expression must be a non-empty string: {expression!r}")
        parse(expression, OBSERVABLE)
        if statistic not in STATISTICS:
            raise ValueError(f"observable statistic must be one of {STATISTICS}, got {statistic!r}")
        if statistic == "fraction":
            if threshold is None or not math.isfinite(float(threshold)):
                raise ValueError(
                    f"observable {expression!r}: statistic 'fraction' needs a finite threshold="
                )
            threshold = float(threshold)
            width = (0.05 * abs(threshold) or 0.05) if width is None else float(width)
            if not (math.isfinite(width) and width > 0):
                raise ValueError(f"observable {expression!r}: width must be positive, got {width}")
        elif threshold is not None or width is not None:
            raise ValueError(
                f"observable {expression!r}: threshold/width only apply to statistic='fraction'"
            )
        for what, name in (("scale", scale), ("offset", offset)):
            if name is not None and (not isinstance(name, str) or not name.isidentifier()):
                raise ValueError(
                    f"observable {expression!r}: {what} must name a parameter, got {name!r}"
                )
        self.expression = expression.strip()
        self.statistic = statistic
        self.threshold, self.width, self.above = threshold, width, bool(above)
        self.scale, self.offset = scale, offset

    @property
    def names(self) -> tuple[str, ...]:
        """The species names the expression uses."""
        return parse(self.expression, OBSERVABLE)[1]

    @property
    def nuisance(self) -> tuple[str, ...]:
        """Names of this observable's scale and offset parameters."""
        return tuple(n for n in (self.scale, self.offset) if n is not None)

    def check(self, species: Sequence[str], label: str) -> None:
        """Raise if the expression uses a name that is not a species."""
        for name in self.names:
            if name not in species:
                raise ValueError(
                    f"observable {label!r} ({self.expression!r}) uses unknown species {name!r} "
                    f"(species: {list(species)})"
                )

    def values(self, ys, species: Sequence[str]):
        """The expression at every state: ``ys[..., species]`` -> ``ys.shape[:-1]``."""
        tree, names = parse(self.expression, OBSERVABLE)
        columns = {name: ys[..., species.index(name)] for name in names}
        value = evaluate(tree, columns.__getitem__, OBSERVABLE)
        return jnp.broadcast_to(jnp.asarray(value, ys.dtype), ys.shape[:-1])

    def _indicator(self, f, hard: bool):
        z = (f - self.threshold) if self.above else (self.threshold - f)
        return (z > 0).astype(f.dtype) if hard else jax.nn.sigmoid(z / self.width)

    def affine(self, value, params):
        """``scale * value + offset`` with the nuisance parameters from ``params``."""
        if self.scale is not None:
            value = params[self.scale] * value
        if self.offset is not None:
            value = value + params[self.offset]
        return value

    def per_cell(self, ys, species, params):
        """Single-cell values (affine map applied) of an ensemble ``ys`` (cells, times, species)."""
        return self.affine(self.values(ys, species), params)

    def summary(self, ys, species, params, cov=None, deterministic: bool = False, hard=False):
        """The statistic over cells at each time: (cells, times, species) -> (times,).

        ``cov`` (cells, times, species, species) marks a moment solution (each "cell" is a
        Gaussian with mean ``ys`` and covariance ``cov``; the result is for their mixture);
        ``deterministic`` a single trajectory with no spread.
        """
        f = self.values(ys, species)
        if cov is None and not deterministic:
            if self.statistic == "fraction":
                stat = jnp.mean(self._indicator(f, hard), axis=0)
            elif self.statistic == "mean":
                stat = jnp.mean(f, axis=0)
            else:
                var = jnp.var(f, axis=0, ddof=1) if f.shape[0] > 1 else jnp.zeros_like(f[0])
                stat = var if self.statistic == "var" else jnp.sqrt(var)
            return self.affine(stat, params)
        if cov is None:
            if self.statistic == "fraction":
                raise ValueError(
                    f"observable {self.expression!r}: a fraction of cells needs a distribution; "
                    f"use grn.LNA() or a stochastic solver instead of grn.ODE()"
                )
            var_within = jnp.zeros_like(f)
        else:
            grad = jax.vmap(jax.vmap(jax.grad(lambda x: self.values(x, species))))(ys)
            var_within = jnp.einsum("cts,ctsr,ctr->ct", grad, cov, grad)
        if self.statistic == "fraction":
            sd = jnp.sqrt(jnp.maximum(var_within, 1e-30))
            z = (f - self.threshold) / sd  # pyright: ignore[reportOperatorIssue]  (set for fraction)
            stat = jnp.mean(jax.scipy.stats.norm.cdf(z if self.above else -z), axis=0)
        elif self.statistic == "mean":
            stat = jnp.mean(f, axis=0)
        else:
            mean = jnp.mean(f, axis=0)
            var = jnp.mean(var_within + (f - mean) ** 2, axis=0)
            stat = var if self.statistic == "var" else jnp.sqrt(var)
        return self.affine(stat, params)


def as_observable(spec, label: str) -> Observable:
    """An `Observable` from itself, an expression string or a mapping of its arguments."""
    if isinstance(spec, Observable):
        return spec
    if isinstance(spec, str):
        return Observable(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        if "expression" not in spec:
            raise ValueError(f"observable {label!r} needs an 'expression'")
        allowed = {"expression", "statistic", "threshold", "width", "above", "scale", "offset"}
        for key in spec:
            if key not in allowed:
                raise ValueError(
                    f"observable {label!r}: unknown key {key!r} (allowed: {sorted(allowed)})"
                )
        return Observable(**spec)
    raise TypeError(
        f"observable {label!r} must be an expression string, a mapping or a fitting.Observable, "
        f"got {spec!r}"
    )
