"""``microforge evaluate``: every number of docs/evaluation.md for one TiM3 model, resumably.

Work is split into stages, each written batch by batch under the report folder, so a killed
run continues where it stopped (``--resume`` is implied for a report folder without
``metrics.json``) and memory holds one batch of images at a time:

1. ``targets.npy``: property targets drawn inside the training hull (Algorithm 1);
2. ``reference/``: real tiles of the dataset (seeded subset) and their features;
3. ``main/``: generated samples and, per batch, the regressor's predictions, Inception and
   domain features, the nearest training image, the oracle's properties;
4. ``sweeps/`` and ``ablation/``: the optional experiments;
5. ``metrics.json``, ``figures/`` and ``index.html`` (:mod:`.report`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..accuracy import accuracy_table
from ..characterize.descriptors import compare_sets
from ..data.digest import dataset_digest
from ..data.outdir import prepare_output_dir, record_outputs
from ..errors import MicroforgeError
from ..io import write_json_atomic
from ..pipelines.registry import resolve_model
from .batches import load_arrays
from .evaluator import Evaluator, describe_set
from .grid import sample_grid
from .options import EvaluationOptions
from .scores import ScoreRow, discrepancy_summary
from .sweeps import run_sweeps


def evaluate(
    model: str,
    data: str | Path,
    report: str | Path,
    opts: EvaluationOptions = EvaluationOptions(),
    regressor: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` against dataset ``data``; write ``report/metrics.json`` and
    ``report/index.html`` and return the metrics. An unfinished report folder is resumed."""
    from .report import draw_figures, write_report

    opts.check()
    report = Path(report)
    t0 = time.perf_counter()
    ev = Evaluator(model, data, report, opts, regressor, progress)  # loads and checks everything before writing
    prepare_output_dir(report, overwrite, done_marker="metrics.json", command="evaluate")
    options_file = report / "options.json"
    digest = dataset_digest(ev.data)  # the dataset's content, so that a resume cannot mix two datasets
    record = {"model": model, "data": str(data), "data_digest": digest, "regressor": regressor, **asdict(opts)}
    record["sweep_steps"] = list(opts.sweep_steps)
    if options_file.exists() and json.loads(options_file.read_text()) != record:
        raise MicroforgeError(
            f"{report}: holds an unfinished evaluation with other options; pass --overwrite to restart it"
        )
    options_file.write_text(json.dumps(record, indent=1) + "\n")
    ev.reference_into(report / "reference")
    ref = load_arrays(
        report / "reference",
        ["targets", "images", "maps"]
        + (["inception"] if opts.fid else [])
        + (["pred", "domain"] if ev.regressor else [])
        + (["fingerprint"] if ev.fingerprint is not None else [])
        + (["oracle_segmented", "oracle_map"] if ev.is_benchmark and ev.pixel_size_um else []),
    )
    targets = ev.targets()
    ev.generate_into(report / "main", targets, "generate + measure")
    metrics: dict[str, Any] = {
        "model": model,
        "data": str(data),
        "data_digest": digest,
        "options": record,
        "properties": ev.pipe.condition_properties.to_json()["properties"],
        "pixel_size_um": ev.pixel_size_um,
    }
    metrics["main"] = ev.scores(report / "main", ref, ev.pipe.conditional)
    _accuracy_sections(ev, metrics, ref, model, regressor)
    if ev.is_benchmark and ev.pixel_size_um and ev.pipe.conditional:
        metrics["oracle"] = _oracle_section(ev, metrics, ref, report)
    real_d = _microstructure_sections(ev, metrics, ref, report)
    # data copying, calibrated by how close held-out real tiles come to the training set
    held_out = ev.split_images("test")
    if len(held_out):
        mse, _ = ev.nearest(held_out / 255.0)
        metrics["main"]["copy_mse_median_heldout_real"] = float(np.median(mse))
    metrics["grid"] = sample_grid(ev, report)
    metrics["sweeps"] = run_sweeps(ev, report, targets, ref, real_d)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["table"] = [ScoreRow.from_scores("this model", metrics["main"]).to_dict()] + list(
        metrics["sweeps"].get("ablation", [])
    )
    draw_figures(report, metrics, ev.train_images, ev.cfg.two_stage)
    write_report(report, metrics)
    write_json_atomic(report / "metrics.json", metrics, default=_jsonable)
    record_outputs(report)
    return metrics


