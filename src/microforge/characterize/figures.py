"""Figures of descriptors: one per image, and one comparing two sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..data.phase_map import CLASS_NAMES, to_pseudo_rgb  # noqa: E402
from .topology import PI_RANGE  # noqa: E402

# Line colours per class: the map's red and cyan, and a darker yellow that shows on white.
LINE_COLOURS = {"primary_alpha": "#d62728", "beta": "#17becf", "secondary_alpha": "#b8860b"}
LABELS = {"primary_alpha": "primary α", "beta": "β", "secondary_alpha": "secondary α"}


def image_figure(grey: np.ndarray, phase_map: np.ndarray, d: dict[str, Any], title: str, out: str | Path) -> None:
    """Micrograph, map overlay, S2 and lineal-path curves, and the persistence image."""
    fig, ax = plt.subplots(1, 4, figsize=(14, 3.6))
    ax[0].imshow(grey, cmap="gray", vmin=0, vmax=1)
    ax[0].set_title(title, fontsize=9)
    overlay = 0.55 * np.repeat(np.asarray(grey)[..., None], 3, -1) + 0.45 * to_pseudo_rgb(phase_map) / 255.0
    ax[1].imshow(np.clip(overlay, 0, 1))
    fr = d["phase_fractions"]
    ax[1].set_title("map: " + ", ".join(f"{LABELS[k]} {100 * v:.1f}%" for k, v in fr.items()), fontsize=8)
    for a in ax[:2]:
        a.axis("off")
    for name in CLASS_NAMES:
        ax[2].plot(d["s2"]["r"], d["s2"][name], color=LINE_COLOURS[name], label=f"S2 {LABELS[name]}")
        ax[2].plot(
            d["lineal_path"]["r"], d["lineal_path"][name], color=LINE_COLOURS[name], ls="--", label=f"L {LABELS[name]}"
        )
    ax[2].set_xlabel("r [px]")
    ax[2].set_ylabel("probability")
    ax[2].set_title("two-point correlation (solid), lineal path (dashed)", fontsize=8)
    ax[2].legend(fontsize=6, ncol=2)
    im = ax[3].imshow(
        np.asarray(d["persistence"]["image"]), origin="lower", extent=PI_RANGE, cmap="magma", aspect="auto"
    )
    ax[3].set_xlabel("birth (grey level)")
    ax[3].set_ylabel("persistence")
    ax[3].set_title(f"H1 persistence image ({d['persistence']['h1_pairs']} pairs)", fontsize=8)
    fig.colorbar(im, ax=ax[3], fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def compare_figure(c: dict[str, Any], out: str | Path) -> None:
    """Mean S2 and L curves of both sets, phase fractions, chord histograms and the PI PCA."""
    a, b = c["sets"]
    fig, ax = plt.subplots(2, 3, figsize=(14, 7.5))
    for k, key in enumerate(("s2", "lineal_path")):
        block = c[key]
        for name in CLASS_NAMES:
            eps = block[name]["discrepancy_pct"]
            ax[0, k].plot(block["r"], block[name][f"mean_{a}"], color=LINE_COLOURS[name], label=f"{LABELS[name]} {a}")
            ax[0, k].plot(
                block["r"],
                block[name][f"mean_{b}"],
                color=LINE_COLOURS[name],
                ls="--",
                label=f"{LABELS[name]} {b} (ε {eps:.1f}%)" if eps is not None else f"{LABELS[name]} {b}",
            )
        ax[0, k].set_title("two-point correlation S2" if key == "s2" else "lineal path L", fontsize=9)
        ax[0, k].set_xlabel("r [px]")
        ax[0, k].legend(fontsize=6)
    x = np.arange(len(CLASS_NAMES))
    for j, s in enumerate((a, b)):
        means = [c["phase_fractions"][n][s]["mean"] for n in CLASS_NAMES]
        stds = [c["phase_fractions"][n][s]["std"] for n in CLASS_NAMES]
        ax[0, 2].bar(x + (j - 0.5) * 0.38, means, 0.38, yerr=stds, label=s)
    ax[0, 2].set_xticks(x, [LABELS[n] for n in CLASS_NAMES])
    ax[0, 2].set_title("phase fractions (mean ± std)", fontsize=9)
    ax[0, 2].legend(fontsize=7)
    edges = np.asarray(c["chords"]["bin_edges_px"])
    for k, name in enumerate(("primary_alpha", "secondary_alpha")):
        for s, ls in ((a, "-"), (b, "--")):
            h = np.asarray(c["chords"][name][s])
            ax[1, k].step(edges[:-1], h / max(h.sum(), 1), where="post", ls=ls, color=LINE_COLOURS[name], label=s)
        ax[1, k].set_title(f"chord length distribution, {LABELS[name]}", fontsize=9)
        ax[1, k].set_xlabel("chord [px]")
        ax[1, k].legend(fontsize=7)
    if "persistence_pca" in c:
        scores = np.asarray(c["persistence_pca"]["scores"])
        sets = np.asarray(c["persistence_pca"]["set"])
        for s, marker in ((a, "o"), (b, "^")):
            sel = sets == s
            ax[1, 2].scatter(
                scores[sel, 0],
                scores[sel, 1] if scores.shape[1] > 1 else np.zeros(sel.sum()),
                marker=marker,
                label=s,
                alpha=0.7,
            )
        ratio = c["persistence_pca"]["explained_variance_ratio"]
        ax[1, 2].set_title(f"PCA of persistence images (fitted on {a})", fontsize=9)
        ax[1, 2].set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
        if len(ratio) > 1:
            ax[1, 2].set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)")
        ax[1, 2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
