"""Train the baselines, resumably: CCDM and CcGAN with hard-vicinal batches, and the
unconditional DDPM with the hybrid loss.

Every step draws its vicinal labels, images, noise and timesteps from a generator seeded by
``(seed, step)``; checkpoints are atomic (:mod:`.checkpoints`), so ``--resume`` continues an
interrupted run exactly. The finished folder holds ``config.json`` (format
``microforge-baseline/1``), ``properties.json`` with the training hull, and the networks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from ..data.dataset import d4_batch, load_split
from ..errors import MicroforgeError
from ..pipelines.baselines import BaselinePipeline
from ..models.hybrid_loss import hybrid_loss, vlb_loss
from ..models.baselines import (
    ACGANGenerator,
    ACWGANCritic,
    BaselineConfig,
    CcGANDiscriminator,
    CcGANGenerator,
    LabelEmbedding,
    build_ccdm_unet,
    ccdm_embed_dim,
)
from ..models.vicinity import cap_per_vector, kernel_sigma, vicinal_batch, vicinity_kappa
from ..models.weights import save_weights
from .checkpoints import prepare_run_dir
from .data import properties_with_hull
from .loop import CHECKPOINT_DIR, random_batch, run_steps


def ccdm_scheduler(cfg: BaselineConfig) -> DDPMScheduler:
    """The training schedule of CCDM and DDPM: linear betas from 1e-4 to 0.02 at T = 1000, scaled
    by 1000 / T for other T (improved DDPM's rule, so that T = 4000 does not spend half its steps
    on pure noise); DDPM learns the variance (Lee & Yun)."""
    variance = "learned_range" if cfg.kind == "ddpm" else "fixed_small"
    scale = 1000.0 / cfg.num_train_timesteps
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule="linear",
        beta_start=1e-4 * scale,
        beta_end=0.02 * scale,
        prediction_type="epsilon",
        variance_type=variance,
    )


class BaselineTrainer:
    """Holds the data, networks and optimisers of one baseline run."""

    def __init__(self, data: str | Path, out: Path, cfg: BaselineConfig, progress: bool) -> None:
        self.cfg, self.out, self.progress = cfg, out, progress
        # the dataset's content digest, recorded with the model; train_baseline sets it once the
        # run folder is checked (None: not recorded)
        self.data_digest: str | None = None
        split = load_split(data, "train", cfg.split_fractions, cfg.train.seed, cfg.modality, cfg.resolution)
        images, raw, ds = split.images, split.raw, split.dataset
        if cfg.kind != "ddpm":  # the unconditional DDPM trains on unlabelled sets too
            ds.properties.require(str(data), f"train {cfg.kind}")
        specimens = np.asarray(ds.table["specimen"])
        if cfg.kind in ("ccgan", "ccdm"):  # at most max_per_vector images per property vector (TiM3 appendix A)
            keep = cap_per_vector(ds.properties.normalise(raw), cfg.train.max_per_vector, cfg.train.seed)
            images, raw, specimens = images[torch.from_numpy(keep)], raw[keep], specimens[keep]
        self.images = images * 2.0 - 1.0  # (N, 1, R, R) in [-1, 1]
        self.raw, self.props, self.specimens = raw, ds.properties, list(specimens)
        self.labels = self.props.normalise(raw)
        self.sigma = kernel_sigma(self.labels)
        self.kappa = vicinity_kappa(self.labels, cfg.train.vicinity_m)
        k = len(self.props)
        torch.manual_seed(cfg.train.seed)
        if cfg.kind in ("ccdm", "ddpm"):
            self.modules = {"unet": build_ccdm_unet(cfg)}
            if cfg.kind == "ccdm":
                self.modules["label_embedding"] = LabelEmbedding(k, ccdm_embed_dim(cfg))
            params = [p for m in self.modules.values() for p in m.parameters()]
            self.states = {"opt": torch.optim.Adam(params, lr=cfg.train.lr, betas=tuple(cfg.train.adam_betas))}
            if cfg.train.ema_decay:
                self.states["ema"] = EMAModel(self.modules["unet"].parameters(), decay=cfg.train.ema_decay)
            self.scheduler = ccdm_scheduler(cfg)
        elif cfg.kind == "acwgan-gp":
            self._acgan_labels(ds)
            n = len(self.categories)
            self.modules = {"generator": ACGANGenerator(cfg, n), "discriminator": ACWGANCritic(cfg, n)}
            betas = (0.5, 0.9)  # WGAN-GP's Adam settings, with AdamW's decoupled weight decay
            self.states = {
                "opt_g": torch.optim.AdamW(self.modules["generator"].parameters(), lr=cfg.train.lr, betas=betas),
                "opt_d": torch.optim.AdamW(self.modules["discriminator"].parameters(), lr=cfg.train.lr, betas=betas),
            }
        else:
            self.modules = {"generator": CcGANGenerator(cfg, k), "discriminator": CcGANDiscriminator(cfg, k)}
            betas = (0.5, 0.999)  # SNGAN's Adam settings
            self.states = {
                "opt_g": torch.optim.Adam(self.modules["generator"].parameters(), lr=cfg.train.lr, betas=betas),
                "opt_d": torch.optim.Adam(self.modules["discriminator"].parameters(), lr=cfg.train.lr, betas=betas),
            }

    def _acgan_labels(self, ds) -> None:
        """Category codes of each tile (manifest column ``cfg.category``) and low/mid/high bins of
        ``cfg.scalar``: the lower, middle and upper thirds of its observed range (Howland et al.)."""
        cfg = self.cfg
        if cfg.category not in ds.table.columns:
            raise MicroforgeError(f"the dataset has no column {cfg.category!r} for ACWGAN-GP's categorical condition")
        if cfg.scalar not in self.props.names:
            raise MicroforgeError(
                f"ACWGAN-GP bins the property {cfg.scalar!r}, which the dataset lacks; it has "
                f"{', '.join(self.props.names)}"
            )
        names = ds.table[cfg.category].astype(str).to_numpy()
        self.categories = sorted(set(names))
        self.category_codes = torch.tensor([self.categories.index(n) for n in names])
        values = self.raw[:, self.props.names.index(cfg.scalar)]
        self.bin_edges = values.min() + (values.max() - values.min()) * np.array([1 / 3, 2 / 3])
        self.bins = torch.from_numpy(np.digitize(values, self.bin_edges)).long()

    def _acgan_step(self, gen: torch.Generator) -> dict[str, float]:
        cfg, g, d = self.cfg, self.modules["generator"], self.modules["discriminator"]
        b, n_cat = cfg.train.batch_size, len(self.categories)
        ce = F.cross_entropy
        for _ in range(cfg.critic_steps):
            idx, x = random_batch(self.images, b, gen)
            c, k = self.category_codes[idx], self.bins[idx]
            with torch.no_grad():
                fake = g(torch.randn(b, cfg.z_dim, generator=gen), c, k)
            s_real, lc, lb = d(x)
            s_fake = d(fake)[0]
            mix = torch.rand(b, 1, 1, 1, generator=gen)
            xi = (mix * x + (1 - mix) * fake).requires_grad_(True)
            grad = torch.autograd.grad(d(xi)[0].sum(), xi, create_graph=True)[0]
            gp = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
            loss_d = s_fake.mean() - s_real.mean() + cfg.gp_weight * gp + cfg.cls_weight * (ce(lc, c) + ce(lb, k))
            self.states["opt_d"].zero_grad()
            loss_d.backward()
            self.states["opt_d"].step()
        c = torch.randint(0, n_cat, (b,), generator=gen)
        k = torch.randint(0, 3, (b,), generator=gen)
        s, lc, lb = d(g(torch.randn(b, cfg.z_dim, generator=gen), c, k))
        loss_g = -s.mean() + cfg.cls_weight * (ce(lc, c) + ce(lb, k))
        self.states["opt_g"].zero_grad()
        loss_g.backward()
        self.states["opt_g"].step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "gp": gp.item()}

    def batch(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hard-vicinal batch: target labels ``(B, K)``, real images in their vicinities
        ``(B, 1, R, R)`` (D4-augmented) and fake labels ``(B, K)`` inside them (HVDL)."""
        b = self.cfg.train.batch_size
        y, idx, fake = vicinal_batch(self.labels, b, self.sigma, self.kappa, gen)
        x = d4_batch(self.images[torch.from_numpy(idx)], torch.randint(0, 8, (b,), generator=gen))
        return torch.from_numpy(y).float(), x, torch.from_numpy(fake).float()

    def step(self, gen: torch.Generator) -> dict[str, float]:
        if self.cfg.kind == "ddpm":
            return self._ddpm_step(gen)
        if self.cfg.kind == "acwgan-gp":
            return self._acgan_step(gen)
        y, x, y_fake = self.batch(gen)
        if self.cfg.kind == "ccdm":
            unet, embed = self.modules["unet"], self.modules["label_embedding"]
            noise = torch.randn(x.shape, generator=gen)
            t = torch.randint(0, self.cfg.num_train_timesteps, (len(x),), generator=gen)
            drop = torch.rand(len(x), generator=gen) < self.cfg.cond_dropout
            pred = unet(self.scheduler.add_noise(x, noise, t), t, class_labels=embed(y, drop)).sample
            loss = F.mse_loss(pred, noise)
            self.states["opt"].zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for m in self.modules.values() for p in m.parameters()], 1.0)
            self.states["opt"].step()
            self._ema_step()
            return {"loss": loss.item()}
        g, d = self.modules["generator"], self.modules["discriminator"]
        z = torch.randn(len(x), self.cfg.z_dim, generator=gen)
        fake = g(z, y_fake)  # HVDL: fakes drawn from labels inside the vicinity, judged under the target
        loss_d = F.relu(1.0 - d(x, y)).mean() + F.relu(1.0 + d(fake.detach(), y)).mean()  # hinge, hard vicinal
        self.states["opt_d"].zero_grad()
        loss_d.backward()
        self.states["opt_d"].step()
        loss_g = -d(g(z, y), y).mean()  # the generator's step: targets drawn as above
        self.states["opt_g"].zero_grad()
        loss_g.backward()
        self.states["opt_g"].step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def _ema_step(self) -> None:
        if "ema" in self.states:
            self.states["ema"].step(self.modules["unet"].parameters())

    def _ddpm_step(self, gen: torch.Generator) -> dict[str, float]:
        """Unconditional: uniform images, the hybrid loss ``L_simple + lambda L_vlb``, with
        ``L_vlb = sum_t L_t`` estimated without bias as ``T L_t`` at the drawn ``t``."""
        b = self.cfg.train.batch_size
        _, x = random_batch(self.images, b, gen)
        noise = torch.randn(x.shape, generator=gen)
        t = torch.randint(0, self.cfg.num_train_timesteps, (b,), generator=gen)
        xt = self.scheduler.add_noise(x, noise, t)
        eps, v = self.modules["unet"](xt, t).sample.chunk(2, dim=1)
        simple = F.mse_loss(eps, noise)
        vlb = vlb_loss(self.scheduler, x.double(), xt.double(), t, eps.detach().double(), v.double()).mean().float()
        loss = hybrid_loss(simple, vlb, self.cfg.vlb_weight, self.cfg.num_train_timesteps)
        self.states["opt"].zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.modules["unet"].parameters(), 1.0)
        self.states["opt"].step()
        self._ema_step()
        return {"loss": loss.item(), "simple": simple.item(), "vlb_bpd": vlb.item()}

    def run(self) -> Path:
        cfg = self.cfg.train
        seconds = run_steps(
            self.out,
            cfg.steps,
            cfg.seed,
            cfg.checkpoint_every,
            self.modules,
            self.states,
            self.step,
            f"train {self.cfg.kind}",
            self.progress,
        )
        if "ema" in self.states:  # the EMA weights are the ones saved
            self.states["ema"].copy_to(self.modules["unet"].parameters())
        sampling = {"unet", "label_embedding", "generator"}  # what the pipeline samples with
        for name, module in self.modules.items():
            if name not in sampling:  # the discriminator or critic: kept beside the model
                save_weights(module, self.out / name, {"model_type": f"{self.cfg.kind}-{name}"})
        record = {
            "train_tiles": len(self.images),
            **({"data_digest": self.data_digest} if self.data_digest else {}),
            "sigma": self.sigma.round(6).tolist(),
            "kappa": self.kappa.round(6).tolist(),
            **seconds.record(),
        }
        if self.cfg.kind == "acwgan-gp":  # how property targets map to the two conditions at sampling
            by_specimen: dict[str, tuple[list[float], int]] = {}
            for s, y, c in zip(self.specimens, self.labels, self.category_codes.tolist()):
                by_specimen.setdefault(s, (np.round(y, 6).tolist(), c))
            record["acgan"] = {
                "categories": self.categories,
                "scalar": self.cfg.scalar,
                "bin_edges": self.bin_edges.tolist(),
                "specimen_labels": [v[0] for v in by_specimen.values()],
                "specimen_categories": [v[1] for v in by_specimen.values()],
            }
        BaselinePipeline(
            self.out,
            self.cfg,
            properties_with_hull(self.props, self.specimens, self.raw),
            {n: m for n, m in self.modules.items() if n in sampling},
            dict(self.scheduler.config) if self.cfg.kind in ("ccdm", "ddpm") else None,
        ).save_pretrained(self.out, record)
        shutil.rmtree(self.out / CHECKPOINT_DIR, ignore_errors=True)
        return self.out


def train_baseline(
    data: str | Path, out: str | Path, cfg: BaselineConfig, resume: bool = False, progress: bool = True
) -> Path:
    """Train CCDM, CcGAN, DDPM or ACWGAN-GP (``cfg.kind``) on dataset ``data`` into ``out``; returns ``out``.

    A finished ``out`` is refused; an unfinished one is continued only with ``resume``."""
    out = Path(out)
    trainer = BaselineTrainer(data, out, cfg, progress)  # bad data fails before anything is written
    data_record = prepare_run_dir(out, "config.json", "model", resume, cfg.to_dict(), [data], progress)
    trainer.data_digest = data_record[str(data)]
    return trainer.run()
