"""Training and evaluating the attention U-Net segmenter on datasets with masks."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import IGNORE_INDEX, MicrographDataset, d4_batch, load_split
from ..data.images import read_grey
from ..data.manifest import MASK_TYPE_COLUMN, DatasetTable, read_dataset
from ..data.phase_map import N_CLASSES, PRIMARY_ALPHA, SECONDARY_ALPHA
from ..errors import MicroforgeError
from ..config import config_to_dict
from ..models.attention_unet import AttentionUNet, AttentionUNetConfig
from .checkpoints import prepare_run_dir
from .loop import CHECKPOINT_DIR, optimizer_step, run_steps
from .segmenter_config import SegmenterTrainConfig


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, merge_alpha: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels.

    ``logits`` ``(B, 3, H, W)``, ``mask`` ``(B, H, W)`` (``-1`` ignored), ``merge_alpha`` ``(B,)``
    bool: for those samples the mask only tells alpha (0) from beta (1), so the loss uses the
    probability of any alpha, ``p0 + p2``, for alpha pixels.
    """
    logp = F.log_softmax(logits, dim=1)
    valid = mask != IGNORE_INDEX
    target = mask.clamp(min=0)
    full = -logp.gather(1, target[:, None])[:, 0]
    any_alpha = torch.logsumexp(logp[:, [PRIMARY_ALPHA, SECONDARY_ALPHA]], dim=1)
    merged = -torch.where(target == 1, logp[:, 1], any_alpha)
    per_pixel = torch.where(merge_alpha[:, None, None], merged, full)
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


def _load_split(
    data: DatasetTable, cfg: SegmenterTrainConfig, split: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tiles = load_split(
        data, split, cfg.split_fractions, cfg.split_seed, cfg.modality, masks=True, masked_only=True
    )  # the tiles' own size: the segmenter trains on random crops of them
    return tiles.images, tiles.masks, torch.from_numpy(tiles.merge_alpha)


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random symmetry of the square per sample, applied alike to image and mask."""
    ks = torch.tensor([int(torch.randint(0, 8, (1,), generator=gen)) for _ in range(len(x))])
    return d4_batch(x, ks), d4_batch(y, ks)


def train_segmenter(
    datasets: Sequence[str | Path],
    out: str | Path,
    cfg: SegmenterTrainConfig = SegmenterTrainConfig(),
    resume: bool = False,
    progress: bool = True,
) -> AttentionUNet:
    """Train an attention U-Net on the train split of one or more datasets and save it to ``out``.

    Each dataset is split by specimen (``cfg.split_fractions``), so val and test hold whole
    specimens the network never saw. Writes ``out/config.json``, ``out/model.safetensors`` and
    ``out/log.jsonl`` (loss every 10 steps). A finished ``out`` is refused; an unfinished one is
    continued only with ``resume``, from its last checkpoint, as an uninterrupted run would go on.
    """
    if cfg.crop % 8:
        raise MicroforgeError(f"crop must be a multiple of 8, got {cfg.crop}")
    out = Path(out)
    parts = [_load_split(read_dataset(d), cfg, "train") for d in datasets]  # bad data fails before anything is written
    images, masks, merge = (torch.cat(p) for p in zip(*parts))
    n, _, h, w = images.shape
    if min(h, w) < cfg.crop:
        raise MicroforgeError(f"tiles of {w}x{h} px are smaller than the {cfg.crop} px crop")
    data_record = prepare_run_dir(
        out, "model.safetensors", "segmenter", resume, config_to_dict(cfg), list(datasets), progress
    )
    torch.manual_seed(cfg.seed)
    model = AttentionUNet(AttentionUNetConfig(channels=tuple(cfg.channels)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)

    def step(gen: torch.Generator) -> dict[str, float]:
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        y0 = int(torch.randint(0, h - cfg.crop + 1, (1,), generator=gen))
        x0 = int(torch.randint(0, w - cfg.crop + 1, (1,), generator=gen))
        window = (slice(y0, y0 + cfg.crop), slice(x0, x0 + cfg.crop))
        x, y = _augment(images[idx][..., window[0], window[1]], masks[idx][..., window[0], window[1]], gen)
        loss = segmentation_loss(model(x), y, merge[idx])
        return optimizer_step(loss, opt, sched)

    seconds = run_steps(
        out,
        cfg.steps,
        cfg.seed,
        cfg.checkpoint_every,
        {"model": model},
        {"opt": opt, "sched": sched},
        step,
        "train segmenter",
        progress,
    )
    model.eval()
    meta = {
        "trained_on": [str(d) for d in datasets],
        "data_digests": [data_record[str(d)] for d in datasets],
        "train_config": asdict(cfg),
        "train_tiles": n,
        # train_seconds: over every run that trained it (scripts/segmentation_report.py reads it);
        # train_seconds_this_run: since the last resume
        **seconds.record("train_"),
    }
    model.save_pretrained(out, {"training": meta})
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return model


def evaluate_segmentation(
    predict: Callable[[np.ndarray], np.ndarray],
    dataset: str | Path | DatasetTable,
    split: str | None = "test",
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    modality: str | None = None,
) -> dict:
    """Score a segmenter (a function: grey ``(H, W)`` in [0, 1] -> phase map) on a split.

    Confusion is pooled over each specimen's tiles. Returns per-specimen and overall per-class
    IoU and phase fractions (predicted and true, percent); specimens with binary masks are
    scored with primary and secondary alpha merged.
    """
    data = dataset if isinstance(dataset, DatasetTable) else read_dataset(dataset)
    ds = MicrographDataset(data, split=split, fractions=fractions, seed=seed, modality=modality, augment=False)
    rows = ds.table[ds.table["mask"] != ""]
    if rows.empty:
        raise MicroforgeError(f"{data.root}: no tiles with masks in the {split} split")
    specimens, total = {}, np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    merged_any = False
    for specimen, group in rows.groupby("specimen"):
        conf = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
        merge = MASK_TYPE_COLUMN in group and (group[MASK_TYPE_COLUMN] == "binary_white_is_beta").any()
        for tile, mask in zip(group["tile"], group["mask"]):
            truth = read_grey(data.root / mask).astype(np.intp)
            pred = predict(read_grey(data.root / tile).astype(np.float32) / 255.0).astype(np.intp)
            if merge:
                pred = np.where(pred == SECONDARY_ALPHA, PRIMARY_ALPHA, pred)
            conf += np.bincount(truth.ravel() * N_CLASSES + pred.ravel(), minlength=N_CLASSES**2).reshape(
                N_CLASSES, N_CLASSES
            )
        specimens[specimen] = {**_scores(conf, merge), "merged_alpha": bool(merge)}
        if not merge:
            total += conf
        merged_any |= bool(merge)
    overall = _scores(total, False) if total.sum() else None
    return {"split": split, "specimens": specimens, "overall_three_class": overall, "has_binary_masks": merged_any}


def _scores(conf: np.ndarray, merged: bool) -> dict:
    """IoU per class and fractions (percent) from a confusion matrix (rows: truth, cols: pred)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    n = max(conf.sum(), 1)
    true, pred = 100.0 * conf.sum(1) / n, 100.0 * conf.sum(0) / n
    if merged:
        iou[SECONDARY_ALPHA] = np.nan
    clean = lambda a: [None if not np.isfinite(v) else round(float(v), 4) for v in a]  # noqa: E731
    return {
        "iou": clean(iou),
        "fraction_true_pct": clean(true),
        "fraction_pred_pct": clean(pred),
        "fraction_error_pts": clean(pred - true),
    }
