"""``microforge fingerprint train|encode|explore``: ResNet18-VAE fingerprints (White et al.).

* ``train``: the VAE of :mod:`microforge.models.fingerprint` on a dataset's training split,
  resumable, saved as ``config.json`` + ``model.safetensors``.
* ``encode``: the 256-d fingerprint (posterior mean) of every image, to CSV.
* ``explore``: each analysis writes a figure and a JSON: reconstructions along linear paths
  between fingerprints; Gaussian clouds ``e(x) + gamma * N(mu, sigma)`` (``mu``, ``sigma``: the
  dataset's fingerprint statistics) decoded; the PCA of the perturbed fingerprints; t-SNE (PCA
  initialisation) coloured by a descriptor and by a label; and SVR / SVM cross-validation
  (10 random 90/10 splits) of descriptors, properties and labels from fingerprints.

The splits of the cross-validation are drawn by specimen (scikit-learn's GroupShuffleSplit), so
tiles of one specimen never sit on both sides: with random tile splits a regressor can recognise
the specimen and look better than it is.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .config import nested_config_from_dict, plain_data, read_yaml_mapping  # noqa: E402
from .data.contact_sheet import image_grid  # noqa: E402
from .data.dataset import MicrographDataset  # noqa: E402
from .data.images import read_grey  # noqa: E402
from .data.phase_map import PRIMARY_ALPHA  # noqa: E402
from .errors import MicroforgeError  # noqa: E402
from .models.fingerprint import FingerprintConfig, FingerprintVAE, fingerprint_loss  # noqa: E402
from .models.property_regressor import resize_batch  # noqa: E402
from .models.weights import load_weights, read_config, save_weights  # noqa: E402
from .training.checkpoints import prepare_run_dir  # noqa: E402
from .training.data import load_split  # noqa: E402
from .training.loop import random_batch, run_steps  # noqa: E402

MODEL_TYPE = "microforge-fingerprint-vae"
GAMMAS = (0.25, 0.5, 1.0)  # cloud scales of the explore step
CV_SPLITS = 10  # random 90/10 splits (White et al.)


@dataclass
class FingerprintTrainConfig:
    model: FingerprintConfig = field(default_factory=FingerprintConfig)
    steps: int = 400  # about 10 minutes on 2 idle cores (configs/fingerprint-tiny.yaml)
    batch_size: int = 32
    lr: float = 1e-3
    modality: str | None = "SEM"
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
    seed: int = 0
    checkpoint_every: int = 250

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


def load_fingerprint_config(path: str | Path | None) -> FingerprintTrainConfig:
    return FingerprintTrainConfig() if path is None else nested_config_from_dict(FingerprintTrainConfig, read_yaml_mapping(path), str(path))


# ---------------------------------------------------------------------------------- train


def train_fingerprints(data: str | Path, out: str | Path, cfg: FingerprintTrainConfig = FingerprintTrainConfig(), resume: bool = False,
                       progress: bool = True) -> Path:
    """Train the VAE on the train split of ``data`` into ``out`` (resumable; a finished ``out`` is refused)."""
    out = Path(out)
    images, _, _ = load_split(data, "train", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution)  # fails before writing
    prepare_run_dir(out, "model.safetensors", "fingerprint model", resume, cfg.to_dict())
    torch.manual_seed(cfg.seed)
    model = FingerprintVAE(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(gen: torch.Generator) -> dict[str, float]:
        _, x = random_batch(images, cfg.batch_size, gen)
        loss, parts = fingerprint_loss(model, x, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return parts

    seconds = run_steps(out, cfg.steps, cfg.seed, cfg.checkpoint_every, {"vae": model}, {"opt": opt}, step, "train fingerprints", progress)
    save_weights(model, out, {"model_type": MODEL_TYPE, **dataclasses.asdict(cfg.model), "train": cfg.to_dict(),
                              "train_tiles": len(images), "seconds_this_run": round(seconds, 1)})
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return out


def load_fingerprint_model(folder: str | Path) -> FingerprintVAE:
    """A trained fingerprint VAE (safetensors only; errors name the file)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MicroforgeError(f"{folder}: fingerprint model folder not found")
    raw = read_config(folder, MODEL_TYPE, "a fingerprint model")
    names = {f.name for f in dataclasses.fields(FingerprintConfig)}
    before_fidelity = {"encoder_pool": "mean", "spectral": "magnitude"}  # what folders saved before these options hold
    kept = {**before_fidelity, **{k: v for k, v in raw.items() if k in names}}
    return load_weights(FingerprintVAE(FingerprintConfig(**kept)), folder)


