"""``microforge fingerprint explore``: what fingerprints of a dataset's tiles hold, kind by kind.

Each analysis writes a figure and a JSON into the output folder, beside ``fingerprints.npz``
(every kind's fingerprints of the explored tiles, and the tiles' manifest rows as ``tile_index``):

* for every kind (:mod:`.kinds`): ``embeddings.png`` (one row per kind: PCA and t-SNE, coloured
  by the first label and by the primary-alpha fraction where the dataset has them) and, where
  the dataset has labels or properties, the cross-validation ``cv.png`` / ``cv.json`` /
  ``cv.csv``: the SVM accuracy of each categorical label and the SVR's R² and mean percentage
  error of each continuous one (:mod:`.crossval`), all kinds side by side;
* for the ``vae`` kind, White et al.'s figures: ``reconstructions.png`` (tiles and their decoded
  fingerprints), ``paths.png`` (decoded linear paths between fingerprints of different labels),
  ``clouds.png`` (decoded Gaussian clouds ``e(x) + gamma * N(mu, sigma)``, ``mu`` and ``sigma`` the
  dataset's fingerprint statistics) and ``pca.png`` (the perturbed fingerprints in the data's
  principal plane). Where the model folder has a detail refiner (``fingerprint train`` with
  ``refiner_steps``), the paths and clouds show the refiner's seeded draw of each decoded image's
  detail, and ``reconstructions.png`` a third row of refined reconstructions.

Labels: the columns named by ``labels`` (default ``morphology``, where the dataset has it) and the
dataset's categorical properties are classified, never regressed on their integer codes; the
other properties and, where the tiles have masks, the primary-alpha fraction are regressed.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen before pyplot loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..data.contact_sheet import image_grid  # noqa: E402
from ..data.dataset import MicrographDataset  # noqa: E402
from ..data.phase_map import PRIMARY_ALPHA  # noqa: E402
from ..io import to_uint8  # noqa: E402
from ..errors import MicroforgeError  # noqa: E402
from .crossval import CV_SPLITS, TEST_SIZE, classify_cv, regress_cv  # noqa: E402
from .kinds import VAEKind, make_kind  # noqa: E402

GAMMAS = (0.25, 0.5, 1.0)  # cloud scales (White et al. decode clouds at several spreads)
MIN_IMAGES = 20  # fewer tiles cannot be split 90/10 by specimen ten times meaningfully
TSNE_MAX = 1000  # t-SNE points per kind (its cost grows as n log n per iteration)


@dataclass
class Tiles:
    """The explored tiles: their manifest rows ``(N,)``, images ``(N, H, W)`` in [0, 1], specimens
    ``(N,)``, the labels to classify (name -> ``(N,)`` strings), the values to regress (name ->
    ``(N,)`` floats), and the primary-alpha fraction where every tile has a mask."""

    index: np.ndarray
    images: np.ndarray
    specimens: np.ndarray
    labels: dict[str, np.ndarray]
    continuous: dict[str, np.ndarray]
    alpha_fraction: np.ndarray | None


def load_tiles(data: str | Path, labels: Sequence[str], modality: str | None, max_images: int, seed: int) -> Tiles:
    """A seeded subset of at most ``max_images`` tiles of dataset ``data`` with their targets."""
    ds = MicrographDataset(data, split=None, modality=modality, augment=False)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ds), size=min(max_images, len(ds)), replace=False))
    if len(pick) < MIN_IMAGES:
        raise MicroforgeError(f"{data}: {len(pick)} tiles are too few to explore; at least {MIN_IMAGES} are needed")
    table = ds.table.iloc[pick]
    missing = [name for name in labels if name not in table.columns]
    if missing:
        raise MicroforgeError(
            f"--label {', '.join(missing)}: no such column in {data}/manifest.csv; it has {', '.join(table.columns)}"
        )
    items = [ds[int(i)] for i in pick]
    out_labels: dict[str, np.ndarray] = {}
    continuous: dict[str, np.ndarray] = {}
    for spec in ds.properties.specs:
        values = table[spec.name].to_numpy()
        if spec.categories is not None:  # stored as integer codes; classify the names
            out_labels[spec.name] = np.array([spec.categories[int(v)] for v in values])
        elif spec.name not in labels:
            continuous[spec.name] = values.astype(np.float64)
    for name in labels:
        out_labels.setdefault(name, table[name].astype(str).to_numpy())
    alpha = None
    if all(it["mask"].min() >= 0 for it in items):
        alpha = np.array([float((it["mask"] == PRIMARY_ALPHA).float().mean()) for it in items])
        continuous = {"primary_alpha_fraction": alpha, **continuous}
    images = torch.stack([it["image"][0] for it in items]).numpy()
    rows = table.index.to_numpy()  # the manifest's row numbers (with --modality, not the positions in ds)
    return Tiles(rows, images, table["specimen"].to_numpy(), out_labels, continuous, alpha)


def cross_validate(features: np.ndarray, tiles: Tiles, seed: int) -> dict[str, Any]:
    """Every label's SVM accuracy and every continuous target's SVR scores for one kind."""
    out: dict[str, Any] = {"classification": {}, "regression": {}}
    for name, y in tiles.labels.items():
        if len(set(y)) > 1:
            out["classification"][name] = classify_cv(features, y, tiles.specimens, seed)
    for name, y in tiles.continuous.items():
        out["regression"][name] = regress_cv(features, y, tiles.specimens, seed)
    return out


def explore(
    data: str | Path,
    out: str | Path,
    kinds: Sequence[str] = ("vae",),
    model_dir: str | Path | None = None,
    labels: Sequence[str] | None = None,
    gammas: Sequence[float] = GAMMAS,
    max_images: int = 1500,
    seed: int = 0,
    pca: int | None = None,
    modality: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the analyses of the module docstring on the tiles of dataset ``data`` (a seeded subset
    of at most ``max_images``) and write them into ``out``; return the summary (``summary.json``).

    ``kinds``: fingerprint kinds (``vae`` and ``vae-d4`` need ``model_dir``); ``labels``: categorical columns to
    classify (default: ``morphology`` where present); ``pca``: components kept of the Inception
    features (None: all 2 048); ``modality``: the tiles explored (default: the VAE's training
    modality, else the dataset's only one; a dataset of both needs it for ``descriptors``, which
    must know which phase is bright).
    """
    from ..data.outdir import prepare_output_dir, record_outputs
    from ..data.manifest import read_dataset

    if not kinds:
        raise MicroforgeError("give at least one --kind")
    if len(set(kinds)) != len(kinds):
        raise MicroforgeError(f"--kind given twice: {list(kinds)}")
    if any(g <= 0 for g in gammas):
        raise MicroforgeError(f"gammas must be positive, got {list(gammas)}")
    table = read_dataset(data, check_files=False).table
    uses_vae = "vae" in kinds or "vae-d4" in kinds
    if modality is None and uses_vae and model_dir is not None and (Path(model_dir) / "config.json").is_file():
        modality = json.loads((Path(model_dir) / "config.json").read_text()).get("train", {}).get("modality")
    if modality is None and table["modality"].nunique() == 1:
        modality = str(table["modality"].iloc[0])
    if modality is None and "descriptors" in kinds:
        raise MicroforgeError(
            f"{data}: holds OM and SEM tiles; --kind descriptors needs --modality to know which phase is bright"
        )
    built = [make_kind(k, model_dir, pca, modality or "SEM") for k in kinds]
    if labels is None:
        labels = ["morphology"] if "morphology" in table.columns else []
    tiles = load_tiles(data, labels, modality, max_images, seed)
    out = Path(out)
    prepare_output_dir(out, overwrite, done_marker="summary.json", command="fingerprint explore")
    features, seconds = {}, {}
    for kind in built:
        t0 = time.perf_counter()
        features[kind.name] = kind.encode(tiles.images, progress)
        seconds[kind.name] = round(time.perf_counter() - t0, 1)
    np.savez_compressed(out / "fingerprints.npz", tile_index=tiles.index, **features)  # to reuse without encoding again
    cv = {name: cross_validate(f, tiles, seed) for name, f in features.items()}
    summary: dict[str, Any] = {
        "images": int(len(tiles.index)),
        "kinds": list(kinds),
        "dims": {k: int(f.shape[1]) for k, f in features.items()},
        "encode_seconds": seconds,
        "labels": sorted(tiles.labels),
        "continuous": list(tiles.continuous),
        "cv": {"splits": CV_SPLITS, "test_size": TEST_SIZE, "grouped_by": "specimen", "kinds": cv},
    }
    if any(c["classification"] or c["regression"] for c in cv.values()):
        write_cv(out, cv)
    embedding_figure(out, features, tiles, seed)
    vae = next((k for k in built if k.name == "vae"), None)  # the figures decode White et al.'s fingerprint
    if vae is not None:
        summary["vae"] = vae_figures(out, vae, features["vae"], tiles, gammas, seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    record_outputs(out)
    return summary


def cv_rows(cv: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target and measure, one column per kind: accuracy for labels, R² and mean
    percentage error for continuous targets."""
    kinds = list(cv)
    first = cv[kinds[0]]
    rows = []
    for name in first["classification"]:
        rows.append(
            {
                "target": name,
                "measure": "SVM accuracy",
                **{k: cv[k]["classification"][name]["accuracy_mean"] for k in kinds},
                "chance": first["classification"][name]["chance"],
            }
        )
    for name in first["regression"]:
        rows.append({"target": name, "measure": "SVR R²", **{k: cv[k]["regression"][name]["r2"] for k in kinds}})
        rows.append(
            {
                "target": name,
                "measure": "SVR mean % error",
                **{k: cv[k]["regression"][name]["mpe_pct_mean"] for k in kinds},
            }
        )
    return rows


def write_cv(out: Path, cv: dict[str, Any]) -> None:
    """``cv.json`` (everything), ``cv.csv`` (:func:`cv_rows`) and ``cv.png``: a bar per kind for
    each label's accuracy (left) and each continuous target's R² (right)."""
    (out / "cv.json").write_text(json.dumps(cv, indent=1) + "\n")
    rows, kinds = cv_rows(cv), list(cv)
    with open(out / "cv.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["target", "measure", *kinds, "chance"])
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    acc = [r for r in rows if r["measure"] == "SVM accuracy"]
    r2 = [r for r in rows if r["measure"] == "SVR R²"]
    fig, axes = plt.subplots(
        1,
        2,
        figsize=(4 + 0.9 * len(r2) * len(kinds) ** 0.5, 3.9),
        gridspec_kw={"width_ratios": [max(1, len(acc)), max(1, len(r2))]},
    )
    width = 0.8 / len(kinds)
    for ax, group, ylabel in ((axes[0], acc, "SVM accuracy"), (axes[1], r2, "SVR R² (pooled)")):
        x = np.arange(len(group))
        for j, k in enumerate(kinds):
            ax.bar(x + (j - (len(kinds) - 1) / 2) * width, [r[k] for r in group], width, label=k, color=f"C{j}")
        for i, r in enumerate(group):
            if "chance" in r:
                ax.hlines(
                    r["chance"], i - 0.45, i + 0.45, colors="k", linestyles=":", label="chance" if i == 0 else None
                )
        ax.set_xticks(x, [r["target"] for r in group], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(min(0.0, *[r[k] for r in group for k in kinds]) if group else 0.0, 1.0)
        ax.axhline(0, color="0.6", lw=0.5)
    handles, names = axes[0].get_legend_handles_labels()  # below the panels, where no bar can hide behind it
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, frameon=False)
    fig.suptitle(
        f"fingerprints, {CV_SPLITS} specimen-grouped {int(100 * (1 - TEST_SIZE))}/{int(100 * TEST_SIZE)} splits",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out / "cv.png", dpi=100)
    plt.close(fig)


def embedding_figure(out: Path, features: dict[str, np.ndarray], tiles: Tiles, seed: int) -> None:
    """``embeddings.png`` / ``embeddings.json``: one row per kind, its standardised fingerprints'
    first two principal components and their t-SNE (PCA initialisation), coloured by the first
    label and by the primary-alpha fraction where the dataset has them."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    n = min(len(tiles.index), TSNE_MAX)
    label = sorted(tiles.labels)[0] if tiles.labels else None
    colourings = [
        c for c in ("label", "alpha") if (c == "label" and label) or (c == "alpha" and tiles.alpha_fraction is not None)
    ] or ["none"]
    fig, axes = plt.subplots(
        len(features), 1 + len(colourings), figsize=(4.4 * (1 + len(colourings)), 4.0 * len(features)), squeeze=False
    )
    record: dict[str, Any] = {"n": n, "label": label}
    for row, (name, f) in zip(axes, features.items()):
        std = StandardScaler().fit_transform(f)
        pca = PCA(2, random_state=seed).fit(std)
        emb = TSNE(2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=seed).fit_transform(std[:n])
        record[name] = {
            "pca_explained_variance_ratio": pca.explained_variance_ratio_.round(4).tolist(),
            "tsne": emb.round(3).tolist(),
        }
        panels = [(pca.transform(std)[:n], f"{name}: PCA", colourings[0])] + [
            (emb, f"{name}: t-SNE", c) for c in colourings
        ]
        for ax, (xy, title, colour) in zip(row, panels):
            if colour == "label":
                for k, cls in enumerate(sorted(set(tiles.labels[label]))):
                    m = tiles.labels[label][:n] == cls
                    ax.scatter(*xy[m].T, s=5, color=f"C{k}", label=cls)
                ax.legend(fontsize=7, markerscale=3)
                title += f", coloured by {label}"
            elif colour == "alpha":
                sc = ax.scatter(*xy.T, c=tiles.alpha_fraction[:n], s=5, cmap="viridis")
                fig.colorbar(sc, ax=ax, label="primary-α fraction")
                title += ", coloured by primary-α fraction"
            else:
                ax.scatter(*xy.T, s=5, c="0.4")
            ax.set_title(title, fontsize=9)
        evr = pca.explained_variance_ratio_
        row[0].set_xlabel(f"PC1 ({100 * evr[0]:.1f} %)")
        row[0].set_ylabel(f"PC2 ({100 * evr[1]:.1f} %)")
    fig.tight_layout()
    fig.savefig(out / "embeddings.png", dpi=80)
    plt.close(fig)
    (out / "embeddings.json").write_text(json.dumps(record) + "\n")


def vae_figures(
    out: Path, kind: VAEKind, f: np.ndarray, tiles: Tiles, gammas: Sequence[float], seed: int
) -> dict[str, Any]:
    """White et al.'s decoded figures (module docstring) for the VAE's fingerprints ``f``."""
    from sklearn.decomposition import PCA

    from .vae import refine

    model, refiner = kind.model, kind.refiner

    def decode(a: np.ndarray, refined: bool = True) -> list[np.ndarray]:  # fingerprints (M, D) -> M uint8 images
        with torch.no_grad():
            images = model.decode(torch.from_numpy(np.asarray(a, dtype=np.float32)))
        if refined and refiner is not None:  # the refiner draws the detail (seeded: the same figure each run)
            images = refine(refiner, images, seed)
        return [to_uint8(x) for x in images[:, 0].numpy()]

    def tile(i: int) -> np.ndarray:
        return to_uint8(tiles.images[i])

    order = np.argsort(f[:, 0])
    # reconstructions: eight tiles spread over the first fingerprint coordinate
    show = order[np.linspace(0, len(order) - 1, 8).astype(int)]
    refined_row = decode(f[show]) if refiner is not None else []
    image_grid(
        [tile(i) for i in show] + decode(f[show], refined=False) + refined_row,
        [f"tile {tiles.index[i]}" for i in show] + ["decoded"] * 8 + ["refined"] * len(refined_row),
        8,
        out / "reconstructions.png",
        row_labels=["input", "reconstruction"] + (["refined"] if refined_row else []),
    )
    # linear paths between fingerprints of different labels (or of distant tiles)
    ends = [(order[0], order[-1]), (order[len(order) // 4], order[3 * len(order) // 4])]
    label = sorted(tiles.labels)[0] if tiles.labels else None
    if label is not None and len(set(tiles.labels[label])) > 1:
        firsts = [int(np.flatnonzero(tiles.labels[label] == k)[0]) for k in sorted(set(tiles.labels[label]))]
        ends = [(firsts[i], firsts[(i + 1) % len(firsts)]) for i in range(min(len(firsts), 3))]
    steps = np.linspace(0, 1, 8)
    cells, titles = [], []
    for a, b in ends:
        cells += [tile(a)] + decode(np.stack([(1 - t) * f[a] + t * f[b] for t in steps])) + [tile(b)]
        titles += [f"tile {tiles.index[a]}"] + [f"t={t:.2f}" for t in steps] + [f"tile {tiles.index[b]}"]
    image_grid(cells, titles, len(steps) + 2, out / "paths.png")
    (out / "paths.json").write_text(
        json.dumps(
            {"pairs": [[int(tiles.index[a]), int(tiles.index[b])] for a, b in ends], "t": steps.tolist()}, indent=1
        )
        + "\n"
    )
    # Gaussian clouds around three tiles, decoded, and their PCA
    mu_d, sd_d = f.mean(0), f.std(0)
    gen = np.random.default_rng(seed + 1)
    seeds = [int(order[len(order) // 6]), int(order[len(order) // 2]), int(order[5 * len(order) // 6])]
    cells, titles, clouds = [], [], []
    for s in seeds:
        for g in gammas:
            cloud = f[s] + g * gen.normal(mu_d, sd_d, size=(64, f.shape[1]))
            clouds.append((s, g, cloud))
            cells += decode(cloud[:6])
            titles += [f"tile {tiles.index[s]} γ={g}"] + [""] * 5
    image_grid(cells, titles, 6, out / "clouds.png")
    (out / "clouds.json").write_text(
        json.dumps(
            {
                "seed_tiles": [int(tiles.index[s]) for s in seeds],
                "gammas": list(gammas),
                "per_cloud": 64,
                "noise": "N(mean, std of the dataset's fingerprints), per dimension",
            },
            indent=1,
        )
        + "\n"
    )
    pca = PCA(2, random_state=seed).fit(f)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(*pca.transform(f).T, s=4, c="0.75", label="data")
    spread = {}
    for s, g, cloud in clouds:
        p = pca.transform(cloud)
        ax.scatter(*p.T, s=6, alpha=0.6, color=f"C{seeds.index(s)}", marker="o^s"[list(gammas).index(g) % 3])
        spread[f"tile {tiles.index[s]} gamma {g}"] = float(np.sqrt(p.var(0).sum()))
    ax.set_xlabel(f"PC1 ({100 * pca.explained_variance_ratio_[0]:.1f} %)")
    ax.set_ylabel(f"PC2 ({100 * pca.explained_variance_ratio_[1]:.1f} %)")
    ax.set_title("perturbed fingerprints (colour: seed tile, marker: γ)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "pca.png", dpi=100)
    plt.close(fig)
    pca_info = {
        "explained_variance_ratio": pca.explained_variance_ratio_.round(4).tolist(),
        "cloud_rms_spread_pc": spread,
    }
    (out / "pca.json").write_text(json.dumps(pca_info, indent=1) + "\n")
    return {"pca": pca_info, "refined": refiner is not None}
