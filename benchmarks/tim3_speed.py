"""Benchmark: TiM3 training step time and sampling throughput, per config.

    python benchmarks/tim3_speed.py [--configs tiny small paper] [--sample-configs tiny small] [--device cpu|cuda]
                                    [--batches 1 16 256] [--autocast bf16] [--train-autocast bf16] [--steps N]
                                    [--train-repeats 5] [--contiguous] [--autoencoders]

For each config (a name N for configs/tim3-N.yaml, or a YAML file's path, named by its stem):
seconds per stage-2 training step (forward, backward, AdamW; the median of ``--train-repeats`` steps after
a warm-up one) at the config's batch size, and
images per second for full two-stage sampling (``--steps`` DDIM steps, the config's ``sampling_steps`` by default, with
guidance, map and image decoding) at batch 1 and 16 (``--batches``), in fp32 and, with
``--autocast bf16|fp16``, also under autocast; with ``--train-autocast bf16``, both stages' training
steps in fp32 and under bf16 autocast (``train.bf16_stages``); with ``--contiguous``, both stages' training
steps (three rounds, the two layouts in turn, and their medians) and the sampling with the UNets in the
channels-last layout (``train.channels_last``, the default: the timings without a suffix are in it) and in the
contiguous one; with ``--autoencoders``, the two autoencoders' training steps (reconstruction and KL loss,
backward, AdamW, at each one's batch size) in both layouts, three rounds in turn. Random weights: speed does not
depend on them.
Writes benchmarks/results/tim3_speed_<device>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

import numpy as np
import torch
import torch.nn.functional as F

from microforge.models.property_encoder import PropertyEncoder
from microforge.models.tim3 import build_autoencoder, build_unet, load_tim3_config, predict_noise
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.properties import TITANIUM_PROPERTIES, PropertySet
from microforge.training.tim3_trainer import VAETraining, make_scheduler

REPO = Path(__file__).resolve().parents[1]


# the UNets' memory layouts --contiguous compares (TiM3Pipeline puts its UNets in the channels-last one)
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def put_unets(modules, layout: str, stages: tuple[int, ...] = (1, 2)) -> None:
    """Put the UNets of diffusion ``stages`` in the memory ``layout`` (a key of ``LAYOUTS``)."""
    for stage in stages:
        modules[f"unet_stage{stage}"].to(memory_format=LAYOUTS[layout])


def pipeline_for(cfg, device):
    e = cfg.encoder
    modules = {
        "vae_image": build_autoencoder(cfg.vae_image, 1),
        "vae_map": build_autoencoder(cfg.vae_map, 3),
        "encoder_stage1": PropertyEncoder(7, e.kind, e.hidden, e.dim, e.n_tokens, e.n_components),
        "encoder_stage2": PropertyEncoder(7, e.kind, e.hidden, e.dim, e.n_tokens, e.n_components),
        "unet_stage1": build_unet(cfg, 1),
        "unet_stage2": build_unet(cfg, 2),
    }
    for m in modules.values():
        m.to(device)
    pipe = TiM3Pipeline(
        Path("."),
        cfg,
        PropertySet(list(TITANIUM_PROPERTIES)),
        {"vae_image": 1.0, "vae_map": 1.0},
        0.0,
        modules,
        dict(make_scheduler(cfg).config),
        None,
        dict(make_scheduler(cfg, 1).config) if cfg.stage1_objective is not None else None,
    )
    return pipe, modules


def timed(fn, device: str) -> float:
    """Wall-clock seconds of one call of ``fn``, with the GPU's queued work finished before and after."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def train_step_seconds(cfg, modules, device, repeats=3, stage: int = 2, autocast: str | None = None) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of ``stage``'s UNet and
    property encoder at the stage's batch size (``train.stage_batch``); with ``autocast`` ("bf16"),
    the forward pass under bfloat16 autocast and the loss in fp32, as ``train.bf16_stages`` trains."""
    unet, enc = modules[f"unet_stage{stage}"], modules[f"encoder_stage{stage}"]
    params = [*unet.parameters(), *enc.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    b, s, c = cfg.train.stage_batch(stage)[0], unet.config.sample_size, unet.config.out_channels
    x = torch.randn(b, unet.config.in_channels, s, s, device=device)
    y = torch.rand(b, 7, device=device) * 2 - 1

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=autocast == "bf16"):
            out = predict_noise(unet, x, torch.randint(0, 1000, (b,), device=device), enc(y))
        F.mse_loss(out.float(), x[:, :c]).backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    return float(np.median([timed(step, device) for _ in range(repeats)]))


def time_layouts_in_turn(rec: dict, prefix: str, seconds_in, rounds: int = 3) -> None:
    """Time ``seconds_in(layout)`` for each layout of ``LAYOUTS``, taken in turn for ``rounds`` rounds (so the
    machine's drift touches both alike), into ``rec[f"{prefix}_{layout}"]`` (the rounds' median) and
    ``rec[f"{prefix}_{layout}_rounds"]``."""
    times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for _ in range(rounds):
        for layout in LAYOUTS:
            times[layout].append(round(seconds_in(layout), 4))
    for layout, seconds in times.items():
        rec[f"{prefix}_{layout}"] = float(np.median(seconds))
        rec[f"{prefix}_{layout}_rounds"] = seconds


def autoencoder_step_seconds(cfg, which: str, device: str, layout: str, repeats: int = 3) -> float:
    """Median seconds of one training step of autoencoder ``which`` (``vae_image``: 1 channel, ``vae_map``: 3)
    at its batch size, the network and the batch in memory ``layout`` (a key of ``LAYOUTS``): the
    reconstruction's MSE plus the KL term, backward and AdamW, as ``train tim3`` trains it."""
    ae_cfg, channels = getattr(cfg, which), 1 if which == "vae_image" else 3
    vae = VAETraining(build_autoencoder(ae_cfg, channels)).to(device, memory_format=LAYOUTS[layout])
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    x = torch.rand(ae_cfg.batch_size, channels, cfg.resolution, cfg.resolution, device=device) * 2 - 1
    x = x.contiguous(memory_format=LAYOUTS[layout])
    gen = torch.Generator(device).manual_seed(0)

    def step() -> None:
        rec, kl = vae(x, gen)
        (F.mse_loss(rec, x) + 1e-6 * kl).backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    return float(np.median([timed(step, device) for _ in range(repeats)]))


