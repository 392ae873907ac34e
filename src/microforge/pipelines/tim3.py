"""The TiM3 sampling pipeline: property vectors -> metallographic maps -> micrographs.

Loads a model folder written by the trainer (every network through diffusers'
``from_pretrained`` with ``use_safetensors=True``; nothing is unpickled) and samples in batches
with DDIM (the model's ``sampling_steps``: 10 in the tiny config, TiM3's 20 in the small and paper
ones) or DPM-Solver++, with classifier-free guidance.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

from ..data.dataset import as_class_shares, class_fractions, nearest_maps
from ..io import read_json_file, write_json_atomic
from ..errors import MicroforgeError
from ..models.detail_refiner import DetailRefiner
from ..models.property_encoder import PropertyEncoder
from ..models.tim3 import (
    TiM3Config,
    build_map_encoder,
    codec_class,
    map_condition,
    predict_noise,
    tim3_config_from_dict,
)
from ..models.weights import load_weights, save_weights
from ..properties import PropertySet
from ..seeding import seeded_generator
from .base import Generated, SamplingPipeline, save_diffusers_module

FORMAT = "microforge-tim3/1"
# how a model folder may store its networks' weights; loading always gives float32 modules, so the
# stored precision changes the folder's size (float16: half), never the dtype the pipeline computes in
WEIGHTS_DTYPES = {"float32": torch.float32, "float16": torch.float16}
# the folder of stage 1's noise schedule, where the config gives stage 1 its own objective
# (``stage1_objective``); ``scheduler/`` holds stage 2's, which stage 1 otherwise shares
STAGE1_SCHEDULER_DIR = "scheduler_stage1"
# the folder of an optional detail refiner (models.detail_refiner), a third stage after stage 2 that
# draws the fine texture into its micrographs; not part of TiM3 (docs/departures.md)
REFINER_DIR = "refiner"


class TiM3Pipeline(SamplingPipeline):
    """A trained TiM3 model, ready to sample. Build it with :meth:`from_pretrained`."""

    def __init__(
        self,
        folder: Path,
        cfg: TiM3Config,
        properties: PropertySet,
        scaling: dict[str, float],
        brightness_mean: float,
        modules: dict[str, torch.nn.Module],
        scheduler_config: dict,
        record: dict | None = None,
        stage1_scheduler_config: dict | None = None,
    ) -> None:
        self.folder, self.cfg, self.properties = folder, cfg, properties
        self.scaling, self.brightness_mean = scaling, brightness_mean
        self.modules = modules
        self.scheduler_config = scheduler_config  # stage 2's, and stage 1's unless it has its own
        self.stage1_scheduler_config = stage1_scheduler_config  # stage 1's own (cfg.stage1_objective)
        # the rest of config.json (training times per phase, tile count), carried over by save_pretrained
        self.record = dict(record or {})
        for name, m in modules.items():
            m.eval()
            if name.startswith("unet_"):  # faster convolutions on the CPU (train.channels_last); same arithmetic
                m.to(memory_format=torch.channels_last)

    def brightness_of(self, images: np.ndarray) -> np.ndarray:
        """Images ``(N, H, W)`` in [0, 1] -> ``(N,)`` in the brightness condition's units: their mean
        grey, normalised to [-1, 1] over the training tiles' range (TiM3 appendix E). Folders
        saved before the range was recorded were trained on the absolute mean grey in [-1, 1]."""
        lo, hi = self.record.get("brightness_range", (-1.0, 1.0))
        grey = 2.0 * np.asarray(images, dtype=np.float64).mean(axis=(1, 2)) - 1.0
        return 2.0 * (grey - lo) / max(hi - lo, 1e-6) - 1.0

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "TiM3Pipeline":
        """Load a model folder; a missing, tampered or truncated file is an error naming it."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MicroforgeError(f"{folder}: model folder not found")
        config_path = folder / "config.json"
        raw = read_json_file(config_path, "a trained TiM3 model")
        if raw.get("format") != FORMAT:
            raise MicroforgeError(f"{config_path}: format {raw.get('format')!r} is not {FORMAT!r}")
        cfg = tim3_config_from_dict(raw["config"], str(config_path), saved=True)
        props = PropertySet.load(folder / "properties.json")
        parts = {
            "vae_image": codec_class(cfg.vae_image),
            "encoder_stage2": PropertyEncoder,
            "unet_stage2": UNet2DConditionModel,
        }
        if cfg.two_stage:
            parts.update(
                vae_map=codec_class(cfg.vae_map), encoder_stage1=PropertyEncoder, unet_stage1=UNet2DConditionModel
            )
        modules: dict[str, torch.nn.Module] = {name: _load(cls, folder / name) for name, cls in parts.items()}
        if cfg.two_stage and cfg.map_condition == "learned":
            modules["map_encoder"] = load_weights(build_map_encoder(cfg), folder / "map_encoder")
        if (folder / REFINER_DIR).is_dir():
            modules["refiner"] = checked_refiner(DetailRefiner.from_pretrained(folder / REFINER_DIR), cfg, folder)
        sched_paths = [folder / "scheduler" / "scheduler_config.json"]
        if cfg.stage1_objective is not None:
            sched_paths.append(folder / STAGE1_SCHEDULER_DIR / "scheduler_config.json")
        for sched_path in sched_paths:
            if not sched_path.is_file():
                raise MicroforgeError(f"{sched_path}: not found")
        scheds = [json.loads(p.read_text()) for p in sched_paths]
        record = {k: v for k, v in raw.items() if k not in ("format", "config", "scaling_factors", "brightness_mean")}
        return cls(
            folder,
            cfg,
            props,
            raw["scaling_factors"],
            float(raw.get("brightness_mean", 0.0)),
            modules,
            scheds[0],
            record,
            scheds[1] if len(scheds) > 1 else None,
        )

    @classmethod
    def map_stage(
        cls, folder: str | Path, cfg: TiM3Config, properties: PropertySet, map_scaling: float, scheduler_config: dict
    ) -> "TiM3Pipeline":
        """The map stage alone (map autoencoder, stage-1 encoder and UNet) of a run folder whose map
        phases are trained but which has no ``config.json`` yet: what the trainer needs to
        :meth:`redraw_maps` before it trains stage 2. Only :meth:`draw_maps` and :meth:`redraw_maps`
        work on it. ``scheduler_config``: stage 1's noise schedule."""
        folder = Path(folder)
        modules: dict[str, torch.nn.Module] = {
            "vae_map": _load(codec_class(cfg.vae_map), folder / "vae_map"),
            "encoder_stage1": _load(PropertyEncoder, folder / "encoder_stage1"),
            "unet_stage1": _load(UNet2DConditionModel, folder / "unet_stage1"),
        }
        return cls(
            folder, cfg, properties, {"vae_map": map_scaling}, 0.0, modules, scheduler_config, None, scheduler_config
        )

    def save_pretrained(self, folder: str | Path, weights_dtype: str | None = None) -> Path:
        """Write this model as a model folder that :meth:`from_pretrained` reads back exactly.

        Every network goes through diffusers' ``save_pretrained`` as safetensors (the learned map
        encoder, a plain module, through :func:`~microforge.models.weights.save_weights`); ``config.json``,
        ``properties.json``
        (with the hull points) and ``scheduler/`` are written beside them. The loaded folder's
        ``logs/``, ``metrics.json`` and ``regressor/``, where present, are copied along;
        ``metrics.json`` only while the model has no part the loaded folder lacks (such as a
        refiner added since), because it scored that folder's model. A folder that
        already holds a model, or anything else, is refused, so nothing is overwritten. Returns the folder.

        ``weights_dtype``: ``"float32"`` or ``"float16"``, the precision every network's weights are
        stored in (None: as this model was loaded, float32 for a trained run). float16 halves the
        folder; the weights are rounded to 11 significant bits once, and loading upcasts them to
        float32 again, so sampling computes as before on the rounded weights. ``config.json``
        records float16 as ``weights_dtype`` (absent: float32).
        """
        folder = Path(folder)
        weights_dtype = weights_dtype or self.record.get("weights_dtype", "float32")
        if weights_dtype not in WEIGHTS_DTYPES:
            raise MicroforgeError(f"weights_dtype {weights_dtype!r} is not one of {sorted(WEIGHTS_DTYPES)}")
        if (folder / "config.json").exists():
            raise MicroforgeError(f"{folder}: already holds a model; choose another folder")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):  # never among others' files
            raise MicroforgeError(f"{folder}: exists and is not an empty folder; choose a new one")
        folder.mkdir(parents=True, exist_ok=True)
        for name, module in self.modules.items():
            module = _stored(module, WEIGHTS_DTYPES[weights_dtype], name)
            if isinstance(module, DetailRefiner):  # its own format (config.json and safetensors)
                module.save_pretrained(folder / name)
            elif hasattr(module, "save_pretrained"):
                save_diffusers_module(module, folder / name)
            else:  # the learned map encoder, a plain module, as the trainer writes it
                save_weights(module, folder / name, {"model_type": f"tim3-{name}"})
        self.properties.save(folder / "properties.json")
        # the training schedules, as the trainer writes them
        DDPMScheduler.from_config(self.scheduler_config).save_config(folder / "scheduler")
        if self.stage1_scheduler_config is not None:
            DDPMScheduler.from_config(self.stage1_scheduler_config).save_config(folder / STAGE1_SCHEDULER_DIR)
        # the source's metrics scored its own parts: a model given a part the source lacks (a refiner)
        # is another model, so its metrics are not copied
        same_parts = all((self.folder / name).is_dir() for name in self.modules)
        for extra in ("logs", "metrics.json", "regressor") if same_parts else ("logs", "regressor"):
            source = self.folder / extra
            if source.exists() and not (folder / extra).exists():
                (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / extra)
        record = {k: v for k, v in self.record.items() if k != "weights_dtype"}
        if weights_dtype != "float32":  # absent means float32, as the trainer writes it
            record["weights_dtype"] = weights_dtype
        # last: a folder with config.json is complete
        self.write_config(folder, self.cfg, self.scaling, self.brightness_mean, record)
        return folder

    @staticmethod
    def write_config(
        folder: Path, cfg: TiM3Config, scaling: dict[str, float], brightness_mean: float, record: dict
    ) -> Path:
        """Write the model folder's ``config.json`` (format, config, latent scaling factors, the
        brightness condition's mean and ``record``: training times, tile count). The one writer of
        the format, for :meth:`save_pretrained` and the trainer alike; it is written last, so a
        folder with config.json is a complete model."""
        config = {
            "format": FORMAT,
            "config": cfg.to_dict(),
            "scaling_factors": scaling,
            "brightness_mean": brightness_mean,
            **record,
        }
        return write_json_atomic(Path(folder) / "config.json", config, indent=2)

    conditional = True  # the samples follow the targets (the DDPM baseline's do not)

    @property
    def condition_properties(self) -> PropertySet:
        """The properties a target must give (the dataset's; brightness is optional)."""
        return PropertySet([s for s in self.properties.specs if s.name != "brightness"], [], self.properties.info)

    # ------------------------------------------------------------------ sampling

    def _scheduler(self, sampler: str, stage: int = 2):
        """A fresh ``sampler`` ("ddim" or "dpm++") on diffusion ``stage``'s training schedule."""
        config = self.stage1_scheduler_config if stage == 1 and self.stage1_scheduler_config else self.scheduler_config
        if sampler == "ddim":
            return DDIMScheduler.from_config(config)
        if sampler == "dpm++":
            return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
        raise MicroforgeError(f"sampler must be 'ddim' or 'dpm++', got {sampler!r}")

    def _denoise(
        self,
        stage: int,
        y: torch.Tensor,
        extra: torch.Tensor | None,
        steps: int,
        guidance: float,
        sampler: str,
        gen: torch.Generator,
        init: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """Run diffusion stage ``stage``'s (1: maps, 2: micrographs) sampler from noise to a latent
        ``(B, C, S, S)``, C and S being its UNet's output channels and sample size. With ``init`` (a
        clean latent of that shape), SDEdit (Meng et al. 2022): ``init`` is noised to the schedule's
        step ``strength`` of the way to pure noise and only the remaining ``round(steps * strength)``
        steps run (the img2img of diffusers' pipelines); ``strength`` 1 ignores ``init``'s content.
        The stage's guidance interval (sigma low, high] from the config: ``guidance`` applies only at
        the steps whose noise level lies in it (the others take the conditional prediction alone);
        None: at every step. Its DDIM eta from the config (0: deterministic; its noise is drawn from
        ``gen`` on the CPU at every step); the dpm++ sampler ignores it."""
        unet, encoder = self.modules[f"unet_stage{stage}"], self.modules[f"encoder_stage{stage}"]
        interval, eta = self.cfg.stage_guidance_interval(stage), self.cfg.stage_eta(stage)
        sched = self._scheduler(sampler, stage)
        stochastic = bool(eta) and sampler == "ddim"  # diffusers' DPMSolverMultistepScheduler.step takes no eta
        device = next(unet.parameters()).device
        sched.set_timesteps(steps, device=device)
        b = y.shape[0]
        shape = (b, unet.config.out_channels, unet.config.sample_size, unet.config.sample_size)
        noise = torch.randn(shape, generator=gen)  # drawn on the CPU: same on any device
        timesteps = sched.timesteps
        if init is None:
            z = (noise * sched.init_noise_sigma).to(device)
        else:
            start = steps - min(max(int(round(steps * strength)), 1), steps)
            timesteps = timesteps[start:]
            if hasattr(sched, "set_begin_index"):  # multistep solvers keep their own step counter
                sched.set_begin_index(start)
            z = sched.add_noise(init.to(device), noise.to(device), timesteps[:1])
        y = y.to(device)
        extra = None if extra is None else extra.to(device)
        ctx = encoder(y, sample=True, generator=gen)
        if guidance != 1.0:
            ctx = torch.cat([ctx, encoder.null(b)])
        for t in timesteps:
            zin = sched.scale_model_input(z, t)
            inp = zin if extra is None else torch.cat([zin, extra], 1)
            if guidance != 1.0 and guided_step(sched.alphas_cumprod[int(t)], interval):
                eps_c, eps_u = predict_noise(unet, torch.cat([inp, inp]), t, ctx).chunk(2)
                eps = eps_u + guidance * (eps_c - eps_u)
            else:  # the conditional prediction alone (ctx[:b]: without the null contexts, where guided)
                eps = predict_noise(unet, inp, t, ctx[:b])
            if stochastic:  # DDIM's fresh noise, drawn on the CPU as the initial noise: the same on any device
                fresh = torch.randn(z.shape, generator=gen).to(z.device)
                z = sched.step(eps, t, z, eta=eta, variance_noise=fresh).prev_sample
            else:
                z = sched.step(eps, t, z).prev_sample
        return z

    def _decode_map(self, zm: torch.Tensor) -> torch.Tensor:
        """Stage 1's latent ``(B, C, S, S)`` -> class indices ``(B, R, R)`` (hard maps) or class
        shares ``(B, 3, R, R)`` (soft maps: the decoder's softmax, or a lossless codec's output
        mapped back from [-1, 1])."""
        decoded = self.modules["vae_map"].decode(zm / self.scaling["vae_map"]).sample
        if self.cfg.map_representation != "soft":
            return decoded.argmax(1)
        if self.cfg.vae_map.kind == "space_to_depth":
            shares = ((decoded + 1.0) / 2.0).clamp_min(0.0)
            return shares / shares.sum(1, keepdim=True).clamp_min(1e-6)
        return decoded.softmax(1)

    def model_maps(self, masks: torch.Tensor) -> torch.Tensor:
        """True phase maps ``(B, H, W)`` (class indices, any size) as this model reads them at its
        resolution R: nearest-resized indices ``(B, R, R)``, or, for a soft-map model, each
        class's area share ``(B, 3, R, R)``."""
        if self.cfg.map_representation == "soft":
            return class_fractions(masks, self.cfg.resolution)
        return nearest_maps(masks, self.cfg.resolution)

    @torch.no_grad()
    def draw_maps(
        self, y: torch.Tensor, steps: int, guidance: float, sampler: str, gen: torch.Generator
    ) -> torch.Tensor:
        """The map stage (stage 1): maps for normalised conditions ``y`` ``(B, K)``, as
        :meth:`draw_micrographs` reads them: class indices ``(B, R, R)`` (hard maps) or class shares
        ``(B, 3, R, R)`` (soft maps)."""
        return self._decode_map(self._denoise(1, y, None, steps, guidance, sampler, gen))

    @torch.no_grad()
    def redraw_maps(
        self,
        y: torch.Tensor,
        maps: torch.Tensor,
        strength: float,
        steps: int,
        guidance: float,
        sampler: str,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """Stage 1 redrawing given maps toward the normalised conditions ``y`` ``(B, K)`` (SDEdit):
        each map is encoded by the map autoencoder (posterior mean), noised ``strength`` (in (0, 1])
        of the way along the schedule and denoised by stage 1 with ``steps * strength`` of ``steps``
        sampler steps. Small strengths keep the map's layout and give it stage 1's texture (its
        speckle, its lath shapes); 1 draws a new map. ``maps``: class indices ``(B, R, R)`` or, for
        a soft-map model, class shares ``(B, 3, R, R)``; returns the same kind as
        :meth:`draw_maps`."""
        if not 0.0 < strength <= 1.0:
            raise MicroforgeError(f"map redraw strength must lie in (0, 1], got {strength}")
        z0 = self.encode_maps(maps)
        return self._decode_map(self._denoise(1, y, None, steps, guidance, sampler, gen, z0, strength))

    @torch.no_grad()
    def encode_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Maps as stage 1's latents ``(B, C, S, S)``, scaled as stage 1 draws them: the map
        autoencoder's posterior mean of class indices ``(B, R, R)`` or shares ``(B, 3, R, R)``.
        :meth:`_decode_map` turns them back into maps."""
        device = next(self.modules["unet_stage1"].parameters()).device
        shares = as_class_shares(maps).to(device) * 2.0 - 1.0
        return self.modules["vae_map"].encode(shares).latent_dist.mean * self.scaling["vae_map"]

    @torch.no_grad()
    def draw_micrographs(
        self,
        y: torch.Tensor,
        maps: torch.Tensor | None,
        steps: int,
        guidance: float,
        sampler: str,
        gen: torch.Generator,
        init: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """The micrograph stage: images ``(B, R, R)`` in [0, 1] for normalised conditions ``y``
        ``(B, K)`` and, for a two-stage model, maps ``maps`` (stage 1's, or true maps as
        :meth:`model_maps` gives them): class indices ``(B, R, R)`` (long), or class shares
        ``(B, 3, R, R)`` (float; what a soft-map model reads); ``maps`` is None for a
        single-stage model. A config's ``observation_noise_std`` adds white Gaussian noise of that
        std to the decoded images (drawn from ``gen`` after the sampler), clipped to [0, 1] again.

        ``init``: images' latents from :meth:`encode_images` to redraw (SDEdit, as
        :meth:`redraw_maps` does for maps): noised ``strength`` (in (0, 1]) of the way along the
        schedule and denoised with ``steps * strength`` sampler steps, so small strengths keep the
        images' layout and give them stage 2's texture. None: drawn from noise."""
        cfg, m = self.cfg, self.modules
        if not 0.0 < strength <= 1.0:
            raise MicroforgeError(f"micrograph redraw strength must lie in (0, 1], got {strength}")
        extra = None
        if maps is not None:
            lossless = cfg.map_condition == "space_to_depth"
            extra = map_condition(as_class_shares(maps), cfg.image_latent_size, m.get("map_encoder"), lossless=lossless)
        zi = self._denoise(2, y, extra, steps, guidance, sampler, gen, init, strength)
        images = (m["vae_image"].decode(zi / self.scaling["vae_image"]).sample[:, 0].clamp(-1, 1) + 1.0) / 2.0
        if cfg.observation_noise_std:  # drawn on the CPU, as the sampler's noise: the same on any device
            noise = torch.randn(images.shape, generator=gen).to(images.device)
            images = (images + cfg.observation_noise_std * noise).clamp(0.0, 1.0)
        return images

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Micrographs ``(B, R, R)`` in [0, 1] as stage 2's latents ``(B, C, S, S)``, scaled as stage
        2 draws them (the image autoencoder's posterior mean): what :meth:`draw_micrographs`
        redraws as ``init``."""
        device = next(self.modules["unet_stage2"].parameters()).device
        x = images[:, None].to(device, torch.float32) * 2.0 - 1.0
        return self.modules["vae_image"].encode(x).latent_dist.mean * self.scaling["vae_image"]

    @torch.no_grad()
    def refine(self, images: torch.Tensor, maps: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        """The optional third stage: the model's detail refiner (``refiner/``) draws fine texture into
        stage 2's images ``(B, R, R)`` in [0, 1], in its own ``sample_steps``; a guided refiner also
        reads the maps they were drawn from (class indices ``(B, R, R)`` or shares ``(B, 3, R, R)``).
        Returns ``(B, R, R)`` in [0, 1]."""
        refiner = self.modules["refiner"]
        guide = as_class_shares(maps).to(images.device) if refiner.cfg.guide_channels else None
        return refiner.refine(images[:, None].float(), gen, guide=guide)[:, 0]

    def stage_guidance(self, guidance_scale: float | None = None) -> tuple[float, float]:
        """The classifier-free guidance scales (map stage, micrograph stage) a call samples with:
        ``guidance_scale`` for both when given, else the config's ``guidance_scale`` and its
        ``stage2_guidance_scale`` (``guidance_scale`` when that is None)."""
        if guidance_scale is not None:
            return float(guidance_scale), float(guidance_scale)
        stage2 = self.cfg.stage2_guidance_scale
        return self.cfg.guidance_scale, self.cfg.guidance_scale if stage2 is None else stage2

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
        """Sample in batches of ``batch_size``, yielding each batch (memory stays bounded).

        Parameters
        ----------
        targets : raw property vectors ``(N, K)`` in the units of ``properties.json``.
        steps : denoising steps (default: the config's, 20).
        guidance_scale : classifier-free guidance (1: none) of both stages; default: the config's
            ``guidance_scale`` for the map stage and ``stage2_guidance_scale`` (if set) for the
            micrograph stage.
        sampler : ``"ddim"`` or ``"dpm++"``.
        seed : batch ``i`` uses seed ``(seed, i)``: the same call gives the same images.
        brightness : target mean grey level in [-1, 1] for models trained with it.
        """
        targets = self.check_targets(targets)
        cfg = self.cfg
        steps = cfg.sampling_steps if steps is None else int(steps)
        guidance, guidance2 = self.stage_guidance(guidance_scale)
        sampler = sampler or cfg.sampler
        if steps < 1:
            raise MicroforgeError(f"steps must be at least 1, got {steps}")
        if batch_size < 1:
            raise MicroforgeError(f"batch size must be at least 1, got {batch_size}")
        y_all = torch.tensor(self.condition_properties.normalise(targets), dtype=torch.float32)
        if cfg.brightness:
            b = self.brightness_mean if brightness is None else float(brightness)
            if not -1.0 <= b <= 1.0:
                raise MicroforgeError(f"brightness must lie in [-1, 1], got {b}")
            y_all = torch.cat([y_all, torch.full((len(y_all), 1), b)], 1)
        starts = range(0, len(y_all), batch_size)
        for i, start in enumerate(tqdm(starts, desc="generate", disable=not progress, unit="batch")):
            gen = seeded_generator(seed, i)
            y = y_all[start : start + batch_size]
            maps, maps_t = None, None
            if cfg.two_stage:
                maps_t = self.draw_maps(y, steps, guidance, sampler, gen)
                maps = (maps_t.argmax(1) if maps_t.dim() == 4 else maps_t).cpu().numpy().astype(np.uint8)
            images = self.draw_micrographs(y, maps_t, steps, guidance2, sampler, gen)
            if "refiner" in self.modules:  # the optional third stage, drawn from the batch's generator
                images = self.refine(images, maps_t, gen)
            yield Generated(
                maps, images.float().cpu().numpy(), targets[start : start + batch_size]
            )  # float(): autocast may give bf16


def checked_refiner(refiner: DetailRefiner, cfg: TiM3Config, folder: Path) -> DetailRefiner:
    """``refiner`` if it fits a TiM3 model of ``cfg`` (the model's resolution; a guided one reads a
    two-stage model's three class shares), else an error naming the folder."""
    where, res = folder / REFINER_DIR, refiner.cfg.resolution
    if res != cfg.resolution:
        raise MicroforgeError(f"{where}: refiner resolution {res} is not the model's ({cfg.resolution})")
    if refiner.cfg.guide_channels not in ((0, 3) if cfg.two_stage else (0,)):
        raise MicroforgeError(
            f"{where}: a refiner guided by {refiner.cfg.guide_channels} channels does not fit this model "
            f"(0, or 3 for a two-stage model's phase map)"
        )
    return refiner


def guided_step(alpha_cumprod: torch.Tensor | float, interval: tuple[float, float] | None) -> bool:
    """Whether a sampler step at cumulative signal share ``alpha_cumprod`` (the schedule's alphabar_t)
    is guided: its noise level sigma = sqrt((1 - alphabar_t) / alphabar_t) lies in ``interval``
    (low, high] (Kynkäänniemi et al. 2024), or ``interval`` is None (every step)."""
    if interval is None:
        return True
    a = float(alpha_cumprod)
    sigma = ((1.0 - a) / a) ** 0.5
    return interval[0] < sigma <= interval[1]


def _stored(module: torch.nn.Module, dtype: torch.dtype, name: str) -> torch.nn.Module:
    """``module`` as it is to be written in ``dtype``: itself for float32, else a cast copy (the
    pipeline keeps computing in float32). A weight that does not fit the dtype is an error naming
    the part, rather than an inf written to disk."""
    if dtype == torch.float32:
        return module
    # nn.Module.to, not diffusers' override, which warns about casting a model it would run in dtype
    stored = torch.nn.Module.to(copy.deepcopy(module), dtype)
    for key, value in stored.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            largest = module.state_dict()[key].abs().max()
            raise MicroforgeError(f"{name}: weight {key} does not fit {dtype} (largest |w| {largest:.3g})")
    return stored


def _load(cls, path: Path):
    if not path.is_dir():
        raise MicroforgeError(f"{path}: model component not found")
    try:  # float32 whatever precision the folder stores (save_pretrained's weights_dtype)
        return cls.from_pretrained(path, use_safetensors=True, torch_dtype=torch.float32)
    except MicroforgeError:
        raise
    except Exception as exc:  # diffusers raises several types for bad files; name the folder
        raise MicroforgeError(
            f"{path}: cannot be loaded ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