def _accuracy_sections(
    ev: Evaluator, metrics: dict[str, Any], ref: dict[str, np.ndarray], model: str, regressor: str | None
) -> None:
    """The regressor's readings (on the reference, its held-out ceiling, its own metrics) into
    ``metrics``, or the notes that say why property accuracy is not reported."""
    if ev.regressor is not None:
        metrics["regressor_on_reference"] = accuracy_table(
            ref["pred"], ref["targets"], ev.names
        )  # training specimens included
        metrics["regressor_on_held_out"] = ev.regressor_ceiling()
        metrics["regressor_own_metrics"] = _regressor_metrics(model, regressor)
    else:
        metrics["main"]["accuracy"] = None
        metrics["notes"] = [
            "no property regressor: pass --regressor (microforge train regressor) for Acc_gamma and the domain "
            "Fréchet distance"
        ]
    if not ev.pipe.conditional:
        metrics["main"]["accuracy"] = None
        metrics.setdefault("notes", []).append(
            "unconditional model: its samples do not follow targets, so property accuracy is not "
            "reported; judge it by the distribution and microstructure statistics"
        )


def _oracle_section(ev: Evaluator, metrics: dict[str, Any], ref: dict[str, np.ndarray], report: Path) -> dict:
    """The benchmark's own relations read from segmented samples, beside their ceilings (the
    segmented real tiles, the true maps) and, for two-stage models, the stage-1 maps."""
    oracle = {
        "segmented_generated": metrics["main"].pop("oracle_accuracy"),
        "ceiling_segmented_real": accuracy_table(ref["oracle_segmented"], ref["targets"], ev.names),
        "ceiling_true_maps": accuracy_table(ref["oracle_map"], ref["targets"], ev.names),
    }
    if ev.cfg.two_stage:
        gen = load_arrays(report / "main", ["targets", "oracle_map"])
        oracle["stage1_maps"] = accuracy_table(gen["oracle_map"], gen["targets"], ev.names)
    return oracle


def _microstructure_sections(
    ev: Evaluator, metrics: dict[str, Any], ref: dict[str, np.ndarray], report: Path
) -> list[dict]:
    """The microstructure statistics of real and generated tiles through the same segmenter
    (and of the true against the stage-1 maps) into ``metrics``; returns the real tiles'
    :func:`describe` outputs, which the ablation rows are compared with (empty: none)."""
    opts = ev.opts
    k = min(opts.n_describe, opts.n, len(ref["images"]))
    if k < 1:
        return []
    gen_small = load_arrays(report / "main", ["images"] + (["maps"] if ev.cfg.two_stage else []), limit=k)
    real_d = ev.describe_segmented(ref["images"][:k])
    gen_d = ev.describe_segmented(gen_small["images"])
    metrics["microstructure"] = compare_sets(real_d, gen_d, ("real", "generated"))
    metrics["main"].update(discrepancy_summary(metrics["microstructure"]))
    metrics["persistence_mean"] = {
        name: np.mean([d["persistence"]["image"] for d in ds], axis=0).round(6).tolist()
        for name, ds in (("real", real_d), ("generated", gen_d))
    }
    if ev.cfg.two_stage and ref["maps"].max() <= 2:  # the dataset has phase maps
        metrics["microstructure_maps"] = compare_sets(
            describe_set(ref["images"][:k], ref["maps"][:k], ev.pixel_size_um),
            describe_set(gen_small["images"], gen_small["maps"], ev.pixel_size_um),
            ("true maps", "stage-1 maps"),
        )
    return real_d


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value)}")


def _regressor_metrics(model: str, spec: str | None) -> dict | None:
    """The regressor's own held-out metrics (its metrics.json), when it has them."""
    folder = resolve_model(spec) if spec else resolve_model(model) / "regressor"
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None
