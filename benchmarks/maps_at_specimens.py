"""Does stage 1 draw the specimens it was trained on? Its maps at each specimen's own properties,
against the specimen's true maps, per morphology (or another label).

    python benchmarks/maps_at_specimens.py DATA MODEL [--per-specimen 4] [--label morphology] [--guidance S]
        [--out JSON]

For every specimen of the model's modality in DATA (all splits), stage 1 draws ``--per-specimen``
maps at the specimen's properties (the model's sampler and steps, its guidance unless ``--guidance``
says otherwise; seeded). Per label: the
mean primary-alpha fraction of the drawn maps and of the specimens' true maps (DATA/masks, every
tile), and the share of drawn and true maps with more than 10 % primary alpha. Where these agree
and the evaluation's hull targets do not (bias_by_label.py), the model draws the specimens and
misses what lies between them. Writes benchmarks/results/maps_at_specimens.json unless --out says
otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _record import write_record
from bias_by_label import GLOBULAR, label_groups

from microforge.data.images import read_grey
from microforge.data.phase_map import PRIMARY_ALPHA, phase_fractions
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline


def primary_alpha_fractions(maps: torch.Tensor) -> np.ndarray:
    """Primary-alpha area fraction ``(B,)`` of class-index maps ``(B, H, W)`` or of a soft-map
    model's class shares ``(B, 3, H, W)``."""
    if maps.dim() == 4:
        return maps[:, PRIMARY_ALPHA].double().mean((1, 2)).numpy()
    return (maps == PRIMARY_ALPHA).double().mean((1, 2)).numpy()


def summarise(drawn: np.ndarray, true: list[np.ndarray], labels: np.ndarray) -> dict:
    """Per label (and ``all``): the mean and the globular share (over ``GLOBULAR``) of the drawn
    fractions ``drawn`` ``(S, per_specimen)`` and of the true ones (``true``: one array of tile
    fractions per specimen, empty for a specimen without masks; a group without any gets None),
    from specimens labelled ``labels`` ``(S,)``."""
    out = {}
    for g, k in label_groups(labels).items():
        t = np.concatenate([true[i] for i in np.flatnonzero(k)])
        out[g] = {
            "specimens": int(k.sum()),
            "drawn_primary_alpha": round(float(drawn[k].mean()), 4),
            "true_primary_alpha": round(float(t.mean()), 4) if len(t) else None,
            "drawn_globular_share": round(float((drawn[k] > GLOBULAR).mean()), 4),
            "true_globular_share": round(float((t > GLOBULAR).mean()), 4) if len(t) else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("model")
    ap.add_argument("--per-specimen", type=int, default=4)
    ap.add_argument("--label", default="morphology")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the model's)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/maps_at_specimens.json"))
    args = ap.parse_args()
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    if not pipe.cfg.two_stage:
        raise SystemExit(f"Error: {args.model}: a one-stage model draws no maps")
    props = pipe.condition_properties
    manifest = pd.read_csv(args.data / "manifest.csv")
    tiles = manifest[manifest["modality"] == pipe.cfg.modality]
    if args.label not in tiles.columns or tiles.empty:
        where = args.data / "manifest.csv"
        raise SystemExit(f"Error: {where}: no {pipe.cfg.modality} tiles with a {args.label} column")
    by_specimen = tiles.groupby("specimen")
    specimens = by_specimen[[*props.names, args.label]].first()
    true = [  # tiles without a mask (an empty path) have no true fraction
        np.array([phase_fractions(read_grey(args.data / m))[PRIMARY_ALPHA] for m in g["mask"].fillna("") if m])
        for _, g in by_specimen
    ]
    y = torch.from_numpy(props.normalise(specimens[props.names].to_numpy())).float()
    gen = torch.Generator().manual_seed(args.seed)
    cfg = pipe.cfg
    guidance = cfg.guidance_scale if args.guidance is None else args.guidance
    drawn = np.concatenate(
        [
            primary_alpha_fractions(
                pipe.draw_maps(
                    y[i : i + 16].repeat_interleave(args.per_specimen, 0),
                    cfg.sampling_steps,
                    guidance,
                    cfg.sampler,
                    gen,
                )
            )
            for i in range(0, len(y), 16)
        ]
    ).reshape(len(y), args.per_specimen)
    record = {
        "command": f"python benchmarks/maps_at_specimens.py {args.data} {args.model} --per-specimen "
        f"{args.per_specimen} --label {args.label}"
        + ("" if args.guidance is None else f" --guidance {args.guidance:g}"),
        "sampling": {"steps": cfg.sampling_steps, "guidance": guidance, "sampler": cfg.sampler},
        "globular_threshold": GLOBULAR,
        "groups": summarise(drawn, true, specimens[args.label].to_numpy()),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