def images_per_second(
    pipe,
    batch: int,
    device: str,
    repeats: int = 3,
    budget_s: float = 60.0,
    autocast: str | None = None,
    steps: int = 20,
) -> float:
    """Median images/s of up to ``repeats`` timed calls (fewer once ``budget_s`` is spent; at least
    one), under ``autocast`` (``"bf16"``/``"fp16"``) when given."""
    targets = np.tile([[1000, 1080, 12, 37, 30, 1450, 0.2]], (batch, 1))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(autocast or "")
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
        pipe(targets[:1], steps=2)  # warm-up
        seconds: list[float] = []
        while len(seconds) < repeats and (not seconds or sum(seconds) < budget_s):
            seconds.append(timed(lambda: pipe(targets, steps=steps, batch_size=batch), device))
    return float(np.median([batch / t for t in seconds]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    ap.add_argument(
        "--sample-configs", nargs="*", default=["tiny"], help="configs whose sampling to time (slow on a CPU)"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16], help="sampling batch sizes")
    ap.add_argument("--autocast", choices=["bf16", "fp16"], help="also time sampling under this autocast dtype")
    ap.add_argument(
        "--train-autocast",
        choices=["bf16"],
        help="also time both stages' training steps under this autocast (train.bf16_stages), beside fp32",
    )
    ap.add_argument(
        "--contiguous",
        action="store_true",
        help="also time both stages' training steps, and sampling, with the UNets in the contiguous layout"
        " (train.channels_last false), beside the channels-last one",
    )
    ap.add_argument(
        "--autoencoders",
        action="store_true",
        help="also time the two autoencoders' training steps in both layouts (train.channels_last)",
    )
    ap.add_argument(
        "--budget", type=float, default=60.0, help="seconds of timed calls per measurement (at least one call)"
    )
    ap.add_argument("--train-repeats", type=int, default=5, help="timed training steps per measurement (their median)")
    ap.add_argument("--steps", type=int, help="DDIM steps of each timed sampling call [each config's sampling_steps]")
    ap.add_argument("--out", type=Path, help="JSON file to write [benchmarks/results/tim3_speed_<device>.json]")
    args = ap.parse_args()
    results = {}
    for given in args.configs:
        a_file = given.endswith((".yaml", ".yml"))
        path = Path(given) if a_file else REPO / "configs" / f"tim3-{given}.yaml"
        if not path.is_file():
            raise SystemExit(f"Error: --configs {given}: no config file {path}")
        name = path.stem if a_file else given
        cfg = load_tim3_config(path)
        pipe, modules = pipeline_for(cfg, args.device)
        steps = args.steps or cfg.sampling_steps
        rec = {
            "resolution": cfg.resolution,
            "latent": cfg.image_latent_size,
            "batch_size": cfg.train.batch_size,
            "unet_parameters_m": round(sum(p.numel() for p in modules["unet_stage2"].parameters()) / 1e6, 2),
            "train_step_seconds": round(train_step_seconds(cfg, modules, args.device, args.train_repeats), 4),
            "sampling_steps": steps,
        }
        if args.train_autocast:  # each stage in fp32 and under autocast, five steps each
            for stage in (1, 2):
                for autocast in (None, args.train_autocast):
                    key = f"train_step_seconds_stage{stage}" + (f"_{autocast}" if autocast else "")
                    rec[key] = round(
                        train_step_seconds(cfg, modules, args.device, args.train_repeats, stage, autocast), 4
                    )
        if args.contiguous:  # each stage in both layouts, taken in turn: the machine's drift shows
            for stage in (1, 2):

                def stage_seconds(layout: str, stage: int = stage) -> float:
                    put_unets(modules, layout, (stage,))
                    return train_step_seconds(cfg, modules, args.device, args.train_repeats, stage)

                time_layouts_in_turn(rec, f"train_step_seconds_stage{stage}", stage_seconds)
                put_unets(modules, "channels_last", (stage,))
        if args.autoencoders:  # each autoencoder in both layouts, taken in turn
            for which in ("vae_image", "vae_map"):
                if getattr(cfg, which).kind != "kl":
                    continue  # a space-to-depth codec trains nothing
                time_layouts_in_turn(
                    rec,
                    f"train_step_seconds_{which}",
                    lambda layout, which=which: autoencoder_step_seconds(
                        cfg, which, args.device, layout, args.train_repeats
                    ),
                )
        if given in args.sample_configs or name in args.sample_configs:
            for b in args.batches:
                rec[f"images_per_second_batch{b}"] = round(
                    images_per_second(pipe, b, args.device, budget_s=args.budget, steps=steps), 3
                )
                if args.contiguous:
                    put_unets(modules, "contiguous")
                    rec[f"images_per_second_batch{b}_contiguous"] = round(
                        images_per_second(pipe, b, args.device, budget_s=args.budget, steps=steps), 3
                    )
                    put_unets(modules, "channels_last")
                if args.autocast:
                    rec[f"images_per_second_batch{b}_{args.autocast}"] = round(
                        images_per_second(
                            pipe, b, args.device, budget_s=args.budget, autocast=args.autocast, steps=steps
                        ),
                        3,
                    )
        results[name] = rec
        print(name, rec, flush=True)
    record = {"benchmark": "tim3_speed", "device": args.device, "results": results}
    write_record(record, args.out or REPO / "benchmarks" / "results" / f"tim3_speed_{args.device}.json")


if __name__ == "__main__":
    main()
