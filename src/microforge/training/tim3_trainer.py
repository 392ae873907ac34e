"""Training TiM3 under accelerate, phase by phase, with resumable checkpoints.

Phases, in order: ``vae_image`` and ``vae_map`` (the autoencoders; no map VAE in the one-stage
variant), then ``stage1`` (properties -> map latent) and ``stage2`` (map + properties ->
micrograph latent), and, where the config asks for it, ``vae_image_adversarial`` (the micrograph
decoder fine-tuned against a patch discriminator, its encoder and so every latent unchanged).
A finished phase leaves its modules under ``out/<module>/`` and a marker ``out/.done/<phase>.json``;
an interrupted one resumes from ``out/checkpoints/<phase>/``.

Every step draws its batch, noise, timesteps and dropout from a generator seeded by
``(seed, phase, step, process)``, so a resumed run replays exactly the batches an uninterrupted
run would have seen, and the final weights are the same.

Run on several processes or machines with ``accelerate launch -m microforge train tim3 ...``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel, compute_snr

from ..data.dataset import as_class_shares, d4_batch, load_split, onehot_map
from ..data.digest import data_digests
from ..data.manifest import read_dataset
from ..errors import MicroforgeError
from ..models.patch_discriminator import PatchDiscriminator, hinge_discriminator_loss, hinge_generator_loss
from ..models.property_encoder import PropertyEncoder
from ..models.tim3 import (
    TiM3Config,
    build_autoencoder,
    codec_class,
    build_map_encoder,
    build_unet,
    map_condition,
    predict_noise,
)
from ..models.weights import save_weights
from ..pipelines.base import save_diffusers_module
from ..pipelines.tim3 import STAGE1_SCHEDULER_DIR, TiM3Pipeline
from ..properties import PropertySet, PropertySpec
from ..seeding import seed_from, seeded_generator
from .checkpoints import check_run_data, check_run_dir, start_run_dir
from .data import properties_with_hull
from .loop import StepSeconds, lr_factor, run_steps

DONE_DIR = ".done"
CHECKPOINT_DIR = "checkpoints"  # one folder per phase beneath it
# stage 1's redraws of the training maps (train.stage2_redrawn_maps), kept until the run is finished
# so that a resumed stage 2 reads the same ones
REDRAWN_MAPS = "redrawn_maps.safetensors"


def phases(cfg: TiM3Config) -> list[str]:
    """The phases ``cfg`` trains, in order. The adversarial decoder fine-tune comes last, so that
    adding it leaves every other phase's index, and so its seeds, as they were; it changes no
    latent (the encoder is frozen), so nothing before it depends on it."""
    order = ["vae_image", "vae_map", "stage1", "stage2"] if cfg.two_stage else ["vae_image", "stage2"]
    if cfg.vae_image.kind == "kl" and cfg.vae_image.adversarial_steps:
        order.append("vae_image_adversarial")
    return order


def make_scheduler(cfg: TiM3Config, stage: int = 2) -> DDPMScheduler:
    """Diffusion ``stage``'s training noise schedule (the sampler is built from its saved config):
    its objective's (``cfg.objective(stage)``; stage 2's is the top-level one, which stage 1 shares
    unless ``stage1_objective`` is given). A ``schedule_shift`` s divides the base schedule's
    signal-to-noise ratio by s^2 at every step and stores the resulting betas explicitly
    (diffusers' ``trained_betas``)."""
    objective = cfg.objective(stage)
    kw = dict(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type=objective.prediction_type,
        timestep_spacing=objective.timestep_spacing,
    )
    base = DDPMScheduler(beta_schedule=objective.beta_schedule, **kw)
    if objective.schedule_shift == 1.0:
        return base
    shifted = shifted_betas(base.alphas_cumprod.double(), objective.schedule_shift)
    return DDPMScheduler(trained_betas=shifted.tolist(), **kw)


def shifted_betas(alphas_cumprod: torch.Tensor, shift: float) -> torch.Tensor:
    """Betas ``(T,)`` of the schedule whose SNR is ``SNR(t) / shift^2``, SNR = a / (1 - a) for the
    cumulative products ``alphas_cumprod`` ``(T,)`` (Hoogeboom et al. 2023, shifted schedules)."""
    snr = alphas_cumprod / (1.0 - alphas_cumprod) / shift**2
    a = snr / (1.0 + snr)
    prev = torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]])
    return (1.0 - a / prev).clamp(0.0, 0.999)


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the vertical and horizontal finite differences of two image
    batches ``(B, C, H, W)``: an edge-matching loss (0 for images that differ by a constant)."""
    return F.l1_loss(a.diff(dim=-2), b.diff(dim=-2)) + F.l1_loss(a.diff(dim=-1), b.diff(dim=-1))


class VAETraining(torch.nn.Module):
    """An AutoencoderKL whose forward returns (reconstruction, mean KL), so that a whole VAE step
    runs inside one forward call (which distributed training wraps and synchronises)."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        post = self.vae.encode(x).latent_dist
        return self.vae.decode(post.sample(generator=generator)).sample, post.kl().mean()


