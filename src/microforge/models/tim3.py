"""TiM3's configuration and its networks, built from diffusers components.

Stage 1: properties -> latent of the 3-class map (UNet2DConditionModel, cross-attention on the
property context). Stage 2: map + properties -> latent of the micrograph; the map enters as
extra input channels at every step (a one-hot map resized to the latent grid, or a small learned
conv encoder, or the map rearranged losslessly onto the latent grid), the properties through
cross-attention. Each stage has its own latent codec: a learned AutoencoderKL, or a lossless
space-to-depth rearrangement (pixel-unshuffle, as in Hoogeboom et al.'s simple diffusion), which
costs no reconstruction error and no training. The one-stage variant (``two_stage: false``) maps
properties straight to the micrograph latent.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import nn

from ..config import check_guidance, nested_config_from_dict, plain_data
from ..io import read_yaml_mapping
from ..errors import MicroforgeError


CODECS = ("kl", "space_to_depth")
PREDICTION_TYPES = ("epsilon", "v_prediction")
BETA_SCHEDULES = ("scaled_linear", "linear", "squaredcos_cap_v2")
MAP_CONDITIONS = ("onehot", "learned", "space_to_depth")
MAP_REPRESENTATIONS = ("hard", "soft")
ADVERSARIAL_CONDITIONS = ("none", "map", "map+properties")  # what the decoder's discriminator sees beside the image


def _require_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a config value outside ``choices``, naming the field and the choices."""
    if value not in choices:
        raise MicroforgeError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class AutoencoderConfig:
    # "kl": a learned AutoencoderKL (the fields below); "space_to_depth": a lossless pixel-unshuffle
    # by ``factor`` (C x f^2 channels on a grid f times smaller; no weights, nothing to train). At
    # 64-128 px a learned autoencoder costs more than it saves (docs/tim3.md, ablation table).
    kind: str = "kl"
    factor: int = 2  # space_to_depth only: the downsampling factor
    # multiplies the latents' scaling factor (1 / their std): below 1 it divides the signal-to-noise
    # ratio of every noise level by its square, for this codec's stage alone (Chen 2023's input
    # scaling). Under the scaled-linear schedule a one-hot map rearranged by space_to_depth keeps much
    # of its layout at the last noise level (8 x 8 means: correlation 0.31 with the clean map, against
    # 0.13 for the learned map latent; at 0.45, 0.14), but scaling alone did not make the epsilon
    # objective draw maps (candidate aa, docs/tim3.md). 1: latent diffusion's unit variance
    signal_scale: float = 1.0
    block_out_channels: tuple[int, ...] = (16, 32, 32)  # three levels: downsampling f = 4
    latent_channels: int = 4  # as in Stable Diffusion and TiM3
    layers_per_block: int = 1  # tiny: 0.24 M parameters, 0.16 s per step on 2 CPU cores
    norm_num_groups: int = 8  # divides every channel count above
    mid_attention: bool = False  # self-attention in the mid block: 2x the CPU cost, little gain at 16^2
    steps: int = 1500  # optimiser steps
    batch_size: int = 8
    lr: float = 1e-3  # AdamW
    kl_weight: float = 1e-6  # weak KL, as latent diffusion autoencoders use
    # weight of an L1 loss on the image's finite differences (micrograph autoencoder only): it keeps
    # 1-3 px laths that a pixel MSE alone averages away. Latent diffusion uses LPIPS and a GAN for
    # this; both need pretrained or extra networks, this costs nothing. 0: MSE only.
    gradient_weight: float = 0.0
    # steps of decoder fine-tuning against a patch discriminator once the autoencoder has trained
    # (micrograph autoencoder only; docs/tim3.md "Adversarial decoder"). The encoder stays frozen,
    # so every latent, the scaling factor and the diffusion stages trained on them are unchanged;
    # the decoder learns to draw the shot-noise grain and sharp lath edges that the MSE averages
    # away (latent diffusion trains its autoencoder with a patch GAN for this). 0: none.
    adversarial_steps: int = 0
    adversarial_weight: float = 0.1  # of the hinge generator loss, beside the MSE and edge loss
    adversarial_lr: float = 1e-4  # Adam(0.5, 0.9), decoder and discriminator alike, as GANs are trained
    # what the discriminator sees beside the image: "none" (latent diffusion's unconditional patch GAN)
    # or "map" (the tile's metallographic map as class shares, pix2pix's conditional discriminator), so
    # that texture must fit the phases and lath scale the map shows to pass as real; "map+properties":
    # the map and the tile's normalised properties as constant channels, so that texture must also fit
    # the strength and ductility the tile has (the regressor read the map-conditional decoder's grain
    # as finer, stronger microstructure)
    adversarial_condition: str = "none"


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # the tiny UNet (docs/tim3.md, configs)
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    # attention blocks (self- and cross-attention) only on feature grids of at most this side, and
    # never at the lowest level; None: no limit. 16 keeps a 32^2 latent affordable on a CPU (attention
    # over 1024 tokens costs 6x the rest of the tiny UNet's step).
    attention_max_size: int | None = 16  # no attention on larger grids (6x the step time on a CPU); None: every level
    # stages (1, 2) whose UNet also adds the mean of the property tokens to its timestep embedding
    # (diffusers' projection class embedding), so the target reaches every block, not only the
    # attention ones, for global statistics such as the primary-alpha fraction; (): none. On the
    # tiny CPU model it made no difference beyond the noise (docs/tim3.md), so no config uses it yet.
    global_condition: tuple[int, ...] = ()

    def levels_with_attention(self, sample_size: int) -> tuple[int, ...]:
        """The levels (0: the latent's own grid of side ``sample_size``) with attention blocks."""
        n, limit = len(self.block_out_channels), self.attention_max_size
        return tuple(i for i in range(n - 1) if limit is None or sample_size // 2**i <= limit)


@dataclass(frozen=True)
class ObjectiveConfig:
    """A diffusion stage's objective: its noise schedule, what its UNet predicts, how each timestep's
    loss is weighted, and how the sampler spaces its steps. TiM3Config's top-level fields of these
    names are both stages' unless its ``stage1_objective`` gives stage 1 its own."""

    beta_schedule: str = "scaled_linear"  # latent-diffusion schedule, beta 0.00085 .. 0.012
    # divides the schedule's signal-to-noise ratio by shift^2 at every t (Hoogeboom et al. 2023: a
    # tensor with more, redundant values needs more noise to hide its content); 1: none
    schedule_shift: float = 1.0
    # what the UNet predicts: "epsilon" (the noise, TiM3's loss) or "v_prediction" (Salimans & Ho)
    prediction_type: str = "epsilon"
    # min-SNR-gamma loss weighting (Hang et al. 2023): each timestep's loss weighted by
    # min(SNR, gamma) / SNR (epsilon) or / (SNR + 1) (v); None: the plain MSE, as TiM3
    snr_gamma: float | None = None
    # how the sampler places its steps (diffusers' timestep_spacing): "leading" starts 20-step DDIM
    # at t = 950; "trailing" starts at t = 999, the schedule's last, noisiest step
    timestep_spacing: str = "leading"

    def __post_init__(self) -> None:
        _require_choice("prediction_type", self.prediction_type, PREDICTION_TYPES)
        _require_choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        if not self.schedule_shift > 0:
            raise MicroforgeError(f"schedule_shift must be positive, got {self.schedule_shift}")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise MicroforgeError(f"snr_gamma must be positive (or null for none), got {self.snr_gamma}")
        if self.timestep_spacing not in ("leading", "trailing", "linspace"):
            raise MicroforgeError(
                f"timestep_spacing must be leading, trailing or linspace, got {self.timestep_spacing!r}"
            )


@dataclass(frozen=True)
class EncoderConfig:
    kind: str = "gmm"  # "gmm": TiM3's probabilistic encoder; "mlp": the ablation baseline
    hidden: int = 128
    dim: int = 64  # token width = the UNet's cross_attention_dim
    n_tokens: int = 4  # learned tokens of context (docs/tim3.md explains the choice)
    n_components: int = 4  # U, mixture components


LR_DECAYS = ("constant", "cosine")  # train.lr_decay: the learning rate after the warm-up


@dataclass(frozen=True)
class TrainConfig:
    # per diffusion stage (0.2 s a step for the tiny UNet on 2 CPU cores); at 2 000 the maps followed the target weakly
    steps: int = 8000
    stage2_steps: int | None = 6000  # stage 2 alone, when the micrograph needs more than the map (None: steps)
    batch_size: int = 16
    lr: float = 3e-4  # AdamW, after a 100-step warm-up
    # stage 2's batch size and learning rate (None: as stage 1's). A GPU run that trains a new stage 2
    # on a finished model's stage 1 can use a large batch without retraining stage 1 (benchmarks/gpu_run.sh)
    stage2_batch_size: int | None = None
    stage2_lr: float | None = None
    # stage 1's learning rate after the warm-up: "constant", or "cosine" (half a cosine down to 0 at
    # the last step, so the last weights are not a snapshot of a still-noisy walk)
    lr_decay: str = "constant"
    stage2_lr_decay: str | None = None  # stage 2's (None: as lr_decay)
    ema_decay: float = 0.999  # EMA weights are the ones saved for sampling
    cond_dropout: float = 0.1  # share of samples trained unconditionally (classifier-free guidance)
    property_noise: bool = True  # TiM3's Table 4 augmentation (stds from properties.json)
    # stage 1's noise stds as a multiple of properties.json's (1: TiM3's Table 4). On the benchmark the
    # Table-4 stds, scaled to [0, 1] over the specimens, make a 7-d ball of radius 0.33 around each
    # specimen, three times the spacing between nearest specimens; at 0.5 the maps' primary alpha
    # follows the target (bimodal 0.42 -> 0.37, truth 0.35) and mAcc rises 0.66 -> 0.69 (candidate s,
    # docs/tim3.md). The small and paper configs keep Table 4's 1
    property_noise_scale: float = 0.5
    # stage 2's (None: as stage 1's); 1, Table 4's: the bundled stage 2 was trained with it
    stage2_property_noise_scale: float | None = 1.0
    augment: bool = True  # the 8 symmetries of the square, on latents and maps alike
    # share of stage 2's training tiles whose map condition is stage 1's SDEdit redraw of the tile's
    # true map instead of the map itself (conditioning augmentation, as cascaded diffusion models
    # corrupt the low-resolution image they condition on: Ho et al. 2022). At sampling stage 2 reads
    # stage 1's maps, with their speckle and broken laths, where TiM3 trains it on true maps only;
    # trained on redraws, it learns to draw the tile's micrograph from such a map. 0: true maps only,
    # as TiM3. Each tile's redraw is drawn once, before stage 2, at the config's sampling steps and
    # guidance and the tile's own properties
    stage2_redrawn_maps: float = 0.0
    # how far along the noise schedule each redraw starts (0.5: half of the sampling steps are
    # rerun): at 0.3 stage 1 keeps 97 % of the true map's pixels, at 0.7 77 % (the layout: globules,
    # grain boundaries and colony directions) and redraws the laths its own way; at 1 it draws anew
    stage2_map_redraw_strength: float = 0.6
    # the diffusion stages (1, 2) whose forward passes (property encoder and UNet) run under bfloat16 autocast;
    # weights, optimizer, EMA and loss stay fp32. On 2 cores with bf16 units (AVX-512 BF16) a tiny training step
    # is 1.2x faster (stage 1 0.39 -> 0.32 s, stage 2 0.66 -> 0.53 s: benchmarks/results/tim3_train_bf16_cpu.json),
    # and candidate x's stage 2 scored as the fp32 one (docs/tim3.md); a CPU without them emulates bf16 and is
    # slower (stage 2 2.00 s against fp32's 1.03 s: tim3_train_bf16_cpu_no-bf16-units.json; `train tim3` warns).
    # (): fp32 throughout, the default for CPUs without bf16 units; the bundled models' stage 2 was trained under
    # bf16 on a CPU with them ([2]: configs/tim3-tiny-bf16.yaml, 51.6 min for 6 000 steps)
    bf16_stages: tuple[int, ...] = ()
    # the diffusion stages' UNets and the two autoencoders train in the channels-last memory layout, which the
    # CPU's oneDNN convolutions run faster: a tiny training step 0.95 -> 0.78 s for stage 2 and 0.51 -> 0.36 s for
    # stage 1 on 2 cores without bf16 units (benchmarks/results/tim3_train_channels_last_cpu.json), and the map
    # autoencoder's 0.39 -> 0.34 s and the image one's 0.21 -> 0.18 s (tim3_train_channels_last_autoencoders_cpu.json).
    # The arithmetic is the same; only the float rounding moves (outputs within 5e-6, gradients within 1.2e-5
    # relative, as on another CPU), so seeding a run may change it freely. The bundled models' autoencoders and
    # stage 1 were trained in the contiguous layout before this option, their stage 2 (2026-12-08) and candidate z's
    # stages (docs/tim3.md) in this one. False: contiguous (an escape hatch, should a PyTorch build mishandle the
    # layout)
    channels_last: bool = True
    checkpoint_every: int = 250  # steps between resumable checkpoints
    keep_checkpoints: int = 2  # older checkpoints are deleted
    seed: int = 0

    def __post_init__(self) -> None:
        scales = (self.property_noise_scale, self.stage2_property_noise_scale)
        if any(v is not None and v < 0 for v in scales):
            raise MicroforgeError(f"train property_noise_scale must not be negative, got {scales}")
        if not 0.0 <= self.stage2_redrawn_maps <= 1.0:
            raise MicroforgeError(f"train stage2_redrawn_maps must lie in [0, 1], got {self.stage2_redrawn_maps}")
        for name in ("batch_size", "lr", "stage2_batch_size", "stage2_lr"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise MicroforgeError(f"train {name} must be a positive number, got {value!r}")
        if not set(self.bf16_stages) <= {1, 2}:
            raise MicroforgeError(
                f"train bf16_stages names diffusion stages 1 and 2 only, got {list(self.bf16_stages)}"
            )
        if not 0.0 < self.stage2_map_redraw_strength <= 1.0:
            raise MicroforgeError(
                f"train stage2_map_redraw_strength must lie in (0, 1], got {self.stage2_map_redraw_strength}"
            )

    def stage_batch(self, stage: int) -> tuple[int, float]:
        """Diffusion stage ``stage``'s (1 or 2) batch size and learning rate after the warm-up, a
        null stage-2 field taking stage 1's."""
        if stage == 1:
            return self.batch_size, self.lr
        return self.stage2_batch_size or self.batch_size, self.stage2_lr or self.lr

    def noise_scale(self, stage: int) -> float:
        """Diffusion stage ``stage``'s (1 or 2) multiple of the property noise stds; 0 without
        ``property_noise``."""
        if not self.property_noise:
            return 0.0
        if stage == 2 and self.stage2_property_noise_scale is not None:
            return self.stage2_property_noise_scale
        return self.property_noise_scale

    def stage_schedule(self, stage: int) -> tuple[int, str]:
        """Diffusion stage ``stage``'s (1 or 2) steps and learning-rate decay, a null stage-2 field
        taking stage 1's."""
        if stage == 1:
            return self.steps, self.lr_decay
        return self.stage2_steps or self.steps, self.stage2_lr_decay or self.lr_decay


@dataclass(frozen=True)
class TiM3Config:
    resolution: int = 64  # px; dataset tiles are resized to this
    modality: str = "SEM"  # which renderings to learn
    two_stage: bool = True  # False: the one-stage ablation
    map_condition: str = "onehot"  # "onehot" (default) or "learned" (a small conv encoder)
    map_condition_channels: int = 8  # width of the learned map encoder's output
    # how a phase map is shown to the model at its resolution. "hard": one class per pixel, the
    # mask nearest-resized (at 64 px a colony of 1-2 px laths aliases into rows of dashes, which
    # stage 1 then learns to draw). "soft": each class's area share of every pixel, box-averaged
    # from the mask at its own size, so thin laths stay straight bands; the map autoencoder learns
    # to output these shares (cross-entropy against them) and stage 2 reads its softmax.
    map_representation: str = "hard"
    brightness: bool = False  # the optional extra condition: mean grey level in [-1, 1]
    num_train_timesteps: int = 1000
    # both stages' objective (ObjectiveConfig says what each field does), unless stage1_objective is given
    beta_schedule: str = ObjectiveConfig.beta_schedule
    schedule_shift: float = ObjectiveConfig.schedule_shift
    prediction_type: str = ObjectiveConfig.prediction_type
    snr_gamma: float | None = ObjectiveConfig.snr_gamma
    timestep_spacing: str = ObjectiveConfig.timestep_spacing
    # stage 1's own objective, a section with the five fields above; None: stage 1 trains and samples
    # with them, as stage 2 does. The lossless space-to-depth map codec needs v-prediction on a schedule
    # that ends at pure noise, where the learned micrograph latent's stage 2 keeps TiM3's epsilon
    # (docs/tim3.md, candidates aa and ac)
    stage1_objective: ObjectiveConfig | None = field(default=None, metadata={"section": ObjectiveConfig})
    sampler: str = "ddim"  # "ddim" or "dpm++"
    # DDIM steps: 10, where TiM3 uses 20. The tiny model scores the same at 10 (FID 246.8 against 246.6,
    # mAcc 0.62 against 0.61: docs/tim3.md), and 10 keeps its wider stage 2 inside 0.5 s per image on 2 cores
    sampling_steps: int = 10
    # classifier-free guidance at sampling (1 = none); 11: with stage 1 trained at half the property noise,
    # mAcc 0.69 -> 0.71 and R² >= 0.5 for 5 of 7 properties (3 at 8), S2 primary alpha / beta 2 / 6 %
    # (the 500-target protocol, docs/tim3.md)
    guidance_scale: float = 11.0
    # the micrograph stage's scale when it differs from the map stage's (None: guidance_scale for both)
    stage2_guidance_scale: float | None = None
    # the noise levels at which guidance applies (Kynkäänniemi et al. 2024, "guidance interval"): a step guides
    # when its sigma = sqrt((1 - alphabar_t) / alphabar_t) lies in (low, high], and takes the conditional
    # prediction alone elsewhere (one UNet call instead of two). None: every step, as TiM3. The 10 tiny DDIM
    # steps sit at sigma 8.3, 5.1, 3.3, 2.3, 1.6, 1.2, 0.83, 0.57, 0.34, 0.03
    guidance_interval: tuple[float, float] | None = None
    # the micrograph stage's interval when it differs from the map stage's (None: guidance_interval for both)
    stage2_guidance_interval: tuple[float, float] | None = None
    # DDIM's eta (Song et al. 2021, eq. 16): 0, the deterministic sampler, as TiM3; 1, as stochastic as DDPM's
    # ancestral sampler (fresh noise from the call's generator at every step). The dpm++ sampler ignores it
    ddim_eta: float = 0.0
    # the micrograph stage's (None: ddim_eta for both). At 1 on the bundled SEM model FID 218 -> 206, KID 0.109 ->
    # 0.097 and mAcc 0.709 -> 0.693, under the 0.70 target, so the SEM default stays deterministic; the OM model
    # samples at 1 (FID 172 -> 161, mAcc 0.582 -> 0.573: docs/tim3.md)
    stage2_ddim_eta: float | None = None
    # std of white Gaussian noise added to every decoded micrograph, in grey levels of [0, 1]; 0: none, as TiM3.
    # The decoder draws a mean image and averages away the SEM shot noise; benchmarks/observation_noise.py
    # measures what it lacks. 0 by default: on the bundled SEM model the missing 0.031 lowers FID 218 -> 206 and
    # lifts recall 0.012 -> 0.086, but the regressor reads the noise as finer, stronger structure (mAcc 0.71 ->
    # 0.65, R² >= 0.5 for 1 property instead of 5; docs/tim3.md)
    observation_noise_std: float = 0.0
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)  # by specimen
    # micrograph <-> stage-2 latent: f = 2 (4 x 32 x 32 at 64 px; f = 4 lost the 1-3 px laths), with the edge
    # loss, then 3 000 steps of decoder fine-tuning against a map-conditional patch discriminator (8 min on 2
    # cores; FID 271 -> 253, mAcc 0.58 -> 0.60; the unconditional one biased the regressor: docs/tim3.md)
    vae_image: AutoencoderConfig = field(
        default_factory=lambda: AutoencoderConfig(
            block_out_channels=(16, 32), gradient_weight=0.5, adversarial_steps=3000, adversarial_condition="map"
        )
    )
    # one-hot map <-> stage-1 latent: f = 2 (4 x 32 x 32 at 64 px; at f = 4 stage 1 drew lath colonies as speckle:
    # morphology recognition 0.38 -> 0.44, FID 253 -> 247, docs/tim3.md); at 1 500 steps of batch 8 it lost half the
    # 1 px beta films
    vae_map: AutoencoderConfig = field(
        default_factory=lambda: AutoencoderConfig(block_out_channels=(16, 32), steps=4000, batch_size=16)
    )
    unet: UNetConfig = field(default_factory=UNetConfig)  # stage 1's UNet, and stage 2's unless unet_stage2 is given
    # stage 2's UNet when it differs from stage 1's; its global_condition must stay empty, since
    # unet.global_condition names the stages. None (null in YAML): as unet. The tiny default is wider
    # and one level deeper than unet (48-96-96-96, 4.7 M parameters against 1.4 M; attention at 16 x 16
    # and below): FID 247 -> 232, KID 0.147 -> 0.131, morphology recognised 0.44 -> 0.51 (docs/tim3.md)
    unet_stage2: UNetConfig | None = field(
        default_factory=lambda: UNetConfig(block_out_channels=(48, 96, 96, 96)), metadata={"section": UNetConfig}
    )
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name in ("vae_image", "vae_map"):
            ae = getattr(self, name)
            if ae.kind not in CODECS:
                raise MicroforgeError(f"{name} kind must be one of {', '.join(CODECS)}, got {ae.kind!r}")
            if ae.kind == "space_to_depth" and (ae.factor < 1 or ae.factor & (ae.factor - 1)):
                raise MicroforgeError(f"{name} factor must be a power of 2, got {ae.factor}")
            if not ae.signal_scale > 0:
                raise MicroforgeError(f"{name} signal_scale must be positive, got {ae.signal_scale}")
            if ae.adversarial_steps < 0 or ae.adversarial_weight < 0:
                raise MicroforgeError(f"{name} adversarial_steps and adversarial_weight must not be negative")
            if ae.adversarial_condition not in ADVERSARIAL_CONDITIONS:
                raise MicroforgeError(
                    f"{name} adversarial_condition must be one of {', '.join(ADVERSARIAL_CONDITIONS)},"
                    f" got {ae.adversarial_condition!r}"
                )
        if self.vae_map.adversarial_steps:
            raise MicroforgeError("vae_map adversarial_steps must be 0: the map decoder draws class shares, not images")
        if not set(self.unet.global_condition) <= {1, 2}:
            raise MicroforgeError(
                f"unet global_condition names stages 1 and 2 only, got {list(self.unet.global_condition)}"
            )
        if self.unet_stage2 is not None and self.unet_stage2.global_condition:
            raise MicroforgeError("unet_stage2 global_condition must be empty: unet.global_condition names the stages")
        for name, stage, section in (
            ("vae_map", 1, "unet"),
            ("vae_image", 2, "unet_stage2" if self.unet_stage2 else "unet"),
        ):
            unet = self.stage_unet(stage)
            if self.resolution % (downsampling(getattr(self, name)) * 2 ** (len(unet.block_out_channels) - 1)):
                raise MicroforgeError(
                    f"resolution {self.resolution} must be divisible by the {name} and UNet downsampling ({section})"
                )
            if not unet.levels_with_attention(self.resolution // downsampling(getattr(self, name))):
                raise MicroforgeError(
                    f"{section} attention_max_size {unet.attention_max_size} leaves the {name} latent's UNet "
                    "without attention, and the properties enter through cross-attention"
                )
        _require_choice("map_condition", self.map_condition, MAP_CONDITIONS)
        _require_choice("map_representation", self.map_representation, MAP_REPRESENTATIONS)
        self.objective(2)  # the shared objective's fields, checked by ObjectiveConfig
        if self.sampler not in ("ddim", "dpm++"):
            raise MicroforgeError(f"sampler must be 'ddim' or 'dpm++', got {self.sampler!r}")
        for name in ("guidance_scale", "stage2_guidance_scale"):
            if getattr(self, name) is not None:
                check_guidance(getattr(self, name), name)
        for name in ("guidance_interval", "stage2_guidance_interval"):
            interval = getattr(self, name)
            if interval is not None and not (
                len(interval) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)
                and 0 <= interval[0] < interval[1] < float("inf")
            ):
                raise MicroforgeError(
                    f"{name} must be two noise levels [low, high] with 0 <= low < high, got {interval}"
                )
        for name in ("ddim_eta", "stage2_ddim_eta"):
            eta = getattr(self, name)
            if eta is not None and not 0.0 <= eta <= 1.0:
                raise MicroforgeError(f"{name} must lie in [0, 1] (0: deterministic DDIM), got {eta}")
        if not 0.0 <= self.observation_noise_std < 1.0:
            raise MicroforgeError(
                f"observation_noise_std must be a grey-level std in [0, 1), got {self.observation_noise_std}"
            )
        if self.modality not in ("OM", "SEM"):
            raise MicroforgeError(f"modality must be OM or SEM, got {self.modality!r}")
        for name, allowed in (("lr_decay", LR_DECAYS), ("stage2_lr_decay", (None, *LR_DECAYS))):
            if getattr(self.train, name) not in allowed:
                raise MicroforgeError(
                    f"train {name} must be one of {', '.join(LR_DECAYS)}, got {getattr(self.train, name)!r}"
                )

    def stage_guidance_interval(self, stage: int) -> tuple[float, float] | None:
        """Diffusion stage ``stage``'s (1 or 2) guidance interval (sigma low, high]; None: every step."""
        if stage == 2 and self.stage2_guidance_interval is not None:
            return self.stage2_guidance_interval
        return self.guidance_interval

    def stage_eta(self, stage: int) -> float:
        """Diffusion stage ``stage``'s (1 or 2) DDIM eta (0: deterministic)."""
        if stage == 2 and self.stage2_ddim_eta is not None:
            return self.stage2_ddim_eta
        return self.ddim_eta

    def objective(self, stage: int) -> ObjectiveConfig:
        """The objective diffusion ``stage`` trains and samples with: ``stage1_objective`` for stage 1
        where given, else the top-level fields, shared by both stages."""
        if stage == 1 and self.stage1_objective is not None:
            return self.stage1_objective
        return ObjectiveConfig(**{f.name: getattr(self, f.name) for f in fields(ObjectiveConfig)})

    def stage_unet(self, stage: int) -> UNetConfig:
        """The UNet config of diffusion ``stage`` (1: maps; 2: micrographs, ``unet_stage2`` if given)."""
        return self.unet_stage2 if stage == 2 and self.unet_stage2 is not None else self.unet

    @property
    def image_latent_size(self) -> int:
        """Side of the micrograph latent (stage 2) in latent pixels."""
        return self.resolution // downsampling(self.vae_image)

    @property
    def map_latent_size(self) -> int:
        """Side of the map latent (stage 1) in latent pixels."""
        return self.resolution // downsampling(self.vae_map)

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


def downsampling(cfg: AutoencoderConfig) -> int:
    """The codec's downsampling factor f (a learned autoencoder halves once per level after the first)."""
    return cfg.factor if cfg.kind == "space_to_depth" else 2 ** (len(cfg.block_out_channels) - 1)


def latent_channels(cfg: AutoencoderConfig, channels: int) -> int:
    """Channels of the latent of a ``channels``-channel input (space-to-depth: ``channels * f^2``)."""
    return channels * cfg.factor**2 if cfg.kind == "space_to_depth" else cfg.latent_channels


class SpaceToDepth(ModelMixin, ConfigMixin):
    """A lossless latent codec with AutoencoderKL's interface: ``encode`` rearranges each ``f x f``
    block of a ``(B, C, H, W)`` image into channels, ``(B, C f^2, H/f, W/f)`` (torch's
    pixel_unshuffle), with a point-mass posterior; ``decode`` is the exact inverse. It has no
    weights, so its folder holds only config.json."""

    @register_to_config
    def __init__(self, channels: int = 1, factor: int = 2) -> None:
        super().__init__()

    def encode(self, x: torch.Tensor) -> AutoencoderKLOutput:
        mean = F.pixel_unshuffle(x, self.config.factor)
        return AutoencoderKLOutput(
            latent_dist=DiagonalGaussianDistribution(torch.cat([mean, torch.zeros_like(mean)], 1), deterministic=True)
        )

    def decode(self, z: torch.Tensor) -> DecoderOutput:
        return DecoderOutput(sample=F.pixel_shuffle(z, self.config.factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).latent_dist.mean).sample

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> "SpaceToDepth":
        """Read the folder's config.json (there are no weights to read)."""
        return cls.from_config(cls.load_config(folder))


def codec_class(cfg: AutoencoderConfig) -> type:
    """The class that loads a saved codec of this config."""
    return SpaceToDepth if cfg.kind == "space_to_depth" else AutoencoderKL


# what a saved model's config record means by leaving a field out: the field did not exist when it
# was trained, so neither did what the field turns on (a config file's missing field takes the default)
# (a section's missing keys, or a whole missing field: unet_stage2 absent means stage 2 used unet)
SAVED_RECORD_ABSENT = {
    "vae_image": {"adversarial_steps": 0},
    "unet_stage2": None,
    "train": {"property_noise_scale": 1.0, "stage2_property_noise_scale": None},  # Table 4's noise
}


def tim3_config_from_dict(data: dict[str, Any], where: str = "config", saved: bool = False) -> TiM3Config:
    """Build a :class:`TiM3Config` from nested plain data; unknown keys are named errors.

    Models saved before the two autoencoders had separate sections carry one ``vae`` section;
    it is read as both ``vae_image`` and ``vae_map``, which is what those models were trained with.
    ``saved``: ``data`` is a model folder's record of its training config, in which a field that
    did not exist yet is read as off (:data:`SAVED_RECORD_ABSENT`), not as today's default.
    """
    if "vae" in data:
        if "vae_image" in data or "vae_map" in data:
            raise MicroforgeError(f"{where}: give vae_image and vae_map, not the older shared vae section as well")
        data = {**{k: v for k, v in data.items() if k != "vae"}, "vae_image": data["vae"], "vae_map": data["vae"]}
    if saved:
        absent = {k: v for k, v in SAVED_RECORD_ABSENT.items() if not isinstance(v, dict) and k not in data}
        sections = {k: {**v, **data[k]} for k, v in SAVED_RECORD_ABSENT.items() if isinstance(v, dict) and k in data}
        data = {**data, **absent, **sections}
    return nested_config_from_dict(TiM3Config, data, where)


def load_tim3_config(path: str | Path | None) -> TiM3Config:
    """Read a TiM3 YAML config (``None``: the defaults, i.e. configs/tim3-tiny.yaml)."""
    if path is None:
        return TiM3Config()
    return tim3_config_from_dict(read_yaml_mapping(path), str(path))


def build_autoencoder(cfg: AutoencoderConfig, channels: int) -> AutoencoderKL | SpaceToDepth:
    """The latent codec for ``channels``-channel inputs in [-1, 1] (1: micrograph, 3: one-hot map):
    an untrained AutoencoderKL, or the space-to-depth rearrangement."""
    if cfg.kind == "space_to_depth":
        return SpaceToDepth(channels, cfg.factor)
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=64,
        mid_block_add_attention=cfg.mid_attention,
    )


