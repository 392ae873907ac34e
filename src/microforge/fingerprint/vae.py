"""``microforge fingerprint train``: White et al.'s ResNet18-VAE on a dataset's training split,
resumable, saved as ``config.json`` + ``model.safetensors`` + ``reconstruction.json`` (how well
it reconstructs the held-out test tiles), and, with ``refiner_steps``, a detail refiner in
``refiner/`` (a stochastic decoder of the laths the VAE's reconstructions blur away; not White et
al.'s); loading it, and encoding images with it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..characterize.segmentation import segment_classical
from ..config import nested_config_from_dict, plain_data
from ..data.dataset import d4_batch, load_split
from ..data.phase_map import BETA, PRIMARY_ALPHA
from ..errors import MicroforgeError
from ..models.detail_refiner import DetailRefiner, RefinerConfig
from ..models.fingerprint import FingerprintConfig, FingerprintVAE, fingerprint_loss
from ..io import read_yaml_mapping, resize_batch
from ..models.patch_discriminator import PatchDiscriminator, hinge_discriminator_loss, hinge_generator_loss
from ..training.checkpoints import prepare_run_dir, save_checkpoint
from ..seeding import seeded_generator
from ..training.loop import StepSeconds, lr_factor, random_batch, run_steps
from ..training.refiner_trainer import train_refiner

RECONSTRUCTION_FILE = "reconstruction.json"
LR_DECAYS = ("none", "cosine")
AUTOCASTS = (None, "bf16")
ADVERSARIAL_CHECKPOINTS = "checkpoints_adversarial"
REFINER_DIR = "refiner"  # the detail refiner's folder inside a fingerprint model folder
REFINER_CHECKPOINTS = "checkpoints_refiner"


@dataclass
class FingerprintTrainConfig:
    model: FingerprintConfig = field(default_factory=FingerprintConfig)
    steps: int = 3000  # 28-38 minutes on 2 idle cores (by machine) at 128 px (configs/fingerprint-tiny.yaml)
    batch_size: int = 32
    lr: float = 1e-3  # Adam (White et al. name the optimiser, not its rate)
    # "cosine": 100-step warm-up, then half a cosine to 0 (morphology accuracy as the fixed rate's, 0.854 against 0.853;
    # every SVR reads better: alpha fraction R2 0.83 against 0.76, YS 0.26 against 0.14); "none": the fixed rate
    lr_decay: str = "cosine"
    # steps of a decoder fine-tune against a patch discriminator after the VAE (0: none, White et al.'s
    # VAE alone). The encoder is frozen in eval mode, so every fingerprint stays as it was.
    adversarial_steps: int = 0
    adversarial_weight: float = 0.1  # of the hinge generator loss, beside White et al.'s loss (TiM3's decoder uses 0.1)
    adversarial_lr: float = 1e-4  # Adam(0.5, 0.9), decoder and discriminator alike, as GANs are trained
    # "bf16": the VAE's forward pass under bfloat16 autocast (convolutions and matmuls in bf16, the
    # losses and the FFT in fp32), for speed on CPUs with bf16 units; None: fp32 throughout, the default
    autocast: str | None = None
    # steps of the detail refiner, trained after the VAE (and its fine-tune) to draw the detail of the
    # VAE's reconstructions of the training tiles (0: none, White et al.'s deterministic decoder alone).
    # The VAE is frozen, so every fingerprint stays as it was; 4 000 steps at batch 32 took 45 min on 2 cores
    refiner_steps: int = 0
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    refiner_lr: float = 1e-3  # AdamW, 100-step warm-up and a cosine decay to 0
    modality: str | None = "SEM"
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
    seed: int = 0
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if self.autocast not in AUTOCASTS:
            raise MicroforgeError(f"autocast must be bf16 or null (fp32), got {self.autocast!r}")
        if self.lr_decay not in LR_DECAYS:
            raise MicroforgeError(f"lr_decay must be one of {', '.join(LR_DECAYS)}, got {self.lr_decay!r}")
        if self.adversarial_steps < 0 or self.adversarial_weight < 0 or self.adversarial_lr <= 0:
            raise MicroforgeError(
                "adversarial_steps and adversarial_weight must not be negative and adversarial_lr must be positive"
            )
        if self.refiner_steps < 0 or self.refiner_lr <= 0:
            raise MicroforgeError("refiner_steps must not be negative and refiner_lr must be positive")
        if self.refiner_steps and self.refiner.resolution != self.model.resolution:
            raise MicroforgeError(
                f"refiner resolution {self.refiner.resolution} must equal the model resolution {self.model.resolution}"
            )

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


def load_fingerprint_config(path: str | Path | None) -> FingerprintTrainConfig:
    return (
        FingerprintTrainConfig()
        if path is None
        else nested_config_from_dict(FingerprintTrainConfig, read_yaml_mapping(path), str(path))
    )


# ---------------------------------------------------------------------------------- train


def training_step(
    model: FingerprintVAE,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    cfg: FingerprintTrainConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """One optimiser step of White et al.'s loss on a random batch of ``cfg.batch_size`` of
    ``images`` ``(N, 1, R, R)`` in [0, 1], under ``cfg.autocast``; returns the loss's parts."""
    _, x = random_batch(images, cfg.batch_size, gen)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.autocast == "bf16"):
        loss, parts = fingerprint_loss(model, x, gen)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return parts