@torch.no_grad()
def fingerprints(model: FingerprintVAE, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Fingerprints ``(N, latent)`` (posterior means) of greyscale images ``(N, H, W)`` in [0, 1]."""
    model.eval()
    x = resize_batch(images, model.cfg.resolution)
    return torch.cat([model.encode(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]).double().numpy()


# --------------------------------------------------------------------------------- encode


def encode_images(model_dir: str | Path, paths: Sequence[str | Path], out_csv: str | Path) -> int:
    """Write the fingerprint of every image in ``paths`` (files, folders, datasets) to a CSV:
    one row per image, ``name, image, f0 ... f255``. Returns the number of images."""
    from .characterize.run import collect_images

    model = load_fingerprint_model(model_dir)
    items = collect_images(paths)
    feats = []
    for i in range(0, len(items), 64):  # images of any size: each is resized to the model's on reading
        batch = torch.cat([resize_batch(read_grey(it.path)[None].astype(np.float32) / 255.0, model.cfg.resolution) for it in items[i : i + 64]])
        feats.append(fingerprints(model, batch))
    f = np.concatenate(feats)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "image", *[f"f{j}" for j in range(f.shape[1])]])
        for it, row in zip(items, f):
            w.writerow([it.name, str(it.path), *[f"{v:.6g}" for v in row]])
    return len(items)


# -------------------------------------------------------------------------------- explore


def _save(fig, out: Path, name: str, data: dict[str, Any]) -> None:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)
    plt.close(fig)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")


def _as_uint8(x: torch.Tensor) -> list[np.ndarray]:
    return [np.round(a * 255).astype(np.uint8) for a in x[:, 0].numpy()]


def explore(model_dir: str | Path, data: str | Path, out: str | Path, gammas: Sequence[float] = GAMMAS, label: str = "morphology",
            max_images: int = 1500, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """Run every analysis of the module docstring on the tiles of dataset ``data`` (a seeded
    subset of at most ``max_images``); write ``out/<analysis>.png`` and ``.json``; return a summary."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    from .data.outdir import prepare_output_dir, record_outputs

    if any(g <= 0 for g in gammas):
        raise MicroforgeError(f"gammas must be positive, got {list(gammas)}")
    model = load_fingerprint_model(model_dir)
    modality = json.loads((Path(model_dir) / "config.json").read_text()).get("train", {}).get("modality")
    ds = MicrographDataset(data, split=None, modality=modality, augment=False)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ds), size=min(max_images, len(ds)), replace=False))
    if len(pick) < 20:
        raise MicroforgeError(f"{data}: {len(pick)} tiles are too few to explore; at least 20 are needed")
    out = Path(out)
    prepare_output_dir(out, overwrite, done_marker="summary.json", command="fingerprint explore")
    items = [ds[int(i)] for i in pick]
    images = torch.stack([it["image"] for it in items])[:, 0]
    f = fingerprints(model, images)
    table = ds.table.iloc[pick]
    specimens = table["specimen"].to_numpy()
    labels = table[label].astype(str).to_numpy() if label in table.columns else None
    has_masks = all(it["mask"].min() >= 0 for it in items)
    descriptor = np.array([float((it["mask"] == PRIMARY_ALPHA).float().mean()) for it in items]) if has_masks else None
    props = np.stack([it["props_raw"].numpy() for it in items]).astype(np.float64)
    mu_d, sd_d = f.mean(0), f.std(0)
    z = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))  # noqa: E731
    summary: dict[str, Any] = {"images": int(len(pick)), "latent": int(f.shape[1]), "label": label if labels is not None else None}

    # 1. linear paths between fingerprints of different labels (or of distant tiles)
    order = np.argsort(f[:, 0])
    ends = [(order[0], order[-1]), (order[len(order) // 4], order[3 * len(order) // 4])]
    if labels is not None:
        kinds = sorted(set(labels))
        firsts = [int(np.flatnonzero(labels == k)[0]) for k in kinds]
        ends = [(firsts[i], firsts[(i + 1) % len(firsts)]) for i in range(min(len(firsts), 3))] if len(firsts) > 1 else ends
    steps = np.linspace(0, 1, 8)
    cells, titles = [], []
    for a, b in ends:
        path = np.stack([(1 - t) * f[a] + t * f[b] for t in steps])
        cells += [np.round(images[a].numpy() * 255).astype(np.uint8)] + _as_uint8(model.decode(z(path)).detach()) + [np.round(images[b].numpy() * 255).astype(np.uint8)]
        titles += [f"tile {pick[a]}"] + [f"t={t:.2f}" for t in steps] + [f"tile {pick[b]}"]
    image_grid(cells, titles, len(steps) + 2, out / "paths.png")
    (out / "paths.json").write_text(json.dumps({"pairs": [[int(pick[a]), int(pick[b])] for a, b in ends], "t": steps.tolist()}, indent=1) + "\n")

    # 2. Gaussian clouds around three tiles, and 3. their PCA
    gen = np.random.default_rng(seed + 1)
    seeds = [int(order[len(order) // 6]), int(order[len(order) // 2]), int(order[5 * len(order) // 6])]
    cells, titles, clouds = [], [], []
    for s in seeds:
        for g in gammas:
            cloud = f[s] + g * gen.normal(mu_d, sd_d, size=(64, f.shape[1]))
            clouds.append((s, g, cloud))
            cells += _as_uint8(model.decode(z(cloud[:6])).detach())
            titles += [f"tile {pick[s]} γ={g}"] + [""] * 5
    image_grid(cells, titles, 6, out / "clouds.png")
    (out / "clouds.json").write_text(json.dumps({"seed_tiles": [int(pick[s]) for s in seeds], "gammas": list(gammas), "per_cloud": 64,
                                                 "noise": "N(mean, std of the dataset's fingerprints), per dimension"}, indent=1) + "\n")
    pca = PCA(2, random_state=seed).fit(f)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(*pca.transform(f).T, s=4, c="0.75", label="data")
    spread = {}
    for k, (s, g, cloud) in enumerate(clouds):
        p = pca.transform(cloud)
        ax.scatter(*p.T, s=6, alpha=0.6, color=f"C{seeds.index(s)}", marker="o^s"[list(gammas).index(g) % 3])
        spread[f"tile {pick[s]} gamma {g}"] = float(np.sqrt(p.var(0).sum()))
    ax.set_xlabel(f"PC1 ({100 * pca.explained_variance_ratio_[0]:.1f} %)")
    ax.set_ylabel(f"PC2 ({100 * pca.explained_variance_ratio_[1]:.1f} %)")
    ax.set_title("perturbed fingerprints (colour: seed tile, marker: γ)", fontsize=9)
    _save(fig, out, "pca", {"explained_variance_ratio": pca.explained_variance_ratio_.round(4).tolist(), "cloud_rms_spread_pc": spread})

    # 4. t-SNE coloured by a descriptor and by the label
    n_tsne = min(len(f), 1000)
    emb = TSNE(2, init="pca", perplexity=min(30.0, (n_tsne - 1) / 3), random_state=seed).fit_transform(f[:n_tsne])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    if descriptor is not None:
        sc = axes[0].scatter(*emb.T, c=descriptor[:n_tsne], s=5, cmap="viridis")
        fig.colorbar(sc, ax=axes[0], label="primary-α fraction")
    axes[0].set_title("t-SNE, coloured by primary-α fraction" if descriptor is not None else "t-SNE", fontsize=9)
    if labels is not None:
        for k, name in enumerate(sorted(set(labels))):
            m = labels[:n_tsne] == name
            axes[1].scatter(*emb[m].T, s=5, color=f"C{k}", label=name)
        axes[1].legend(fontsize=7, markerscale=3)
    axes[1].set_title(f"t-SNE, coloured by {label}", fontsize=9)
    _save(fig, out, "tsne", {"n": n_tsne, "embedding": emb.round(3).tolist()})

    # 5. SVR / SVM cross-validation, grouped by specimen
    splitter = GroupShuffleSplit(n_splits=CV_SPLITS, test_size=0.1, random_state=seed)
    targets = {"primary_alpha_fraction": descriptor} if descriptor is not None else {}
    targets.update({name: props[:, j] for j, name in enumerate(ds.properties.names)})
    cv: dict[str, Any] = {"splits": CV_SPLITS, "test_size": 0.1, "grouped_by": "specimen",
                          "r2": "pooled over the held-out predictions of all splits", "regression": {}}
    for name, y in targets.items():
        pred, true, mae = [], [], []
        for tr, te in splitter.split(f, y, specimens):
            p = make_pipeline(StandardScaler(), SVR(C=10.0)).fit(f[tr], y[tr]).predict(f[te])
            pred.append(p)
            true.append(y[te])
            mae.append(np.mean(np.abs(p - y[te])))
        p_all, y_all = np.concatenate(pred), np.concatenate(true)
        r2 = 1 - np.mean((p_all - y_all) ** 2) / max(float(np.var(y_all)), 1e-12)
        cv["regression"][name] = {"r2": float(r2), "mae_mean": float(np.mean(mae)), "mae_std": float(np.std(mae))}
    if labels is not None and len(set(labels)) > 1:
        acc = []
        for tr, te in splitter.split(f, labels, specimens):
            clf = make_pipeline(StandardScaler(), SVC(C=10.0)).fit(f[tr], labels[tr])
            acc.append(float((clf.predict(f[te]) == labels[te]).mean()))
        cv["classification"] = {label: {"accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc))}}
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(cv["regression"])
    ax.bar(names, [cv["regression"][n]["r2"] for n in names], color="C0")
    ax.set_ylabel("R² (SVR, 10 splits, pooled)")
    ax.set_ylim(min(0.0, min(cv["regression"][n]["r2"] for n in names)), 1)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    title = "SVR on fingerprints, held-out specimens"
    if "classification" in cv:
        title += f"; SVM {label} accuracy {cv['classification'][label]['accuracy_mean']:.2f}"
    ax.set_title(title, fontsize=9)
    _save(fig, out, "cv", cv)
    summary["cv"] = cv
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    record_outputs(out)
    return summary
