"""Draw the melanoma model's regulatory network: docs/melanoma_network.png and .svg (matplotlib).

Species-to-species edges are read from the model itself, not typed in: for every reaction ``r``
and species ``s``, the sign of the derivative of its macroscopic rate ``da_r/dx_s`` (float64,
forward-mode autodiff) at 24 random states around the untreated steady state, times the sign of
the reaction's net change of each species ``t != s`` it changes, gives an edge ``s -> t``
(activation, +) or ``s -| t`` (repression, -); e.g. ERK (E) lowering BIM synthesis is ``E -| B``,
antioxidant raising ROS removal is ``A -| R``. A reaction whose rate grows with the species it
produces is a positive self-loop (chromatin feedback on M, SOX10 autoactivation). Mass-action
decay of a species itself and free-pool factors (E_T - E) are not regulation and are dropped.

Drug inputs are drawn as boxes with an edge to the node whose activity they block, checked
against the model: each input must appear in a rate law of a reaction changing a species of that
node's module. Layout: one panel per module (ERK; ROS/antioxidant; NF-kB/IkBa; waves, chromatin
and identity; apoptosis), positions set by hand for legibility.

Usage (from the repository root): ``python docs/network_diagram.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grn.models._melanoma import OMEGA, melanoma  # noqa: E402

NAMES = {
    "E": "pERK",
    "A": "antioxidant",
    "R": "ROS",
    "Nn": "nuclear RelA",
    "Im": "IκBα mRNA",
    "I": "IκBα",
    "W1": "early wave λ1",
    "M": "remodelled\nchromatin",
    "S": "SOX10/MITF",
    "W2": "late wave λ2",
    "B": "BIM",
    "Bc": "MCL1/BCL2",
    "C": "BIM·BCL2",
}
POS = {
    "E": (2.0, 8.2),
    "A": (0.9, 5.0),
    "R": (3.4, 5.0),
    "I": (5.9, 7.6),
    "Im": (8.4, 7.6),
    "Nn": (7.1, 4.9),
    "W1": (11.2, 7.6),
    "W2": (14.4, 7.6),
    "M": (11.2, 3.8),
    "S": (14.4, 3.8),
    "B": (1.0, 1.0),
    "Bc": (5.8, 1.0),
    "C": (3.4, -0.6),
}
MODULES = {  # title, members, colour, (x0, y0, x1, y1) of the panel, title corner
    "erk": ("ERK", ("E",), "#dbe9f6", (0.6, 7.3, 3.4, 9.3), "tl"),
    "ros": ("ROS / antioxidant", ("A", "R"), "#fde2cf", (-0.2, 4.1, 4.6, 6.2), "tl"),
    "nfkb": ("NF-κB / IκBα", ("Nn", "Im", "I"), "#e5dcf2", (4.8, 4.0, 9.6, 8.7), "tl"),
    "slow": (
        "waves, chromatin, identity",
        ("W1", "W2", "M", "S"),
        "#dcefdc",
        (9.9, 2.7, 15.7, 8.7),
        "br",
    ),
    "apo": ("apoptosis", ("B", "Bc", "C"), "#f6dada", (-0.3, -1.5, 7.1, 2.1), "bl"),
}
INPUT_EDGES = {  # input -> (target node, position of its box, what it blocks)
    "BRAFi": ("E", (-0.9, 9.6), "BRAF → ERK"),
    "NFKBi": ("Nn", (4.9, 2.9), "IKK"),
    "NAC": ("R", (2.3, 3.1), "ROS"),
    "EPIi": ("M", (8.9, 2.4), "histone modifiers"),
    "BH3i": ("C", (1.0, -2.3), "BIM sequestration"),
}
EXTRA_INPUT_EDGES = [("BRAFi", "R", +1)]  # the drug also raises ROS production (rho)
ACT, REP, DRUG = "#1f7a3a", "#b8322a", "#5b3a99"
BOX_W, BOX_H = 1.7, 0.78


def regulatory_edges(net, samples: int = 24, seed: int = 0):
    """{(source, target): sign} and the set of positively self-regulated species, from the signs
    of d rate / d species at random states around x0 (see the module docstring)."""
    with jax.enable_x64(True):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in net.params.items()}
        x0 = np.asarray(net.x0, np.float64)
        rng = np.random.default_rng(seed)
        jac = jax.jit(jax.jacfwd(net.rates))
        signs = []
        for _ in range(samples):
            x = x0 * rng.uniform(0.3, 3.0, x0.shape) + rng.uniform(0.0, 5.0, x0.shape)
            u = rng.uniform(0.0, 1.0, len(net.inputs))
            signs.append(np.sign(np.asarray(jac(jnp.asarray(x), p, jnp.asarray(u)))))
    signs = np.array(signs)  # (samples, reactions, species)
    nu = net.stoichiometry
    edges, self_loops = {}, set()
    for r in range(nu.shape[0]):
        for s, source in enumerate(net.species):
            dep = signs[:, r, s]
            if not dep.any():
                continue
            if nu[r, s] > 0 and net.reactant_matrix[r, s] == 0 and (dep > 0).any():
                self_loops.add(source)
            for t in np.flatnonzero(nu[r]):
                if t == s:
                    continue
                if (dep > 0).any() and (dep < 0).any():
                    raise ValueError(f"{net.reactions[r].label}: {source} acts with both signs")
                sign = int(np.sign(dep[dep != 0][0]) * np.sign(nu[r, t]))
                key = (source, net.species[t])
                if edges.setdefault(key, sign) != sign:
                    raise ValueError(f"edge {key} has both signs")
    return edges, self_loops


def check_inputs(net) -> None:
    """Each drawn input edge must match the model: the input is read by a reaction that changes a
    species of the target's module."""
    with jax.enable_x64(True):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in net.params.items()}
        du = np.asarray(
            jax.jacfwd(net.rates, argnums=2)(
                jnp.asarray(net.x0, jnp.float64), p, jnp.full(len(net.inputs), 0.5)
            )
        )
    for name, (target, _, _) in INPUT_EDGES.items():
        reactions = np.flatnonzero(du[:, net.inputs.index(name)])
        changed = {net.species[t] for r in reactions for t in np.flatnonzero(net.stoichiometry[r])}
        if OMEGA[target] not in {OMEGA[s] for s in changed}:
            raise ValueError(f"input {name} reads no reaction of {target}'s module")