def train_fingerprints(
    data: str | Path,
    out: str | Path,
    cfg: FingerprintTrainConfig = FingerprintTrainConfig(),
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train the VAE on the train split of ``data`` into ``out`` (resumable; a finished ``out`` is refused)."""
    out = Path(out)
    images = load_split(
        data, "train", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution
    ).images  # fails before writing
    data_record = prepare_run_dir(
        out, "model.safetensors", "fingerprint model", resume, cfg.to_dict(), [data], progress
    )
    torch.manual_seed(cfg.seed)
    model = FingerprintVAE(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    states: dict[str, Any] = {"opt": opt}
    if cfg.lr_decay == "cosine":
        states["sched"] = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, "cosine"))

    def step(gen: torch.Generator) -> dict[str, float]:
        parts = training_step(model, opt, images, cfg, gen)
        if "sched" in states:
            states["sched"].step()
        return parts

    seconds = run_steps(
        out,
        cfg.steps,
        cfg.seed,
        cfg.checkpoint_every,
        {"vae": model},
        states,
        step,
        "train fingerprints",
        progress,
    )
    test = load_split(data, "test", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution)
    held_out, ds = test.images, test.dataset
    tile_px = int(ds[0]["image"].shape[-1])
    record: dict[str, Any] = {
        "train": cfg.to_dict(),
        "train_tiles": len(images),
        "data_digest": data_record[str(data)],
        **seconds.record(),
    }
    quality: dict[str, Any] = {"split": "test", "tiles": len(held_out)}
    if cfg.adversarial_steps:
        quality["before_adversarial"] = reconstruction_quality(model, held_out, tile_px, cfg.modality or "SEM")
        # a resumed fine-tune skips the VAE
        save_checkpoint(out / "checkpoints", cfg.steps, {"vae": model}, states, seconds=seconds.total)
        record.update(_fine_tune_decoder(model, images, out, cfg, progress).record("adversarial_"))
    refiner = None
    if cfg.refiner_steps:
        quality["before_refiner"] = reconstruction_quality(model, held_out, tile_px, cfg.modality or "SEM")
        if not cfg.adversarial_steps:  # a resumed refiner skips the VAE (after a fine-tune, its last steps rerun)
            save_checkpoint(out / "checkpoints", cfg.steps, {"vae": model}, states, seconds=seconds.total)
        refiner, refiner_seconds = _train_refiner(model, images, out, cfg, progress)
        refiner.save_pretrained(out / REFINER_DIR, {"train_tiles": len(images), **refiner_seconds.record()})
        record.update(refiner_seconds.record("refiner_"))
    quality.update(reconstruction_quality(model, held_out, tile_px, cfg.modality or "SEM", refiner))
    (out / RECONSTRUCTION_FILE).write_text(json.dumps(quality, indent=1) + "\n")
    model.save_pretrained(out, record)
    for ckdir in ("checkpoints", ADVERSARIAL_CHECKPOINTS, REFINER_CHECKPOINTS):
        shutil.rmtree(out / ckdir, ignore_errors=True)
    return out


def _train_refiner(
    model: FingerprintVAE, images: torch.Tensor, out: Path, cfg: FingerprintTrainConfig, progress: bool
) -> tuple[DetailRefiner, StepSeconds]:
    """Train a detail refiner for ``cfg.refiner_steps`` to draw each training tile ``images``
    ``(N, 1, R, R)`` from the frozen ``model``'s reconstruction of it (both under the same random
    symmetry of the square). Returns the refiner (eval mode) and the seconds spent."""
    pairs = torch.cat([images, reconstruct(model, images)], dim=1)  # (N, 2, R, R): tile, reconstruction
    return train_refiner(
        pairs,
        cfg.refiner,
        out,
        cfg.refiner_steps,
        cfg.batch_size,
        cfg.refiner_lr,
        (cfg.seed, 2),
        cfg.checkpoint_every,
        progress,
        log_path=out / "log_refiner.jsonl",
        checkpoint_dir=out / REFINER_CHECKPOINTS,
    )


def _fine_tune_decoder(
    model: FingerprintVAE, images: torch.Tensor, out: Path, cfg: FingerprintTrainConfig, progress: bool
) -> StepSeconds:
    """Fine-tune ``model``'s decoder for ``cfg.adversarial_steps`` against a patch discriminator:
    White et al.'s loss on the reconstruction plus ``adversarial_weight`` times the hinge generator
    loss, so that the decoder draws texture (laths) that the pixel terms average away. The encoder
    is frozen in eval mode (its fingerprints do not change). Returns the seconds spent."""
    encoder = [model.encoder, model.to_hidden, model.hidden_norm, model.mu, model.logvar]
    for part in encoder:
        part.requires_grad_(False)
    disc = PatchDiscriminator(in_channels=1)
    decoder_params = [p for p in model.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam(decoder_params, lr=cfg.adversarial_lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.adversarial_lr, betas=(0.5, 0.9))

    def step(gen: torch.Generator) -> dict[str, float]:
        for part in encoder:
            part.eval()  # run_steps put every module in train mode; the encoder's batch norms stay fixed
        _, x = random_batch(images, cfg.batch_size, gen)
        loss, parts = fingerprint_loss(model, x, gen, with_logits=True)
        rec = torch.sigmoid(parts.pop("logits"))
        adversarial = hinge_generator_loss(disc(rec * 2 - 1))
        opt_g.zero_grad()
        (loss + cfg.adversarial_weight * adversarial).backward()
        opt_g.step()
        d_loss = hinge_discriminator_loss(disc(x * 2 - 1), disc(rec.detach() * 2 - 1))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        return {**parts, "adversarial": adversarial.item(), "discriminator": d_loss.item()}

    return run_steps(
        out,
        cfg.adversarial_steps,
        (cfg.seed, 1),
        cfg.checkpoint_every,
        {"vae": model, "discriminator": disc},
        {"opt_decoder": opt_g, "opt_discriminator": opt_d},
        step,
        "fine-tune the decoder",
        progress,
        log_path=out / "log_adversarial.jsonl",
        checkpoint_dir=out / ADVERSARIAL_CHECKPOINTS,
    )


@torch.no_grad()
def reconstruct(
    model: FingerprintVAE,
    images: torch.Tensor,
    refiner: DetailRefiner | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Decoded posterior means ``(N, 1, R, R)`` in [0, 1] of images ``(N, 1, R, R)`` in [0, 1], with
    their detail drawn by ``refiner`` where one is given (seeded by ``seed``: the same seed, the same draw)."""
    model.eval()
    rec = torch.cat(
        [model.decode(model.encode(images[i : i + batch_size])[0]) for i in range(0, len(images), batch_size)]
    )
    return rec if refiner is None else refine(refiner, rec, seed, batch_size)


