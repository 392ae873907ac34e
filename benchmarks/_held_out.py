"""Shared by the benchmarks that compare a model's samples with held-out real tiles: the tiles, one
sample per tile drawn at that tile's own properties (the same seeds for every model), and the
sharpness measure they report."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from microforge.accuracy import accuracy_table
from microforge.data.dataset import MicrographDataset
from microforge.io import resize_batch
from microforge.models.property_regressor import PropertyRegressor
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator


def model_split(pipe: TiM3Pipeline, data: str, split: str) -> MicrographDataset:
    """The tiles of ``split`` of ``data`` as the model split them (its fractions, seed and modality),
    unaugmented, with the model's own properties."""
    cfg = pipe.cfg
    return MicrographDataset(
        data,
        split=split,
        fractions=tuple(cfg.split_fractions),
        seed=cfg.train.seed,
        modality=cfg.modality,
        augment=False,
        properties=pipe.condition_properties,
    )


def add_model_arguments(ap: argparse.ArgumentParser, n_default: int) -> None:
    """The arguments every held-out comparison takes: DATA, the models, ``--n``, ``--batch-size``,
    ``--seed`` and ``--out``."""
    ap.add_argument("data")
    ap.add_argument("models", nargs="+", help="[LABEL=]MODEL: TiM3 folders or bundled:NAME, all at one resolution")
    ap.add_argument("--n", type=int, default=n_default, help="held-out tiles, and samples per model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)


def load_models(specs: list[str]) -> dict[str, TiM3Pipeline]:
    """``[LABEL=]MODEL`` strings -> pipelines by label; all must share resolution and modality."""
    labelled = [m.split("=", 1) if "=" in m else (m, m) for m in specs]
    pipes = {label: TiM3Pipeline.from_pretrained(resolve_model(m)) for label, m in labelled}
    if len({(p.cfg.resolution, p.cfg.modality) for p in pipes.values()}) != 1:
        raise SystemExit("Error: the models differ in resolution or modality; compare models of one kind")
    return pipes


def load_regressor(spec: str) -> PropertyRegressor:
    """The property regressor in folder ``spec`` (or ``bundled:NAME/regressor``); a spec that names
    no folder is a one-line ``Error:`` exit, never a silent run without the regressor."""
    folder = resolve_model(spec)
    if not folder.is_dir():
        raise SystemExit(f"Error: --regressor {spec}: no such folder")
    return PropertyRegressor.from_pretrained(str(folder))


def _pick(pipe: TiM3Pipeline, data: str, splits: tuple[str, ...], n: int, seed: int) -> list[tuple[dict, object]]:
    """``n`` seeded (item, manifest row) pairs of the model's ``splits``, in a fixed order."""
    pool = []  # (dataset, row) of every tile of the splits
    for split in splits:
        ds = model_split(pipe, data, split)
        pool += [(ds, i) for i in range(len(ds))]
    pick = np.sort(np.random.default_rng(seed).choice(len(pool), min(n, len(pool)), replace=False))
    return [(pool[k][0][pool[k][1]], pool[k][0].table.iloc[pool[k][1]]) for k in pick]


@dataclass(frozen=True)
class HeldOut:
    """Seeded held-out tiles, loaded once: ``images`` ``(n, R, R)`` in [0, 1] area-resized to the
    model's resolution R, ``props`` ``(n, K)`` in their units, each tile's ``morphology`` label (""
    where the dataset has none) and its true phase map ``masks`` ``(n, H, W)`` (class indices, the
    tile's own size)."""

    images: np.ndarray
    props: np.ndarray
    morphology: list[str]
    masks: torch.Tensor


def held_out_items(pipe: TiM3Pipeline, data: str, splits: tuple[str, ...], n: int, seed: int) -> HeldOut:
    """``n`` seeded tiles of the model's held-out ``splits`` (by specimen, as the model split the
    data), with their properties, labels and maps (:class:`HeldOut`)."""
    picked = _pick(pipe, data, splits, n, seed)
    tiles = torch.stack([it["image"] for it, _ in picked])
    return HeldOut(
        resize_batch(tiles, pipe.cfg.resolution)[:, 0].numpy(),
        np.stack([it["props_raw"].numpy() for it, _ in picked]).astype(np.float64),
        [str(r["morphology"]) if "morphology" in r.index else "" for _, r in picked],
        torch.stack([it["mask"] for it, _ in picked]),
    )


def held_out_tiles(
    pipe: TiM3Pipeline, data: str, splits: tuple[str, ...], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The (images, properties, morphology labels) of :func:`held_out_items`."""
    held = held_out_items(pipe, data, splits, n, seed)
    return held.images, held.props, held.morphology


@torch.no_grad()
def reconstructed_images(pipe: TiM3Pipeline, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Images ``(N, R, R)`` in [0, 1] encoded (posterior mean) and decoded by the model's learned
    micrograph autoencoder, in [0, 1]: what its decoder can give back of them at best."""
    vae = pipe.modules["vae_image"]
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch]))[:, None] * 2.0 - 1.0
        out.append(((vae.decode(vae.encode(x).latent_dist.mean).sample[:, 0].clamp(-1, 1) + 1.0) / 2.0).numpy())
    return np.concatenate(out)