def draw(out_stem: Path) -> list[Path]:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    net = melanoma()
    edges, self_loops = regulatory_edges(net)
    check_inputs(net)

    fig = Figure(figsize=(15.0, 10.5))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.93))
    ax.set_xlim(-2.6, 16.0)
    ax.set_ylim(-3.0, 10.3)
    ax.set_aspect("equal")
    ax.axis("off")

    for title, _, fill, (x0, y0, x1, y1), corner in MODULES.values():
        ax.add_patch(
            FancyBboxPatch(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                boxstyle="round,pad=0.05,rounding_size=0.3",
                fc=fill,
                ec="none",
                alpha=0.55,
                zorder=0,
            )  # fmt: skip
        )
        bottom, right = corner[0] == "b", corner[1] == "r"  # a corner no edge crosses
        ax.text(x1 - 0.15 if right else x0 + 0.15, y0 + 0.12 if bottom else y1 - 0.12, title,
                ha="right" if right else "left", va="bottom" if bottom else "top", fontsize=11,
                style="italic", color="0.25", zorder=1)  # fmt: skip

    boxes = {}

    def box(name, xy, text, fc, ec, ls="-"):
        x, y = xy
        patch = FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, zorder=3,
                               boxstyle="round,pad=0.04,rounding_size=0.15", fc=fc, ec=ec,
                               lw=1.4, ls=ls)  # fmt: skip
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=10.5, zorder=4)
        boxes[name] = patch

    for s in net.species:
        box(s, POS[s], f"$\\bf{{{s}}}$\n{NAMES[s]}", "white", "0.2")
        if NAMES[s].count("\n"):  # two-line names need a taller box
            boxes[s].set_height(BOX_H + 0.32)
            boxes[s].set_y(POS[s][1] - (BOX_H + 0.32) / 2)
    for name, (_, xy, what) in INPUT_EDGES.items():
        box(name, xy, f"$\\bf{{{name}}}$\n{what}", "#f3effa", DRUG, ls="--")
        boxes[name].set_width(BOX_W + 0.4)
        boxes[name].set_x(xy[0] - (BOX_W + 0.4) / 2)

    def arrow(a, b, sign, rad=0.0, colour_=None, two_headed=False, lw=1.6):
        style = "-|>" if sign > 0 else "-["
        if two_headed:
            style = "<|-|>" if sign > 0 else "]-["
        kw = {"widthB": 5.0, "lengthB": 0.0} if sign < 0 else {"head_width": 4, "head_length": 7}
        if sign < 0 and two_headed:
            kw.update(widthA=5.0, lengthA=0.0)
        c = colour_ or (ACT if sign > 0 else REP)
        patch = FancyArrowPatch(
            posA=POS.get(a) or INPUT_EDGES[a][1], posB=POS[b], patchA=boxes[a], patchB=boxes[b],
            arrowstyle=f"{style}", mutation_scale=1.0, connectionstyle=f"arc3,rad={rad}",
            color=c, lw=lw, shrinkA=2, shrinkB=3, zorder=2,
        )  # fmt: skip
        patch.set_arrowstyle(style, **kw)
        ax.add_patch(patch)

    # curvature per edge, chosen for legibility (0: straight)
    rad = {("W2", "E"): 0.28, ("W2", "Bc"): -0.5, ("E", "B"): 0.9, ("Nn", "W2"): 0.12,
           ("W1", "W2"): 0.25, ("W2", "W1"): 0.25, ("A", "R"): 0.3, ("R", "A"): 0.3,
           ("Nn", "Bc"): 0.0, ("E", "A"): 0.1}  # fmt: skip
    done = set()
    for (a, b), sign in sorted(edges.items()):
        if (a, b) in done:
            continue
        if edges.get((b, a)) == sign:  # mutual, same sign: one two-headed edge
            done.add((b, a))
            arrow(a, b, sign, rad=rad.get((a, b), -rad.get((b, a), 0.0)), two_headed=True)
        else:
            arrow(a, b, sign, rad=rad.get((a, b), 0.0))
    for s in sorted(self_loops):
        x, y = POS[s]
        top = boxes[s].get_y() + boxes[s].get_height() + 0.04
        loop = FancyArrowPatch(posA=(x + 0.35, top), posB=(x - 0.35, top),
                               connectionstyle="arc3,rad=1.4", arrowstyle="-|>",
                               mutation_scale=12, color=ACT, lw=1.6, zorder=2)  # fmt: skip
        ax.add_patch(loop)
    for name, (target, _, _) in INPUT_EDGES.items():
        arrow(name, target, -1, colour_=DRUG, lw=2.0)
    for name, target, sign in EXTRA_INPUT_EDGES:
        arrow(name, target, sign, rad=0.25, colour_=DRUG, lw=2.0)

    handles = [
        Line2D([], [], color=ACT, lw=2, marker=">", markersize=7, label="activates"),
        Line2D([], [], color=REP, lw=2, marker="|", markersize=11, mew=2, label="represses"),
        Line2D([], [], color=DRUG, lw=2, label="drug input (dashed box)"),
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=11, frameon=False)
    fig.suptitle(
        f"grn.models.melanoma(): BRAF-inhibitor stress response ({len(net.species)} species, "
        f"{net.n_reactions} reactions); edges read from the rate laws",
        fontsize=13,
    )
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130)
    with rc_context({"svg.hashsalt": "grn"}):  # stable element ids: reproducible files
        fig.savefig(paths[1], metadata={"Date": None})
    return paths


if __name__ == "__main__":
    for path in draw(ROOT / "docs" / "melanoma_network"):
        print(f"wrote {path.relative_to(ROOT)}")
