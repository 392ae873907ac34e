"""Sampling the baselines (CCDM, CcGAN, the unconditional DDPM) with the same surface as
:class:`~microforge.pipelines.tim3.TiM3Pipeline`, so ``generate``, ``evaluate`` and ``serve``
take either. The baselines have no stage-1 map: ``Generated.maps`` is ``None``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from ..io import read_json_file, write_json_atomic
from ..errors import MicroforgeError
from ..models.baselines import (
    ACGANGenerator,
    BaselineConfig,
    CcGANGenerator,
    LabelEmbedding,
    baseline_config_from_dict,
    ccdm_embed_dim,
)
from ..models.weights import load_weights, save_weights
from ..properties import PropertySet
from ..seeding import seeded_generator
from .base import Generated, SamplingPipeline, save_diffusers_module

FORMAT = "microforge-baseline/1"


class BaselinePipeline(SamplingPipeline):
    """A trained CCDM, CcGAN or DDPM; build it with :meth:`from_pretrained`. The DDPM ignores
    the targets (it is unconditional) but takes them, so the same calls work."""

    def __init__(
        self,
        folder: Path,
        cfg: BaselineConfig,
        properties: PropertySet,
        modules: dict[str, torch.nn.Module],
        scheduler_config: dict | None,
    ) -> None:
        self.folder, self.cfg, self.properties, self.modules, self.scheduler_config = (
            folder,
            cfg,
            properties,
            modules,
            scheduler_config,
        )
        for m in modules.values():
            m.eval()

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "BaselinePipeline":
        folder = Path(folder)
        if not folder.is_dir():
            raise MicroforgeError(f"{folder}: model folder not found")
        raw = read_json_file(folder / "config.json", "a trained baseline model")
        if raw.get("format") != FORMAT:
            raise MicroforgeError(f"{folder / 'config.json'}: format {raw.get('format')!r} is not {FORMAT!r}")
        cfg = baseline_config_from_dict(raw["config"], str(folder / "config.json"), legacy=True)
        props = PropertySet.load(folder / "properties.json")
        k = len(props)
        sched = None
        if cfg.kind in ("ccdm", "ddpm"):
            unet_dir = folder / "unet"
            if not unet_dir.is_dir():
                raise MicroforgeError(f"{unet_dir}: model component not found")
            try:
                unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True)
            except Exception as exc:  # diffusers raises several types for bad files
                raise MicroforgeError(f"{unet_dir}: cannot be loaded ({exc.__class__.__name__})") from None
            modules = {"unet": unet}
            if cfg.kind == "ccdm":
                modules["label_embedding"] = load_weights(
                    LabelEmbedding(k, ccdm_embed_dim(cfg)), folder / "label_embedding"
                )
            sched = read_json_file(folder / "scheduler" / "scheduler_config.json", "a diffusion scheduler")
        elif cfg.kind == "acwgan-gp":
            if "acgan" not in raw:
                raise MicroforgeError(f"{folder / 'config.json'}: lacks the 'acgan' section (categories and bins)")
            modules = {
                "generator": load_weights(ACGANGenerator(cfg, len(raw["acgan"]["categories"])), folder / "generator")
            }
        else:
            modules = {"generator": load_weights(CcGANGenerator(cfg, k), folder / "generator")}
        pipe = cls(folder, cfg, props, modules, sched)
        pipe.acgan = raw.get("acgan")
        return pipe

    def save_pretrained(self, folder: str | Path, record: dict) -> Path:
        """Write this model as a model folder that :meth:`from_pretrained` reads back: the UNet
        through diffusers' ``save_pretrained``, the other networks as safetensors
        (:func:`~microforge.models.weights.save_weights`), ``scheduler/`` for the diffusion kinds,
        ``properties.json`` (with the hull points), then ``config.json`` with ``record`` (tile
        count, the vicinity's sigma and kappa, ACWGAN-GP's conditions), last, so that a folder
        with config.json is a complete model. A folder that already holds a model is refused, so
        nothing is overwritten. Returns the folder."""
        folder = Path(folder)
        if (folder / "config.json").exists():
            raise MicroforgeError(f"{folder}: already holds a model; choose another folder")
        for name, module in self.modules.items():
            if isinstance(module, UNet2DModel):
                save_diffusers_module(module, folder / name)
            else:
                save_weights(module, folder / name, {"model_type": f"{self.cfg.kind}-{name}"})
        if self.scheduler_config is not None:
            DDPMScheduler.from_config(self.scheduler_config).save_pretrained(folder / "scheduler")
        self.properties.save(folder / "properties.json")
        self.write_config(folder, self.cfg, record)
        return folder

    @staticmethod
    def write_config(folder: Path, cfg: BaselineConfig, record: dict) -> Path:
        """Write the model folder's ``config.json`` (format, config and ``record``: tile count,
        the vicinity's sigma and kappa, ACWGAN-GP's conditions). The one writer of the format; the
        trainer calls it last, so a folder with config.json is a complete model."""
        return write_json_atomic(
            Path(folder) / "config.json", {"format": FORMAT, "config": cfg.to_dict(), **record}, indent=2
        )

    def acgan_conditions(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ACWGAN-GP's two conditions for raw property targets ``(N, K)``: the category of the
        nearest training specimen (normalised property space) and the bin (third of the range) of the scalar."""
        a = self.acgan
        y = self.properties.normalise(targets)
        lab = np.asarray(a["specimen_labels"])
        nearest = np.argmin(((y[:, None, :] - lab[None]) ** 2).sum(-1), axis=1)
        cats = np.asarray(a["specimen_categories"])[nearest]
        bins = np.digitize(targets[:, self.properties.names.index(a["scalar"])], a["bin_edges"])
        return cats, bins

    @property
    def conditional(self) -> bool:
        return self.cfg.conditional

    @property
    def condition_properties(self) -> PropertySet:
        return self.properties

    @torch.no_grad()
    def iter_batches(
        self,
        targets: np.ndarray,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        batch_size: int = 16,
        seed: int = 0,
        brightness: float | None = None,
        progress: bool = False,
    ) -> Iterator[Generated]:
        """One micrograph per target row, in batches; batch ``i`` is seeded by ``(seed, i)``."""
        targets = self.check_targets(targets)
        if batch_size < 1:
            raise MicroforgeError(f"batch size must be at least 1, got {batch_size}")
        if sampler not in (None, "ddim"):
            raise MicroforgeError(f"the baselines sample with DDIM (CCDM) or in one pass (CcGAN), not {sampler!r}")
        y_all = torch.tensor(self.properties.normalise(targets), dtype=torch.float32)
        device = next(self.modules[next(iter(self.modules))].parameters()).device
        for i, start in enumerate(
            tqdm(range(0, len(y_all), batch_size), desc="generate", disable=not progress, unit="batch")
        ):
            gen = seeded_generator(seed, i)
            y = y_all[start : start + batch_size].to(device)
            if self.cfg.kind == "ccgan":
                x = self.modules["generator"](torch.randn(len(y), self.cfg.z_dim, generator=gen).to(device), y)
            elif self.cfg.kind == "acwgan-gp":
                cats, bins = self.acgan_conditions(targets[start : start + batch_size])
                z = torch.randn(len(y), self.cfg.z_dim, generator=gen).to(device)
                x = self.modules["generator"](z, torch.from_numpy(cats).to(device), torch.from_numpy(bins).to(device))
            else:
                x = self._ccdm(
                    y,
                    gen,
                    steps or self.cfg.sampling_steps,
                    self.cfg.guidance_scale if guidance_scale is None else guidance_scale,
                )
            images = ((x[:, 0].clamp(-1, 1) + 1.0) / 2.0).cpu().numpy().astype(np.float32)
            yield Generated(None, images, targets[start : start + batch_size])

    def _ccdm(self, y: torch.Tensor, gen: torch.Generator, steps: int, guidance: float) -> torch.Tensor:
        """DDIM sampling of CCDM (with guidance) or of the unconditional DDPM (its noise channel;
        DDIM does not use the learned variance)."""
        if steps < 1:
            raise MicroforgeError(f"steps must be at least 1, got {steps}")
        unet = self.modules["unet"]
        sched = DDIMScheduler.from_config({k: v for k, v in self.scheduler_config.items() if k != "variance_type"})
        sched.set_timesteps(steps, device=y.device)
        x = torch.randn((len(y), 1, self.cfg.resolution, self.cfg.resolution), generator=gen).to(y.device)
        if self.cfg.kind == "ddpm":
            for t in sched.timesteps:
                x = sched.step(unet(x, t).sample[:, :1], t, x).prev_sample
            return x
        embed = self.modules["label_embedding"]
        cond = embed(y)
        if guidance != 1.0:
            cond = torch.cat([cond, embed.null(len(y))])
        for t in sched.timesteps:
            if guidance != 1.0:
                eps_c, eps_u = unet(torch.cat([x, x]), t, class_labels=cond).sample.chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
            else:
                eps = unet(x, t, class_labels=cond).sample
            x = sched.step(eps, t, x).prev_sample
        return x
