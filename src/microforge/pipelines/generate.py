"""``microforge generate``: sample micrographs for property targets and write them out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.contact_sheet import image_grid
from ..data.images import write_png
from ..data.outdir import prepare_output_dir, record_outputs
from ..data.phase_map import phase_fractions, to_pseudo_rgb
from ..io import to_uint8, write_json_atomic
from ..errors import MicroforgeError
from ..hull import in_hull, nearest_in_hull
from ..properties import category_name
from .registry import load_pipeline, resolve_model
from .tim3 import TiM3Pipeline

DEFAULT_MODEL = "bundled:ti-sem-tiny"
MAX_SAMPLES = 100_000


def hull_check(pipe: TiM3Pipeline, targets: np.ndarray) -> np.ndarray:
    """Whether each raw target ``(N, K)`` lies in the hull of the model's training properties."""
    points = pipe.properties.info.get("hull_points")
    if not points:
        return np.ones(len(targets), dtype=bool)
    return in_hull(np.asarray(points), pipe.condition_properties.normalise(targets))


def project_target(pipe: TiM3Pipeline, target: np.ndarray, locked: Sequence[str] = ()) -> tuple[np.ndarray, dict]:
    """The nearest target inside the training hull to a raw ``target`` ``(K,)``, in normalised
    units, moving only the properties not named in ``locked``.

    Returns the projected raw target ``(K,)`` and a record for ``run.json``: the requested and
    projected values, each property's change (raw units) and the locked names. Raises
    :class:`MicroforgeError` when the model has no hull, a name is unknown, or no in-hull target
    keeps the locked values. Categorical properties are always kept."""
    props = pipe.condition_properties
    points = pipe.properties.info.get("hull_points")
    if not points:
        raise MicroforgeError("the model's properties.json has no hull_points, so there is no hull to project onto")
    unknown = [name for name in locked if name not in props.names]
    if unknown:
        raise MicroforgeError(
            f"--lock {unknown[0]}: the model has no property of that name; it has {', '.join(props.names)}"
        )
    locked = list(
        dict.fromkeys([*locked, *(s.name for s in props.specs if s.categories is not None)])
    )  # a category cannot move
    idx = [props.names.index(name) for name in locked]
    proj = nearest_in_hull(np.asarray(points), props.normalise(np.asarray(target, dtype=np.float64)[None])[0], idx)
    if proj.target is None:
        raise MicroforgeError(
            f"no target inside the training hull keeps {', '.join(locked)} at the requested value(s); unlock one"
        )
    projected = props.denormalise(proj.target[None])[0]
    projected[idx] = np.asarray(target, dtype=np.float64)[idx]
    record = {
        "requested": dict(zip(props.names, np.round(np.asarray(target, dtype=np.float64), 6).tolist())),
        "projected": dict(zip(props.names, np.round(projected, 6).tolist())),
        "moved": {n: round(float(b - a), 6) for n, a, b in zip(props.names, target, projected) if abs(b - a) > 1e-9},
        "locked": list(locked),
        "distance_normalised": round(proj.distance, 6),
    }
    return projected, record


def pixel_size_at(info: dict, resolution: int) -> float | None:
    """Micrometres per pixel of a model's ``resolution`` px images, from a dataset's
    ``properties.json`` info (its pixel size and tile size; tiles are resized to the model's
    size). ``None`` when the dataset does not know its pixel size."""
    if not info.get("pixel_size_um"):
        return None
    tile = int(info.get("config", {}).get("tile_size", resolution))
    return float(info["pixel_size_um"]) * tile / resolution


