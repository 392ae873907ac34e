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
    """The optional experiments that ``ev.opts`` asks for, keyed ``steps``, ``brightness`` and
    ``ablation``; ``real_d`` holds the :func:`describe` outputs of the reference tiles that the
    ablation rows' microstructure is compared with (empty: not compared)."""
    opts, out = ev.opts, {}
    if opts.sweep_steps:
        out["steps"] = step_sweep(ev, report, targets[: opts.n_sweep], ref)
    if opts.brightness:
        out["brightness"] = brightness_sweep(ev, report, targets[: opts.n_brightness])
    if opts.ablation:
        out["ablation"] = ablation_rows(ev, report, targets[: opts.n_sweep], ref, real_d)
    return out


def step_sweep(ev: Evaluator, report: Path, targets: np.ndarray, ref: dict[str, np.ndarray]) -> list[dict]:
    """mAcc, FID and KID of samples for ``targets`` ``(n, K)`` at each of ``opts.sweep_steps``."""
    rows = []
    for s in ev.opts.sweep_steps:
        folder = report / "sweeps" / f"steps_{s:03d}"
        ev.generate_into(folder, targets, f"sweep: {s} steps", steps=s)
        sc = ev.scores(folder, ref, ev.pipe.conditional)
        mAcc = sc["accuracy"]["mAcc"] if sc.get("accuracy") else None
        rows.append({"steps": s, "mAcc": mAcc, "fid": sc["fid"], "kid_mean": sc["kid_mean"]})
    return rows


def brightness_sweep(ev: Evaluator, report: Path, targets: np.ndarray) -> dict[str, Any]:
    """TiM3 appendix E: samples for ``targets`` at each requested brightness in [-1, 1], and the
    brightness measured on them (in the condition's units), with their correlation."""
    if not ev.cfg.brightness:
        return {"skipped": "the model was trained without the brightness condition (train with brightness: true)"}
    levels = np.linspace(-1.0, 1.0, BRIGHTNESS_LEVELS)
    measured = []
    for j, b in enumerate(levels):
        folder = report / "sweeps" / f"brightness_{j:02d}"
        ev.generate_into(folder, targets, f"brightness {b:+.1f}", brightness=float(b), measure=False)
        imgs = load_arrays(folder, ["images"])["images"] / 255.0
        measured.append(float(ev.pipe.brightness_of(imgs).mean()))
    m = np.asarray(measured)
    return {
        "levels": levels.round(3).tolist(),
        "measured": m.round(4).tolist(),
        "pearson_r": float(np.corrcoef(levels, m)[0, 1]),
        "mean_abs_difference": float(np.abs(levels - m).mean()),
    }


def ablation_rows(
    ev: Evaluator, report: Path, targets: np.ndarray, ref: dict[str, np.ndarray], real_d: list[dict]
) -> list[dict]:
    """One :class:`ScoreRow` (as a dict) per model of ``opts.ablation``, each scored on the same
    ``targets`` and reference as the evaluated model."""
    rows = []
    for name, spec in ev.opts.ablation.items():
        pipe = load_pipeline(resolve_model(spec))
        if pipe.condition_properties.names != ev.pipe.condition_properties.names:
            raise MicroforgeError(
                f"ablation model {spec} takes {pipe.condition_properties.names}, not "
                f"{ev.pipe.condition_properties.names}"
            )
        folder = report / "ablation" / name
        ev.generate_into(folder, targets, f"ablation: {name}", pipe=pipe)
        sc = ev.scores(folder, ref, pipe.conditional)
        if real_d:
            imgs = load_arrays(folder, ["images"], limit=len(real_d))["images"]
            sc.update(discrepancy_summary(compare_sets(real_d, ev.describe_segmented(imgs), ("real", "generated"))))
        kind = pipe.cfg.encoder.kind if isinstance(pipe, TiM3Pipeline) else pipe.cfg.kind
        rows.append(ScoreRow.from_scores(name, sc, model=spec, encoder=kind, two_stage=pipe.cfg.two_stage).to_dict())
    return rows
