"""The optional experiments of ``microforge evaluate``: the sampling-step sweep, the brightness
sweep (TiM3 appendix E) and the ablation rows (other models scored on the same targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..characterize.descriptors import compare_sets
from ..errors import MicroforgeError
from ..pipelines.registry import load_pipeline, resolve_model
from ..pipelines.tim3 import TiM3Pipeline
from .batches import load_arrays
from .evaluator import Evaluator
from .scores import ScoreRow, discrepancy_summary

BRIGHTNESS_LEVELS = 21  # evenly spaced in [-1, 1] (paper, appendix E)


def run_sweeps(
    ev: Evaluator, report: Path, targets: np.ndarray, ref: dict[str, np.ndarray], real_d: list[dict]
) -> dict[str, Any]:
    """The optional experiments; ``real_d`` holds the :func:`describe` outputs of the reference
    tiles that the ablation rows' microstructure is compared with (empty: not compared)."""
    opts, out = ev.opts, {}
    sub = targets[: opts.n_sweep]
    if opts.sweep_steps:
        rows = []
        for s in opts.sweep_steps:
            folder = report / "sweeps" / f"steps_{s:03d}"
            ev.generate_into(folder, sub, f"sweep: {s} steps", steps=s)
            sc = ev.scores(folder, ref, ev.pipe.conditional)
            rows.append(
                {
                    "steps": s,
                    "mAcc": sc["accuracy"]["mAcc"] if sc.get("accuracy") else None,
                    "fid": sc["fid"],
                    "kid_mean": sc["kid_mean"],
                }
            )
        out["steps"] = rows
    if opts.brightness:
        if not ev.cfg.brightness:
            out["brightness"] = {
                "skipped": "the model was trained without the brightness condition (train with brightness: true)"
            }
        else:
            levels = np.linspace(-1.0, 1.0, BRIGHTNESS_LEVELS)
            measured = []
            for j, b in enumerate(levels):
                folder = report / "sweeps" / f"brightness_{j:02d}"
                ev.generate_into(
                    folder, targets[: opts.n_brightness], f"brightness {b:+.1f}", brightness=float(b), measure=False
                )
                imgs = load_arrays(folder, ["images"])["images"] / 255.0
                measured.append(float(ev.pipe.brightness_of(imgs).mean()))  # in the condition's units
            measured_a = np.asarray(measured)
            out["brightness"] = {
                "levels": levels.round(3).tolist(),
                "measured": measured_a.round(4).tolist(),
                "pearson_r": float(np.corrcoef(levels, measured_a)[0, 1]),
                "mean_abs_difference": float(np.abs(levels - measured_a).mean()),
            }
    if opts.ablation:
        rows = []
        for name, spec in opts.ablation.items():
            pipe = load_pipeline(resolve_model(spec))
            if pipe.condition_properties.names != ev.pipe.condition_properties.names:
                raise MicroforgeError(
                    f"ablation model {spec} takes {pipe.condition_properties.names}, not "
                    f"{ev.pipe.condition_properties.names}"
                )
            folder = report / "ablation" / name
            ev.generate_into(folder, sub, f"ablation: {name}", pipe=pipe)
            sc = ev.scores(folder, ref, pipe.conditional)
            if real_d:
                imgs = load_arrays(folder, ["images"], limit=len(real_d))["images"]
                gen_d = ev.describe_segmented(imgs)
                sc.update(discrepancy_summary(compare_sets(real_d, gen_d, ("real", "generated"))))
            kind = pipe.cfg.encoder.kind if isinstance(pipe, TiM3Pipeline) else pipe.cfg.kind
            rows.append(
                ScoreRow.from_scores(name, sc, model=spec, encoder=kind, two_stage=pipe.cfg.two_stage).to_dict()
            )
        out["ablation"] = rows
    return out