def build_unet(cfg: TiM3Config, stage: int) -> UNet2DConditionModel:
    """The denoiser of ``stage`` (1: map latent; 2: micrograph latent plus the map condition's
    channels), with attention blocks at the config's levels (default: all but the lowest)."""
    unet = cfg.stage_unet(stage)
    n = len(unet.block_out_channels)
    if stage == 1:
        size, out_channels = cfg.map_latent_size, latent_channels(cfg.vae_map, 3)
        in_channels = out_channels
    else:
        size, out_channels = cfg.image_latent_size, latent_channels(cfg.vae_image, 1)
        in_channels = out_channels + map_condition_channels(cfg)
    attn = set(unet.levels_with_attention(size))
    global_kw = (
        {"class_embed_type": "projection", "projection_class_embeddings_input_dim": cfg.encoder.dim}
        if stage in cfg.unet.global_condition
        else {}
    )
    return UNet2DConditionModel(
        **global_kw,
        sample_size=size,
        in_channels=in_channels,
        out_channels=out_channels,
        down_block_types=tuple("CrossAttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n)),
        up_block_types=tuple("CrossAttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(n))),
        block_out_channels=tuple(unet.block_out_channels),
        layers_per_block=unet.layers_per_block,
        cross_attention_dim=cfg.encoder.dim,
        attention_head_dim=unet.attention_head_dim,
        norm_num_groups=unet.norm_num_groups,
    )


def predict_noise(
    unet: UNet2DConditionModel, x: torch.Tensor, t: torch.Tensor | int, context: torch.Tensor
) -> torch.Tensor:
    """The denoiser's output (the noise, or the velocity for ``prediction_type: v_prediction``) for latents
    ``x`` ``(B, C, S, S)`` at timesteps ``t`` given the
    property context ``(B, n_tokens, dim)``; a UNet built with global conditioning also gets the
    tokens' mean ``(B, dim)`` through its timestep embedding. ``unet`` may be wrapped for
    distributed training (its ``module`` then holds the config)."""
    config = getattr(unet, "module", unet).config
    global_condition = context.mean(1) if config.class_embed_type == "projection" else None
    return unet(x, t, encoder_hidden_states=context, class_labels=global_condition).sample


def map_condition_channels(cfg: TiM3Config) -> int:
    """Channels the map condition adds to the stage-2 input (0 in the one-stage variant)."""
    if not cfg.two_stage:
        return 0
    if cfg.map_condition == "space_to_depth":
        return 3 * downsampling(cfg.vae_image) ** 2
    return cfg.map_condition_channels if cfg.map_condition == "learned" else 3


def build_map_encoder(cfg: TiM3Config) -> "MapEncoder":
    """The learned map condition's encoder, down to the micrograph latent grid."""
    return MapEncoder(cfg.map_condition_channels, downsampling(cfg.vae_image))


class MapEncoder(nn.Module):
    """The learned map condition: one-hot map ``(B, 3, H, W)`` -> ``(B, C, H/f, W/f)``."""

    def __init__(self, out_channels: int, downsample: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, padding=1), nn.SiLU()]
        for _ in range(int(round(torch.log2(torch.tensor(float(downsample))).item()))):
            layers += [nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(32, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)


def map_condition(
    onehot: torch.Tensor, latent_size: int, encoder: MapEncoder | None, lossless: bool = False
) -> torch.Tensor:
    """The stage-2 map condition of a one-hot map ``(B, 3, R, R)``: the map area-resized to the
    latent grid (each channel is then the class's local share), the learned encoder's output, or
    (``lossless``) the map pixel-unshuffled onto the latent grid, ``(B, 3 f^2, S, S)``, every
    pixel kept. Values in [-1, 1]."""
    if encoder is not None:
        return encoder(onehot)
    if lossless:
        return F.pixel_unshuffle(onehot, onehot.shape[-1] // latent_size) * 2.0 - 1.0
    return F.interpolate(onehot, size=(latent_size, latent_size), mode="area") * 2.0 - 1.0