def guidance_record(pipe: TiM3Pipeline, guidance_scale: float | None) -> dict[str, Any]:
    """The guidance a ``generate`` call sampled with, for its run.json: ``guidance_scale``;
    ``stage2_guidance_scale`` where a TiM3 model's micrograph stage used another scale; and a TiM3
    model's ``guidance_interval`` / ``stage2_guidance_interval`` (sigma low, high) and
    ``ddim_eta`` / ``stage2_ddim_eta`` where set."""
    if not isinstance(pipe, TiM3Pipeline):
        return {"guidance_scale": pipe.cfg.guidance_scale if guidance_scale is None else guidance_scale}
    stage1, stage2 = pipe.stage_guidance(guidance_scale)
    record: dict[str, Any] = {"guidance_scale": stage1} | (
        {"stage2_guidance_scale": stage2} if stage2 != stage1 else {}
    )
    interval1, interval2 = pipe.cfg.stage_guidance_interval(1), pipe.cfg.stage_guidance_interval(2)
    if interval1 is not None:
        record["guidance_interval"] = list(interval1)
    if interval2 != interval1:
        record["stage2_guidance_interval"] = list(interval2)
    eta1, eta2 = pipe.cfg.stage_eta(1), pipe.cfg.stage_eta(2)
    if eta1:
        record["ddim_eta"] = eta1
    if eta2 != eta1:
        record["stage2_ddim_eta"] = eta2
    return record


def generate(
    model: str,
    targets: np.ndarray,
    n: int,
    out: str | Path,
    *,
    steps: int | None = None,
    guidance_scale: float | None = None,
    sampler: str | None = None,
    seed: int = 0,
    batch_size: int = 16,
    brightness: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    pipe: TiM3Pipeline | None = None,
    record: dict | None = None,
) -> dict:
    """Generate ``n`` samples per target row and write, under ``out``: ``images/`` (micrographs),
    ``maps/`` (class indices and colour maps), ``contact_sheet.png`` and ``run.json``.

    Batches are written as they come, so memory holds one batch at a time. Returns the run record
    (also in ``run.json``), which says for each target whether it lies in the training hull;
    ``record`` adds entries to it (``generate --nearest-feasible`` records its projection).
    """
    if n < 1 or n > MAX_SAMPLES:
        raise MicroforgeError(f"-n must be between 1 and {MAX_SAMPLES}, got {n}")
    pipe = pipe or load_pipeline(resolve_model(model))
    targets = pipe.check_targets(targets)
    pipe.check_options(steps, guidance_scale, seed, batch_size, brightness)
    inside = hull_check(pipe, targets)
    out = Path(out)
    prepare_output_dir(
        out,
        overwrite,
        done_marker="run.json",
        command="generate",
        outputs=("images", "maps", "contact_sheet.png", "run.json"),
    )
    rows = np.repeat(targets, n, axis=0)
    start = time.perf_counter()
    sheet, titles, records, k = [], [], [], 0
    for batch in pipe.iter_batches(rows, steps, guidance_scale, sampler, batch_size, seed, brightness, progress):
        for j in range(len(batch.images)):
            name = f"t{k // n:03d}_s{k % n:04d}"
            write_png(out / "images" / f"{name}.png", to_uint8(batch.images[j]))
            rec = {"image": f"images/{name}.png", "target": k // n}
            if batch.maps is not None:
                write_png(out / "maps" / f"{name}.png", batch.maps[j])
                write_png(out / "maps" / f"{name}_rgb.png", to_pseudo_rgb(batch.maps[j]))
                rec["map"] = f"maps/{name}.png"
                rec["phase_fractions"] = [round(float(v), 4) for v in phase_fractions(batch.maps[j])]
                if len(sheet) < 32:
                    sheet.append(to_pseudo_rgb(batch.maps[j]))
                    titles.append(f"{name} map")
            if len(sheet) < 32:
                sheet.append(to_uint8(batch.images[j]))
                titles.append(name)
            records.append(rec)
            k += 1
    seconds = time.perf_counter() - start
    image_grid(sheet, titles, 8 if batch.maps is not None else 4, out / "contact_sheet.png")
    run = {
        "model": model,
        "targets": [{s.name: category_name(s, v) for s, v in zip(pipe.condition_properties.specs, t)} for t in targets],
        "in_training_hull": inside.tolist(),
        "samples_per_target": n,
        "seed": seed,
        "steps": steps or pipe.cfg.sampling_steps,
        "sampler": sampler or pipe.cfg.sampler,
        **guidance_record(pipe, guidance_scale),
        "seconds": round(seconds, 2),
        "samples": records,
        **(record or {}),
    }
    write_json_atomic(out / "run.json", run)
    record_outputs(out)
    return run