def reconstructed_maps(pipe: TiM3Pipeline, masks: torch.Tensor) -> torch.Tensor:
    """True maps ``(n, H, W)`` passed through the model's map autoencoder (posterior mean, then
    its decoder), as stage 1 would have to draw them at best: what :meth:`TiM3Pipeline.model_maps`
    gives, class indices ``(n, R, R)`` or shares ``(n, 3, R, R)``."""
    return pipe._decode_map(pipe.encode_maps(pipe.model_maps(masks)))


def stage2_from(pipe: TiM3Pipeline, raw: np.ndarray, maps: torch.Tensor, batch_size: int, seed: int) -> np.ndarray:
    """Stage 2's micrographs ``(n, R, R)`` in [0, 1] drawn from given ``maps`` (as
    :meth:`TiM3Pipeline.model_maps` gives them) at the properties ``raw`` ``(n, K)``; batch ``b``
    starting at row ``i`` uses seed ``seed + i``, as :func:`samples_at` does."""
    y = torch.tensor(pipe.condition_properties.normalise(raw), dtype=torch.float32)
    cfg, b = pipe.cfg, batch_size
    return np.concatenate(
        [
            pipe.draw_micrographs(
                y[i : i + b],
                maps[i : i + b],
                cfg.sampling_steps,
                pipe.stage_guidance()[1],
                cfg.sampler,
                seeded_generator(seed + i, 0),
            )
            .float()
            .cpu()
            .numpy()
            for i in range(0, len(raw), b)
        ]
    )


def samples_at(pipe: TiM3Pipeline, raw: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """One sample ``(n, R, R)`` in [0, 1] per property row of ``raw`` ``(n, K)``; batch ``b`` starting
    at row ``i`` uses seed ``seed + i``, so every model draws from the same noise."""
    b = batch_size
    return np.concatenate([pipe(raw[i : i + b], batch_size=b, seed=seed + i).images for i in range(0, len(raw), b)])


def regressor_row(reg: PropertyRegressor, images: np.ndarray, raw: np.ndarray) -> dict:
    """How the property regressor ``reg`` reads ``images`` ``(N, H, W)`` in [0, 1] drawn (or taken) at the
    properties ``raw`` ``(N, P)``: its accuracy table's mAcc, per-property R² and bias (mean signed
    error in standard deviations of the targets), the grey level's mean and standard deviation and the
    sharpness (grey levels)."""
    table = accuracy_table(reg.predict(images), raw, reg.properties.names)
    return {
        "mAcc": round(table["mAcc"], 3),
        "r2": {k: round(v["r2"], 3) for k, v in table["per_property"].items()},
        "bias_sd": {k: round(v["bias_sd"], 3) for k, v in table["per_property"].items()},
        "grey_mean": round(float(images.mean()), 4),
        "grey_std": round(float(images.std()), 4),
        "sharpness": round(sharpness(images), 2),
    }


def sharpness(images: np.ndarray) -> float:
    """Mean absolute step between horizontal neighbours, grey levels 0..255."""
    return float(np.abs(np.diff(np.asarray(images, dtype=np.float64), axis=-1)).mean() * 255)


def save_figure(fig, path: Path, dpi: int = 80) -> None:
    """Lay out ``fig`` (a matplotlib figure), write it to ``path`` (its folder made if new) and close it."""
    import matplotlib.pyplot as plt  # only the figure-drawing benchmarks need it

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
