"""Random gene-regulatory networks of a given number of reactions, for size-scaling benchmarks.

``random_grn_spec(R, seed)`` builds a `ModelSpec` (the benchmarks' neutral model description,
turned into a grn network, a GillesPy2 model and the JAX peers' models) with exactly ``R``
reactions:

* ``N`` genes, each with an mRNA ``m<i>`` and a protein ``p<i>``; ``N`` is the integer nearest
  ``R / 4.5`` within ``[R/5, R/4]`` (so 20, 100, 500 reactions give 4, 22, 111 genes).
* A random sparse regulator graph with ``E = R - 3N`` edges: every gene gets one regulator drawn
  uniformly from all genes (itself included: autoregulation), and ``E - N`` genes drawn without
  replacement get a second, distinct one (in-degree 1 or 2).
* Per edge ``j -> i`` one transcription reaction ``-> m<i>`` at ``a0 + a * H(p<j>)`` with
  ``H(x) = r^n / (1 + r^n)`` (activation, probability 1/2) or ``1 / (1 + r^n)`` (repression),
  ``r = x / K``: the promoters' contributions add.
* Per gene: translation ``m<i> -> m<i> + p<i>`` at ``b m``, degradation ``m<i> ->`` at ``dm m``
  and ``p<i> ->`` at ``dp p``.

Rates (per hour) are drawn independently, uniformly: ``a`` in [2, 6], ``a0 = 0.05``, ``n`` in
[1.5, 3], ``K`` in [5, 40] (typical protein counts are 10-60), ``b`` in [1, 3], ``dm`` in
[0.5, 1.5], ``dp`` in [0.1, 0.3]. A cell fires about 18 reactions per gene per hour. Everything
starts at zero. The same ``(R, seed)`` gives the same network (NumPy's PCG64 generator).
"""

from __future__ import annotations

import numpy as np
from _peers import ModelSpec, ReactionSpec

T_END = 20.0
"""Simulated hours: about 18 x N x 20 events per cell (1.4e3 at 20 reactions, 4e4 at 500)."""


def _hill(reg: str, kind: str, names: dict[str, str], form: str):
    """``a0 + a H(x[reg])`` as a grn propensity over name -> value mappings."""
    import jax.numpy as jnp

    a0, a, k, n = (names[q] for q in ("a0", "a", "K", "n"))

    def rate(x, p, u):
        r = x[reg] / p[k]
        if form == "explog":  # exp(n log r): the same function, vectorised by XLA
            act = 1 / (1 + jnp.exp(-p[n] * jnp.log(r)))
            return p[a0] + p[a] * (act if kind == "act" else 1 - act)
        power = r ** p[n]
        return p[a0] + p[a] * (power / (1 + power) if kind == "act" else 1 / (1 + power))

    return rate


def random_grn_spec(n_reactions: int, seed: int = 0, hill: str = "pow") -> ModelSpec:
    """A random gene-regulatory network with exactly ``n_reactions`` reactions (module docstring).

    ``hill`` is how grn's Hill terms are written (``"pow"``: ``r**n``; ``"explog"``: through
    ``exp(n log r)``); GillesPy2's strings always use ``pow``.
    """
    if not isinstance(n_reactions, int) or n_reactions < 4:
        raise ValueError(f"n_reactions must be an integer >= 4, got {n_reactions!r}")
    lo, hi = -(-n_reactions // 5), n_reactions // 4
    if lo > hi:
        raise ValueError(
            f"no gene count N gives {n_reactions} reactions (3N + E with N <= E <= 2N); "
            f"try {4 * hi} or {5 * lo}"
        )
    n_genes = min(max(round(n_reactions / 4.5), lo), hi)
    n_edges = n_reactions - 3 * n_genes
    rng = np.random.default_rng(seed)
    regulators = [[int(rng.integers(n_genes))] for _ in range(n_genes)]
    for i in rng.choice(n_genes, size=n_edges - n_genes, replace=False):
        second = int(rng.integers(n_genes - 1))
        regulators[i].append(second + (second >= regulators[i][0]))

    params: dict[str, float] = {}
    rxns: list[ReactionSpec] = []
    for i in range(1, n_genes + 1):
        m, p = f"m{i}", f"p{i}"
        for e, j in enumerate(regulators[i - 1]):
            kind = "act" if rng.random() < 0.5 else "rep"
            names = {q: f"{q}_{i}_{e}" for q in ("a0", "a", "K", "n")}
            params[names["a0"]] = 0.05
            params[names["a"]] = float(rng.uniform(2.0, 6.0))
            params[names["K"]] = float(rng.uniform(5.0, 40.0))
            params[names["n"]] = float(rng.uniform(1.5, 3.0))
            power = f"pow(p{j + 1}/{names['K']},{names['n']})"
            h = f"{power}/(1+{power})" if kind == "act" else f"1/(1+{power})"
            rxns.append(
                ReactionSpec(
                    f"tx_{i}_{e}",
                    {},
                    {m: 1},
                    f"{names['a0']}+{names['a']}*{h}",
                    _hill(f"p{j + 1}", kind, names, hill),
                )
            )
        for q, lo_q, hi_q in (("b", 1.0, 3.0), ("dm", 0.5, 1.5), ("dp", 0.1, 0.3)):
            params[f"{q}_{i}"] = float(rng.uniform(lo_q, hi_q))
        rxns += [
            ReactionSpec(f"tl_{i}", {m: 1}, {m: 1, p: 1}, f"b_{i}*{m}", rate_param=f"b_{i}"),
            ReactionSpec(f"degm_{i}", {m: 1}, {}, f"dm_{i}*{m}", rate_param=f"dm_{i}"),
            ReactionSpec(f"degp_{i}", {p: 1}, {}, f"dp_{i}*{p}", rate_param=f"dp_{i}"),
        ]
    species = [f"{k}{i}" for i in range(1, n_genes + 1) for k in ("m", "p")]
    return ModelSpec(
        name=f"random_grn_{n_reactions}",
        species=species,
        params=params,
        x0=dict.fromkeys(species, 0),
        t_end=T_END,
        reactions=rxns,
    )