@torch.no_grad()
def refine(refiner: DetailRefiner, decoded: torch.Tensor, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """``refiner``'s draw of the detail of decoded images ``(N, 1, R, R)`` in [0, 1], in batches;
    seeded by ``seed`` (the same seed and batch size, the same draw)."""
    refiner.eval()
    gen = seeded_generator(seed, 7)
    return torch.cat([refiner.refine(decoded[i : i + batch_size], gen) for i in range(0, len(decoded), batch_size)])


def reconstruction_quality(
    model: FingerprintVAE,
    images: torch.Tensor,
    tile_px: int,
    modality: str = "SEM",
    refiner: DetailRefiner | None = None,
) -> dict[str, float]:
    """How well ``model`` (with ``refiner`` drawing the detail of its reconstructions, where given)
    reconstructs ``images`` ``(N, 1, R, R)`` in [0, 1] (R: the model's resolution).

    Returns the pixel ``mse``; the mean ``ssim`` (scikit-image, data range 1); the
    primary-alpha fraction measured by the classical segmenter on each input and on its
    reconstruction (``alpha_fraction_abs_error_mean`` and ``_p90``: the mean and 90th percentile of
    their absolute difference, a fraction; ``alpha_fraction_signed_error_mean``: the mean of
    reconstruction minus input, positive where the reconstructions read as more primary alpha, as
    White et al. found for theirs when the laths blur away, since the segmenter takes lath-free
    alpha for primary alpha); ``beta_fraction_abs_error_mean``, the same for beta, the phase
    whose layout needs no laths to be read; and ``flat_share``: reconstructions whose grey range
    is under 0.05, the collapse to a flat grey. ``tile_px``: the tiles' native size, which scales
    the segmenter's lath width to the resized images.
    """
    from skimage.metrics import structural_similarity

    rec = reconstruct(model, images, refiner)
    x, y = images[:, 0].double().numpy(), rec[:, 0].double().numpy()
    halfwidth = max(1, round(6 * x.shape[-1] / tile_px))  # the segmenter's 6 px laths at 128 px

    def fractions(grey: np.ndarray) -> np.ndarray:  # (primary alpha, beta) area fractions
        phases = segment_classical(grey, modality, halfwidth)
        return np.array([np.mean(phases == PRIMARY_ALPHA), np.mean(phases == BETA)])

    diff = np.array([fractions(b) - fractions(a) for a, b in zip(x, y)])  # (N, 2): reconstruction - input
    return {
        "mse": float(np.mean((x - y) ** 2)),
        "ssim": float(np.mean([structural_similarity(a, b, data_range=1.0) for a, b in zip(x, y)])),
        "alpha_fraction_abs_error_mean": float(np.mean(np.abs(diff[:, 0]))),
        "alpha_fraction_abs_error_p90": float(np.percentile(np.abs(diff[:, 0]), 90)),
        "alpha_fraction_signed_error_mean": float(np.mean(diff[:, 0])),
        "beta_fraction_abs_error_mean": float(np.mean(np.abs(diff[:, 1]))),
        "flat_share": float(np.mean(np.ptp(y.reshape(len(y), -1), axis=1) < 0.05)),
    }


def load_fingerprint_model(folder: str | Path) -> FingerprintVAE:
    """A trained fingerprint VAE (:meth:`FingerprintVAE.from_pretrained`)."""
    return FingerprintVAE.from_pretrained(folder)


def load_refiner(folder: str | Path) -> DetailRefiner | None:
    """The detail refiner of a fingerprint model folder, or None where it was trained without one."""
    path = Path(folder) / REFINER_DIR
    return DetailRefiner.from_pretrained(path) if path.is_dir() else None


@torch.no_grad()
def fingerprints(model: FingerprintVAE, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Fingerprints ``(N, latent)`` (posterior means) of greyscale images ``(N, H, W)`` in [0, 1]."""
    model.eval()
    x = resize_batch(images, model.cfg.resolution)
    return torch.cat([model.encode(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]).double().numpy()


@torch.no_grad()
def symmetry_fingerprints(model: FingerprintVAE, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Fingerprints pooled over the 8 symmetries of the square, ``(N, 2 * latent)``: the mean and
    the standard deviation (over the 8 views) of the posterior means of each greyscale image
    ``(N, H, W)`` in [0, 1] under every rotation by quarter turns and every reflection.

    Both halves are invariant to how the specimen was turned under the microscope (the 8 views of
    a turned image are the same 8 views). The mean carries what the VAE reads in every orientation;
    the standard deviation how much its reading changes as the image turns. Neither half alone
    reads the benchmark's morphology as well as the plain fingerprint, together they read it
    better (docs/baselines.md). Eight encodings per image.
    """
    x = resize_batch(images, model.cfg.resolution)
    views = np.stack([fingerprints(model, d4_batch(x, torch.full((len(x),), k)), batch_size) for k in range(8)])
    return np.concatenate([views.mean(0), views.std(0)], axis=1)  # views: (8, N, latent)