class DecoderTraining(torch.nn.Module):
    """An AutoencoderKL whose forward encodes without gradients (the encoder is frozen) and decodes
    a posterior sample with them, so that the decoder's step runs inside one forward call."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            z = self.vae.encode(x).latent_dist.sample(generator=generator)
        return self.vae.decode(z).sample


@dataclass
class TrainingData:
    """The training split in memory: images ``(N, 1, R, R)`` in [-1, 1], maps ``(N, R, R)``,
    raw properties ``(N, K)``, the dataset's properties, and (soft maps only) each class's
    area share per pixel ``(N, 3, R, R)``."""

    images: torch.Tensor
    maps: torch.Tensor
    props_raw: torch.Tensor
    properties: PropertySet
    specimens: list[str]
    shares: torch.Tensor | None = None

    @classmethod
    def load(cls, root: str | Path, cfg: TiM3Config) -> "TrainingData":
        data = read_dataset(root)
        data.properties.require(str(root), "train tim3")
        soft = cfg.two_stage and cfg.map_representation == "soft"
        split = load_split(
            data, "train", cfg.split_fractions, cfg.train.seed, cfg.modality, cfg.resolution, masks=True, shares=soft
        )
        unmapped = int((split.dataset.table["mask"] == "").sum())
        if cfg.two_stage and unmapped:
            raise MicroforgeError(
                f"{root}: two-stage TiM3 needs a phase map for every tile; {unmapped} tiles have none"
            )
        return cls(
            split.images * 2.0 - 1.0,
            split.masks,
            torch.from_numpy(split.raw),
            data.properties,
            split.specimens,
            split.shares,
        )

    def __len__(self) -> int:
        return len(self.images)


class TiM3Trainer:
    """Trains every phase of TiM3 into ``out`` (see the module docstring)."""

    def __init__(
        self,
        data_root: str | Path,
        out: str | Path,
        cfg: TiM3Config,
        accelerator: Accelerator | None = None,
        progress: bool = True,
        data_digest: str | None = None,
    ) -> None:
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.data_digest = data_digest  # the dataset's content digest, recorded in config.json
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.data = TrainingData.load(data_root, cfg)
        self.props = self.data.properties
        self.noise_std = torch.tensor(self.props.noise_stds, dtype=torch.float64)
        # TiM3 appendix E: the brightness condition is each tile's mean grey, normalised to [-1, 1]
        # over the training tiles (-1: the darkest tile's, 1: the brightest's)
        grey = self.data.images.mean(dim=(1, 2, 3))
        self.brightness_range = (float(grey.min()), float(grey.max()))
        self.brightness = 2.0 * (grey - grey.min()) / (grey.max() - grey.min()).clamp_min(1e-6) - 1.0
        if self.acc.device.type != "cpu":  # batches are indexed, augmented and unshuffled on the GPU
            self.data.images, self.data.maps = self.data.images.to(self.acc.device), self.data.maps.to(self.acc.device)
            if self.data.shares is not None:
                self.data.shares = self.data.shares.to(self.acc.device)
        # each diffusion stage's training schedule: stage 1's is stage 2's unless it has its own objective
        self.stage_schedulers = {stage: make_scheduler(cfg, stage) for stage in (1, 2)}
        self.n_cond = len(self.props) + (1 if cfg.brightness else 0)
        self.latents: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}

    # ------------------------------------------------------------------ orchestration

    def run(self) -> Path:
        """Train every unfinished phase (resuming the interrupted one), then write the model files."""
        self.out.mkdir(parents=True, exist_ok=True)
        for i, phase in enumerate(phases(self.cfg)):
            if (self.out / DONE_DIR / f"{phase}.json").exists():
                continue
            torch.manual_seed(seed_from(self.cfg.train.seed, i))  # initial weights
            getattr(self, f"_train_{phase}")(i)
        if self.acc.is_main_process:
            self._finalise()
        self.acc.wait_for_everyone()
        return self.out

    def _conditions(self, idx: torch.Tensor, gen: torch.Generator, stage: int) -> torch.Tensor:
        """Diffusion stage ``stage``'s normalised conditions ``(B, K)`` of the tiles ``idx``, with its
        property noise (drawn whenever ``property_noise`` is on, so a scale of 0 keeps the random stream)."""
        raw = self.data.props_raw[idx]
        if self.cfg.train.property_noise:
            std = self.noise_std * self.cfg.train.noise_scale(stage)
            raw = raw + std * torch.randn(raw.shape, generator=gen, dtype=torch.float64)
        return self._normalised(raw, idx)

    def _normalised(self, raw: torch.Tensor, idx: torch.Tensor | slice) -> torch.Tensor:
        """Raw properties ``(B, K)`` of the tiles ``idx`` as the stages' conditions ``(B, K')``:
        normalised as the pipeline does at inference, with the tiles' brightness where the config
        has it."""
        y = torch.from_numpy(self.props.normalise(raw.numpy())).float()
        if self.cfg.brightness:
            y = torch.cat([y, self.brightness[idx, None]], dim=1)
        return y

    def _run_phase(
        self,
        phase: str,
        phase_index: int,
        steps: int,
        modules: dict[str, torch.nn.Module],
        states: dict[str, Any],
        step_fn: Callable[[torch.Generator], dict[str, float]],
        acc: Accelerator,
    ) -> StepSeconds:
        """``steps`` of ``step_fn`` on the shared resumable loop, checkpointing ``modules`` and
        ``states`` into the phase's own folder and logging to ``logs/PHASE.jsonl``; returns the
        phase's training seconds (this run's and, across resumes, the whole phase's)."""
        cfg = self.cfg.train
        return run_steps(
            self.out,
            steps,
            (cfg.seed, phase_index),
            cfg.checkpoint_every,
            modules,
            states,
            step_fn,
            f"train {phase}",
            self.progress,
            log_path=self.out / "logs" / f"{phase}.jsonl",
            checkpoint_dir=self.out / CHECKPOINT_DIR / phase,
            keep=cfg.keep_checkpoints,
            accelerator=acc,
        )

    def _loop(
        self,
        phase_index: int,
        phase: str,
        modules: dict[str, torch.nn.Module],
        loss_fn: Callable,
        steps: int,
        lr: float,
        ema: bool,
        lr_decay: str = "constant",
        record: dict[str, float | str] | None = None,
    ) -> dict[str, torch.nn.Module]:
        """One phase on the shared resumable loop (``training/loop.run_steps``); returns the
        trained (unwrapped) modules, with the EMA weights where ``ema``. ``record``: more
        entries for the phase's ``.done`` marker.

        Each phase gets its own Accelerator and its own checkpoint folder, so its checkpoints
        hold exactly this phase's modules and a resumed process can load them.
        """
        acc, cfg = Accelerator(cpu=self.acc.device.type == "cpu"), self.cfg.train
        params = [p for m in modules.values() for p in m.parameters()]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, lr_decay))
        names = list(modules)
        prepared = acc.prepare(*modules.values(), opt, sched)
        wrapped = dict(zip(names, prepared[: len(names)]))
        opt, sched = prepared[len(names)], prepared[len(names) + 1]
        states: dict[str, Any] = {"optimizer": opt, "scheduler": sched}
        ema_model = EMAModel(params, decay=cfg.ema_decay) if ema else None
        if ema_model is not None:
            states["ema"] = ema_model

        def step_fn(gen: torch.Generator) -> dict[str, float]:
            loss = loss_fn(wrapped, gen)
            acc.backward(loss)
            acc.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            if ema_model is not None:
                ema_model.step(params)
            return {"loss": loss.item()}

        seconds = self._run_phase(phase, phase_index, steps, modules, states, step_fn, acc)
        if ema_model is not None:
            ema_model.copy_to(params)
        trained = {n: acc.unwrap_model(m) for n, m in wrapped.items()}
        if acc.is_main_process:
            for name, module in trained.items():
                if isinstance(module, VAETraining):
                    module.vae.save_pretrained(self.out / name)
                elif hasattr(module, "save_pretrained"):
                    module.save_pretrained(self.out / name)
                else:  # the learned map encoder, a plain module
                    save_weights(module, self.out / name, {"model_type": f"tim3-{name}"})
            self._mark_done(phase, steps, seconds, record)
        acc.wait_for_everyone()
        return trained

    def _mark_done(
        self, phase: str, steps: int, seconds: StepSeconds, record: dict[str, float | str] | None = None
    ) -> None:
        """Write ``.done/<phase>.json``: the phase is finished, with its steps, its time (this run's,
        ``seconds_this_run``, and over every run that trained it, ``seconds``) and ``record``'s
        entries; its resume checkpoints (if any) are no longer needed and go."""
        done = self.out / DONE_DIR
        done.mkdir(exist_ok=True)
        marker = {"steps": steps, **seconds.record(), "processes": self.acc.num_processes}
        (done / f"{phase}.json").write_text(json.dumps({**marker, **(record or {})}))
        shutil.rmtree(self.out / CHECKPOINT_DIR / phase, ignore_errors=True)

    # ------------------------------------------------------------------ phases

    def _sample_idx(self, gen: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.data), (batch,), generator=gen)
        ks = torch.randint(0, 8 if self.cfg.train.augment else 1, (batch,), generator=gen)
        return idx, ks

    def _map_shares(self, idx: torch.Tensor | slice, ks: torch.Tensor | None = None) -> torch.Tensor:
        """The maps of tiles ``idx`` (indices or a slice) as class shares ``(B, 3, R, R)`` in [0, 1], under the
        symmetries ``ks`` (none when ``None``): one-hot for hard maps, area shares for soft."""
        if self.data.shares is not None:
            shares = self.data.shares[idx]
        else:
            shares = onehot_map(self.data.maps[idx])
        return shares if ks is None else d4_batch(shares, ks)

    def _save_lossless_codec(self, phase: str, channels: int) -> bool:
        """A space-to-depth codec has nothing to train: write it and mark its phase done.
        Returns whether the phase's codec is one."""
        cfg = getattr(self.cfg, phase)
        if cfg.kind != "space_to_depth":
            return False
        if self.acc.is_main_process:
            build_autoencoder(cfg, channels).save_pretrained(self.out / phase)
            self._mark_done(phase, 0, StepSeconds(0.0, 0.0))
        self.acc.wait_for_everyone()
        return True

    def _train_vae_image(self, i: int) -> None:
        cfg = self.cfg.vae_image
        if self._save_lossless_codec("vae_image", 1):
            return

        def loss_fn(m, gen):
            idx, ks = self._sample_idx(gen, cfg.batch_size)
            x = self._in_layout(d4_batch(self.data.images[idx], ks).to(self.acc.device))
            rec, kl = m["vae_image"](x, gen)
            loss = F.mse_loss(rec, x) + cfg.kl_weight * kl
            if cfg.gradient_weight:
                loss = loss + cfg.gradient_weight * gradient_l1(rec, x)
            return loss

        vae = self._in_layout(VAETraining(build_autoencoder(cfg, 1)))
        self._loop(
            i, "vae_image", {"vae_image": vae}, loss_fn, cfg.steps, cfg.lr, ema=False, record=self._layout_record()
        )

    def _train_vae_map(self, i: int) -> None:
        cfg = self.cfg.vae_map
        if self._save_lossless_codec("vae_map", 3):
            return

        def loss_fn(m, gen):
            idx, ks = self._sample_idx(gen, cfg.batch_size)
            shares = self._in_layout(self._map_shares(idx, ks).to(self.acc.device))
            logits, kl = m["vae_map"](shares * 2.0 - 1.0, gen)
            # hard maps: the class index; soft: the shares themselves, so the softmax learns them
            target = shares if self.data.shares is not None else shares.argmax(1)
            return F.cross_entropy(logits, target) + cfg.kl_weight * kl

        vae = self._in_layout(VAETraining(build_autoencoder(cfg, 3)))
        self._loop(i, "vae_map", {"vae_map": vae}, loss_fn, cfg.steps, cfg.lr, ema=False, record=self._layout_record())

    def _train_vae_image_adversarial(self, i: int) -> None:
        """Fine-tune the micrograph decoder against a patch discriminator (hinge losses), beside the
        autoencoder's own MSE and edge loss; the encoder is frozen, so the latents stay as they were.
        Step ``s`` draws its batch and the latent sample from the step's generator, as every phase."""
        cfg, acc = self.cfg.vae_image, Accelerator(cpu=self.acc.device.type == "cpu")
        vae = codec_class(cfg).from_pretrained(self.out / "vae_image", use_safetensors=True)
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
        conditional = cfg.adversarial_condition in ("map", "map+properties")
        with_props = cfg.adversarial_condition == "map+properties"
        # the image, the map's class shares and the tile's normalised properties
        disc = PatchDiscriminator(in_channels=1 + 3 * conditional + len(self.props) * with_props)
        decoder_params = [p for p in vae.parameters() if p.requires_grad]
        opt_g = torch.optim.Adam(decoder_params, lr=cfg.adversarial_lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.adversarial_lr, betas=(0.5, 0.9))
        dec_w, disc_w, opt_g, opt_d = acc.prepare(DecoderTraining(vae), disc, opt_g, opt_d)

        def step_fn(gen: torch.Generator) -> dict[str, float]:
            idx, ks = self._sample_idx(gen, cfg.batch_size)
            x = d4_batch(self.data.images[idx], ks).to(acc.device)
            seen = self._map_shares(idx, ks).to(acc.device) * 2.0 - 1.0 if conditional else None
            if with_props:  # constant channels: a symmetry of the tile does not change its properties
                y = torch.from_numpy(self.props.normalise(self.data.props_raw[idx].numpy())).float().to(acc.device)
                seen = torch.cat([seen, y[:, :, None, None].expand(-1, -1, *seen.shape[-2:])], 1)

            def judge(image: torch.Tensor) -> torch.Tensor:
                return disc_w(image if seen is None else torch.cat([image, seen], 1))

            rec = dec_w(x, gen)
            pixel = F.mse_loss(rec, x) + cfg.gradient_weight * gradient_l1(rec, x)
            adversarial = hinge_generator_loss(judge(rec))
            acc.backward(pixel + cfg.adversarial_weight * adversarial)
            opt_g.step()
            opt_g.zero_grad()
            opt_d.zero_grad()  # the decoder's loss also reached the discriminator: drop that
            d_loss = hinge_discriminator_loss(judge(x), judge(rec.detach()))
            acc.backward(d_loss)
            opt_d.step()
            opt_d.zero_grad()
            return {"pixel": pixel.item(), "adversarial": adversarial.item(), "discriminator": d_loss.item()}

        phase = "vae_image_adversarial"
        modules = {"vae_image": vae, "discriminator": disc}
        states = {"optimizer_decoder": opt_g, "optimizer_discriminator": opt_d}
        seconds = self._run_phase(phase, i, cfg.adversarial_steps, modules, states, step_fn, acc)
        if acc.is_main_process:
            save_diffusers_module(vae, self.out / "vae_image")  # without the run path diffusers recorded on loading
            self._mark_done(phase, cfg.adversarial_steps, seconds)
        acc.wait_for_everyone()

    @torch.no_grad()
    def _encode_all(self, which: str) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Posterior means and stds of every training tile's latent, and the scaling factor
        (1 / std of the latents, as latent diffusion uses, times the codec's ``signal_scale``; for an
        autoencoder taken from another model, that model's recorded factor)."""
        if which in self.latents:
            return self.latents[which]
        vae = codec_class(getattr(self.cfg, which)).from_pretrained(self.out / which, use_safetensors=True).eval()
        means, stds = [], []
        for start in range(0, len(self.data), 64):
            sl = slice(start, start + 64)
            x = self.data.images[sl] if which == "vae_image" else self._map_shares(sl) * 2.0 - 1.0
            post = vae.encode(x.cpu()).latent_dist
            means.append(post.mean)
            stds.append(post.std)
        mean, std = torch.cat(means), torch.cat(stds)
        spread = torch.sqrt((mean**2).mean() + (std**2).mean() - mean.mean() ** 2).clamp(min=1e-6)
        scale = float(getattr(self.cfg, which).signal_scale / spread)
        # an autoencoder taken from another model (scripts/seed_run_from_model.py) keeps that model's
        # factor, which its reused diffusion stages were trained at; measured anew on weights stored in
        # float16 it would move in the fourth digit
        marker = self.out / DONE_DIR / f"{which}.json"
        recorded = json.loads(marker.read_text()).get("scaling_factor") if marker.exists() else None
        self.latents[which] = (mean, std, scale if recorded is None else float(recorded))
        return self.latents[which]

    def _latents(self, which: str, idx: torch.Tensor, ks: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Scaled latents ``(B, C, S, S)`` of training tiles ``idx`` under the symmetries ``ks``: a
        draw from each tile's posterior, rotated/flipped. A space-to-depth latent is instead taken
        of the rotated/flipped tile, since rotating it would scramble each block's pixels."""
        mean, std, scale = self._encode_all(which)
        codec = getattr(self.cfg, which)
        if codec.kind == "space_to_depth":
            x = self.data.images[idx] if which == "vae_image" else self._map_shares(idx) * 2.0 - 1.0
            return F.pixel_unshuffle(d4_batch(x, ks), codec.factor) * scale
        return d4_batch((mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scale, ks)

    def _diffusion_loss(
        self,
        stage: int,
        unet,
        encoder,
        z0: torch.Tensor,
        y: torch.Tensor,
        gen: torch.Generator,
        extra: torch.Tensor | None,
    ) -> torch.Tensor:
        """Diffusion stage ``stage``'s loss on clean latents ``z0`` ``(B, C, S, S)`` at normalised
        conditions ``y`` ``(B, K)``, ``extra`` channels (the map condition) concatenated to the noisy
        input; the encoder and UNet run under bfloat16 autocast where ``train.bf16_stages`` names
        the stage, the loss in fp32."""
        b = z0.shape[0]
        dev = self.acc.device
        bf16 = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=stage in self.cfg.train.bf16_stages)
        drop = torch.rand(b, generator=gen) < self.cfg.train.cond_dropout
        with bf16:
            ctx = encoder(y.to(dev), generator=gen, drop=drop)
        noise = torch.randn(z0.shape, generator=gen).to(dev)
        t = torch.randint(0, self.cfg.num_train_timesteps, (b,), generator=gen).to(dev)
        z0 = z0.to(dev)
        sched = self.stage_schedulers[stage]
        zt = sched.add_noise(z0, noise, t)
        inp = zt if extra is None else torch.cat([zt, extra.to(dev)], dim=1)
        velocity = self.cfg.objective(stage).prediction_type == "v_prediction"
        target = sched.get_velocity(z0, noise, t) if velocity else noise
        with bf16:
            prediction = predict_noise(unet, inp, t, ctx)
        err = (prediction.float() - target).pow(2).mean(dim=(1, 2, 3))
        return (err * self._loss_weights(t, stage)).mean()

    def _arithmetic_record(self, stage: int) -> dict[str, str]:
        """What diffusion stage ``stage``'s ``.done`` marker says of its arithmetic: ``autocast``
        where ``train.bf16_stages`` names it (nothing for fp32), and ``memory_format`` where
        ``train.channels_last`` holds (nothing for the contiguous layout)."""
        record = {"autocast": "bf16"} if stage in self.cfg.train.bf16_stages else {}
        return {**record, **self._layout_record()}

    def _layout_record(self) -> dict[str, str]:
        """What a phase's ``.done`` marker says of its memory layout: ``memory_format`` where
        ``train.channels_last`` holds (nothing for the contiguous layout)."""
        return {"memory_format": "channels_last"} if self.cfg.train.channels_last else {}

    def _in_layout(self, x: torch.nn.Module | torch.Tensor) -> Any:
        """A network, or a batch ``(B, C, H, W)``, in the channels-last layout where ``train.channels_last``
        holds, else as it is. Networks save contiguous: diffusers' ``save_pretrained`` packs them."""
        return x.to(memory_format=torch.channels_last) if self.cfg.train.channels_last else x

    def _unet(self, stage: int) -> torch.nn.Module:
        """Diffusion stage ``stage``'s new UNet, in the training's memory layout (``_in_layout``)."""
        return self._in_layout(build_unet(self.cfg, stage))

    def _loss_weights(self, t: torch.Tensor, stage: int = 2) -> torch.Tensor:
        """Diffusion stage ``stage``'s per-sample loss weights ``(B,)`` at timesteps ``t`` ``(B,)``:
        ones, or min-SNR-gamma (Hang et al. 2023), which stops the nearly clean timesteps from
        dominating: min(SNR, gamma) / SNR for the noise target, min(SNR, gamma) / (SNR + 1) for the
        velocity target, under the stage's own objective and schedule."""
        objective = self.cfg.objective(stage)
        if objective.snr_gamma is None:
            return torch.ones(t.shape, device=t.device)
        snr = compute_snr(self.stage_schedulers[stage], t).to(t.device)
        clipped = snr.clamp(max=objective.snr_gamma)
        return clipped / snr if objective.prediction_type == "epsilon" else clipped / (snr + 1.0)

    def _train_stage1(self, i: int) -> None:
        cfg = self.cfg.train
        batch, lr = cfg.stage_batch(1)

        def loss_fn(m, gen):
            idx, ks = self._sample_idx(gen, batch)
            z0 = self._latents("vae_map", idx, ks, gen)
            return self._diffusion_loss(
                1, m["unet_stage1"], m["encoder_stage1"], z0, self._conditions(idx, gen, 1), gen, None
            )

        modules = {"unet_stage1": self._unet(1), "encoder_stage1": self._encoder()}
        steps, decay = cfg.stage_schedule(1)
        record = self._arithmetic_record(1)
        self._loop(i, "stage1", modules, loss_fn, steps, lr, ema=True, lr_decay=decay, record=record)

    def _train_stage2(self, i: int) -> None:
        cfg, c = self.cfg.train, self.cfg
        modules: dict[str, torch.nn.Module] = {"encoder_stage2": self._encoder()}
        if c.two_stage and c.map_condition == "learned":
            modules["map_encoder"] = build_map_encoder(c)
        modules["unet_stage2"] = self._unet(2)

        batch, lr = cfg.stage_batch(2)
        redrawn, record = None, self._arithmetic_record(2)
        if c.two_stage and cfg.stage2_redrawn_maps > 0:
            redrawn, seconds = self._redrawn_maps()
            record["redraw_seconds"] = round(seconds, 1)  # the redraws' time belongs to the phase

        def loss_fn(m, gen):
            idx, ks = self._sample_idx(gen, batch)
            z0 = self._latents("vae_image", idx, ks, gen)
            extra = None
            if c.two_stage:
                shares = self._map_shares(idx, ks)
                if redrawn is not None:  # conditioning augmentation: these tiles read stage 1's redraw
                    use = torch.rand(len(idx), generator=gen) < cfg.stage2_redrawn_maps
                    if use.any():
                        shares[use] = d4_batch(as_class_shares(redrawn[idx[use]]), ks[use])
                shares = shares.to(self.acc.device)
                extra = map_condition(
                    shares, c.image_latent_size, m.get("map_encoder"), lossless=c.map_condition == "space_to_depth"
                )
            return self._diffusion_loss(
                2, m["unet_stage2"], m["encoder_stage2"], z0, self._conditions(idx, gen, 2), gen, extra
            )

        steps, decay = cfg.stage_schedule(2)
        self._loop(i, "stage2", modules, loss_fn, steps, lr, ema=True, lr_decay=decay, record=record)

    def _redrawn_maps(self) -> tuple[torch.Tensor, float]:
        """Stage 1's SDEdit redraw of every training tile's true map toward the tile's own
        properties (``train.stage2_redrawn_maps``), at the config's sampling steps and guidance:
        class indices ``(N, R, R)`` uint8, or class shares ``(N, 3, R, R)`` for soft maps, and the
        seconds the redraw took. Drawn once per run from the seed and kept in the run folder (its
        time in the file's metadata) until the run is finished, so a resumed run reads both."""
        path = self.out / REDRAWN_MAPS
        if path.exists():
            with safe_open(str(path), framework="pt") as f:
                seconds = float((f.metadata() or {}).get("seconds", 0.0))
            return load_file(path)["maps"].to(self.data.maps.device), seconds
        c = self.cfg
        pipe = TiM3Pipeline.map_stage(
            self.out, c, self.props, self._encode_all("vae_map")[2], dict(self.stage_schedulers[1].config)
        )
        for module in pipe.modules.values():
            module.to(self.acc.device)
        y = self._normalised(self.data.props_raw, slice(None))
        out, started = [], time.perf_counter()
        starts = range(0, len(self.data), 64)
        for b, start in enumerate(tqdm(starts, desc="redraw maps", disable=not self.progress, unit="batch")):
            sl = slice(start, start + 64)
            maps = pipe.redraw_maps(
                y[sl],
                self._map_shares(sl),
                c.train.stage2_map_redraw_strength,
                c.sampling_steps,
                c.guidance_scale,
                c.sampler,
                seeded_generator(c.train.seed, 4, b),
            )
            out.append(maps.cpu().to(torch.uint8 if maps.dim() == 3 else torch.float16))
        redrawn, seconds = torch.cat(out), time.perf_counter() - started
        if self.acc.is_main_process:
            save_file({"maps": redrawn.contiguous()}, str(path) + ".tmp", metadata={"seconds": f"{seconds:.1f}"})
            Path(str(path) + ".tmp").replace(path)
        return redrawn.to(self.data.maps.device), seconds

    def _encoder(self) -> PropertyEncoder:
        e = self.cfg.encoder
        return PropertyEncoder(self.n_cond, e.kind, e.hidden, e.dim, e.n_tokens, e.n_components)

    # ------------------------------------------------------------------ model files

    def _finalise(self) -> None:
        """config.json, properties.json (with the hull points), scheduler/ and training times."""
        scales = {
            w: self._encode_all(w)[2] for w in (["vae_image", "vae_map"] if self.cfg.two_stage else ["vae_image"])
        }
        extra = (
            [PropertySpec("brightness", "", -1.0, 1.0, 0.0, "mean grey level, -1 black .. 1 white")]
            if self.cfg.brightness
            else []
        )
        properties_with_hull(self.props, self.data.specimens, self.data.props_raw.numpy(), extra).save(
            self.out / "properties.json"
        )
        make_scheduler(self.cfg).save_pretrained(self.out / "scheduler")
        if self.cfg.stage1_objective is not None:  # stage 1's own, beside the shared one
            make_scheduler(self.cfg, 1).save_pretrained(self.out / STAGE1_SCHEDULER_DIR)
        times = {p.stem: json.loads(p.read_text()) for p in sorted((self.out / DONE_DIR).glob("*.json"))}
        TiM3Pipeline.write_config(
            self.out,
            self.cfg,
            scales,
            float(self.brightness.mean()),
            {
                "brightness_range": list(self.brightness_range),
                "training": times,
                "train_tiles": len(self.data),
                **({"data_digest": self.data_digest} if self.data_digest else {}),
            },
        )
        shutil.rmtree(self.out / CHECKPOINT_DIR, ignore_errors=True)
        (self.out / REDRAWN_MAPS).unlink(missing_ok=True)


def train_tim3(
    data_root: str | Path, out: str | Path, cfg: TiM3Config, resume: bool = False, progress: bool = True
) -> Path:
    """Train TiM3 on a dataset folder into ``out``.

    ``out`` holding a finished model is refused; an unfinished run is continued only with
    ``resume`` (so a typo cannot silently mix two runs).
    """
    out = Path(out)
    check_run_dir(out, "config.json", "model", resume, cfg.to_dict())
    data = data_digests(data_root, progress=progress)
    check_run_data(out, data)
    trainer = TiM3Trainer(data_root, out, cfg, progress=progress, data_digest=data[str(data_root)])
    if trainer.acc.is_main_process:
        start_run_dir(out, "tim3", cfg.to_dict(), data)
    trainer.acc.wait_for_everyone()
    return trainer.run()
