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
import torch

from ..characterize.descriptors import compare_sets, describe
from ..characterize.segmentation import segment_classical
from ..data.dataset import MicrographDataset, load_split
from ..data.manifest import DatasetTable, read_dataset
from ..data.outdir import prepare_output_dir, record_outputs
from ..data.synth.relations import PROPERTY_NAMES
from ..errors import MicroforgeError
from ..io import resize_batch, to_uint8, write_json_atomic
from ..models.property_regressor import PropertyRegressor
from ..pipelines.generate import pixel_size_at
from ..pipelines.registry import load_pipeline, resolve_model
from ..pipelines.tim3 import TiM3Pipeline
from ..seeding import seed_from
from ..accuracy import accuracy_table
from .batches import load_arrays, run_batches
from .copying import nearest_training
from .distribution import frechet_distance, kernel_distance, precision_recall
from ..models.inception import InceptionFeatures, extract
from ..hull import sample_in_hull
from .oracle import oracle_properties
from .options import EvaluationOptions
from .scores import ScoreRow, discrepancy_summary

BENCHMARK_SOURCE = "microforge synthetic titanium benchmark"
BRIGHTNESS_LEVELS = 21  # evenly spaced in [-1, 1] (paper, appendix E)
GRID_VECTORS = 6  # property vectors in the sample grids (paper's Figures 4 and 5)
GRID_SAMPLES = 4  # generated samples per grid row


class Evaluator:
    """Holds the model, the judges and the reference data of one evaluation."""

    def __init__(
        self, model: str, data: str | Path, report: Path, opts: EvaluationOptions, regressor: str | None, progress: bool
    ) -> None:
        self.model_spec, self.report, self.opts, self.progress = model, report, opts, progress
        self.pipe = load_pipeline(resolve_model(model))
        if torch.cuda.is_available():
            self.pipe.to("cuda")
        self.cfg = self.pipe.cfg
        self.data: DatasetTable = read_dataset(data)
        missing = [n for n in self.pipe.condition_properties.names if n not in self.data.table.columns]
        if missing:
            raise MicroforgeError(f"{data}: lacks the model's properties {', '.join(missing)}")
        self.regressor = self._load_regressor(regressor)
        self.fingerprint = None
        if opts.fingerprint:
            from ..fingerprint import load_fingerprint_model

            self.fingerprint = load_fingerprint_model(opts.fingerprint)
        self.inception = InceptionFeatures() if opts.fid else None
        if self.inception is not None and torch.cuda.is_available():
            self.inception.to("cuda")
        self.names = self.pipe.condition_properties.names
        info = self.data.properties.info
        self.is_benchmark = info.get("source") == BENCHMARK_SOURCE and list(self.names) == list(PROPERTY_NAMES)
        self.pixel_size_um = pixel_size_at(info, self.cfg.resolution)
        self.lath_halfwidth_px = max(1, round(1.5 / self.pixel_size_um)) if self.pixel_size_um else 3
        self._tiles: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        self.train_images = self._split_images("train")

    # ------------------------------------------------------------------ inputs

    def _load_regressor(self, spec: str | None) -> PropertyRegressor | None:
        if spec is None:
            folder = resolve_model(self.model_spec) / "regressor"
            if not folder.is_dir():
                return None
            spec = str(folder)
        reg = PropertyRegressor.from_pretrained(resolve_model(spec))
        if reg.properties.names != list(self.pipe.condition_properties.names):
            raise MicroforgeError(
                f"{spec}: the regressor predicts {reg.properties.names}, the model takes "
                f"{self.pipe.condition_properties.names}"
            )
        if torch.cuda.is_available():
            reg.net.to("cuda")
        return reg

    def _dataset(self, split: str | None) -> MicrographDataset:
        return MicrographDataset(
            self.data,
            split=split,
            fractions=self.cfg.split_fractions,
            seed=self.cfg.train.seed,
            modality=self.cfg.modality,
            augment=False,
            properties=self.pipe.condition_properties,
        )

    def _split_tiles(self, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Tiles of a split at the model's resolution, uint8 ``(N, R, R)``, their raw properties
        ``(N, K)`` and the split's specimens; read once per split."""
        if split not in self._tiles:
            c = self.cfg
            tiles = load_split(
                self.data,
                split,
                c.split_fractions,
                c.train.seed,
                c.modality,
                c.resolution,
                properties=self.pipe.condition_properties,
                allow_empty=True,
            )
            self._tiles[split] = (to_uint8(tiles.images[:, 0].numpy()), tiles.raw, tiles.dataset.specimens)
        return self._tiles[split]

    def _split_images(self, split: str) -> np.ndarray:
        """Tiles of a split at the model's resolution, uint8 ``(N, R, R)``: the data-copying set."""
        return self._split_tiles(split)[0]

    def regressor_ceiling(self) -> dict[str, Any] | None:
        """The regressor's accuracy on the held-out (test) specimens' real tiles, which neither it
        nor the generator trained on: the ceiling that generated samples are read against."""
        images, targets, specimens = self._split_tiles("test")
        if self.regressor is None or not len(images):
            return None
        return {"specimens": specimens, **accuracy_table(self.regressor.predict(images / 255.0), targets, self.names)}

    def targets(self) -> np.ndarray:
        """``opts.n`` raw targets drawn uniformly inside the training hull (Algorithm 1), cached."""
        path = self.report / "targets.npy"
        if path.exists():
            return np.load(path, allow_pickle=False)
        hull = self.pipe.properties.info.get("hull_points")
        if not hull:
            raise MicroforgeError(f"{self.model_spec}: properties.json has no hull_points; retrain or add them")
        rng = np.random.default_rng(seed_from(self.opts.seed, 1))
        raw = self.pipe.condition_properties.denormalise(sample_in_hull(np.asarray(hull), self.opts.n, rng))
        np.save(path, raw)
        return raw

    # ------------------------------------------------------------------ per-batch measurements

    def segment(self, images: np.ndarray) -> np.ndarray:
        return np.stack([segment_classical(g, self.cfg.modality, self.lath_halfwidth_px) for g in images])

    def describe_segmented(self, images: np.ndarray) -> list[dict]:
        """:func:`describe` of uint8 images ``(B, R, R)`` through the classical segmenter, the one
        path by which real and generated sets are compared."""
        return _describe_set(images, self.segment(images / 255.0), self.pixel_size_um)

    def nearest(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Minimum pixel MSE of each image ``(B, R, R)`` in [0, 1] to the training tiles, and which tile."""
        return nearest_training(
            images, (self.train_images[i : i + 512] / 255.0 for i in range(0, len(self.train_images), 512))
        )

    def measure(self, images: np.ndarray, maps: np.ndarray | None, copying: bool = True) -> dict[str, np.ndarray]:
        """Everything measured on a batch of images ``(B, R, R)`` in [0, 1] (``copying``: also the
        nearest training tile, which the real reference tiles skip)."""
        out: dict[str, np.ndarray] = {}
        if self.inception is not None:
            out["inception"] = extract(self.inception, images).astype(np.float32)
        if self.regressor is not None:
            out["pred"] = self.regressor.predict(images)
            out["domain"] = self.regressor.features(images).astype(np.float32)
        if self.fingerprint is not None:
            out["fingerprint"] = _fingerprints(self.fingerprint, images)
        if copying:
            out["copy_mse"], out["copy_index"] = self.nearest(images)
        if self.is_benchmark and self.pixel_size_um:
            out["oracle_segmented"] = oracle_properties(self.segment(images), self.pixel_size_um)
            if maps is not None:
                out["oracle_map"] = oracle_properties(maps, self.pixel_size_um)
        return out

    def generate_into(
        self,
        folder: Path,
        targets: np.ndarray,
        desc: str,
        steps: int | None = None,
        brightness: float | None = None,
        pipe: TiM3Pipeline | None = None,
        measure: bool = True,
    ) -> None:
        """Generate one sample per target row into ``folder`` batch by batch (resumable)."""
        pipe = pipe or self.pipe
        bs = self.opts.batch_size
        n_batches = -(-len(targets) // bs)

        def make(i: int) -> dict[str, np.ndarray]:
            rows = targets[i * bs : (i + 1) * bs]
            g = pipe(
                rows,
                steps=steps or self.opts.steps,
                guidance_scale=self.opts.guidance_scale,
                batch_size=bs,
                seed=seed_from(self.opts.seed, 2, i),
                brightness=brightness,
            )
            arrays = {"images": to_uint8(g.images), "targets": rows}
            if g.maps is not None:
                arrays["maps"] = g.maps
            if measure:
                arrays.update(self.measure(g.images, g.maps))
            return arrays

        run_batches(folder, n_batches, make, desc, self.progress)

    def reference_into(self, folder: Path) -> None:
        """A seeded subset of the dataset's tiles (the model's modality) with their features."""
        ds = self._dataset(None)
        rng = np.random.default_rng(seed_from(self.opts.seed, 3))
        pick = np.sort(rng.choice(len(ds), size=min(self.opts.n_reference, len(ds)), replace=False))
        bs = max(self.opts.batch_size, 32)

        def make(i: int) -> dict[str, np.ndarray]:
            items = [ds[int(j)] for j in pick[i * bs : (i + 1) * bs]]
            images = resize_batch(torch.stack([it["image"] for it in items]), self.cfg.resolution)[:, 0].numpy()
            maps = (
                torch.nn.functional.interpolate(
                    torch.stack([it["mask"] for it in items])[:, None].float(), size=images.shape[-2:], mode="nearest"
                )[:, 0]
                .numpy()
                .astype(np.uint8)
            )
            arrays = {
                "images": to_uint8(images),
                "maps": maps,
                "targets": np.stack([it["props_raw"].numpy() for it in items]).astype(np.float64),
                "specimen": np.array([it["specimen"] for it in items]),
            }
            return {**arrays, **self.measure(images, maps, copying=False)}

        run_batches(folder, -(-len(pick) // bs), make, "reference tiles", self.progress)

    # ------------------------------------------------------------------ scores

    def scores(self, folder: Path, ref: dict[str, np.ndarray], conditional: bool = True) -> dict[str, Any]:
        """Accuracy (for a ``conditional`` model) and distribution metrics of one generated folder
        against the reference."""
        keys = (
            ["targets", "copy_mse"]
            + (["inception"] if self.inception is not None else [])
            + (["pred", "domain"] if self.regressor is not None else [])
            + (["fingerprint"] if self.fingerprint is not None else [])
        )
        oracle = conditional and self.is_benchmark and bool(self.pixel_size_um)
        gen = load_arrays(folder, keys + (["oracle_segmented"] if oracle else []))
        out: dict[str, Any] = {"n": int(len(gen["targets"]))}
        if self.regressor is not None and conditional:
            out["accuracy"] = accuracy_table(gen["pred"], gen["targets"], self.names)
        if oracle:  # the benchmark's own relations applied to the segmented samples (independent of the regressor)
            out["oracle_accuracy"] = accuracy_table(gen["oracle_segmented"], gen["targets"], self.names)
            out["oracle_mAcc"] = out["oracle_accuracy"]["mAcc"]
        if self.regressor is not None:
            out["domain_frechet"] = frechet_distance(ref["domain"], gen["domain"])
        if self.fingerprint is not None:
            out["fingerprint_frechet"] = frechet_distance(ref["fingerprint"], gen["fingerprint"])
        out.update(fid=None, kid_mean=None, kid_std=None, precision=None, recall=None)
        if self.inception is not None:
            out["fid"] = frechet_distance(ref["inception"], gen["inception"])
            out["kid_mean"], out["kid_std"] = kernel_distance(ref["inception"], gen["inception"], seed=self.opts.seed)
            out["precision"], out["recall"] = precision_recall(ref["inception"], gen["inception"], k=3)
        out["copy_mse_min"] = float(gen["copy_mse"].min())
        out["copy_mse_median"] = float(np.median(gen["copy_mse"]))
        return out


def _fingerprints(model, images: np.ndarray) -> np.ndarray:
    from ..fingerprint import fingerprints

    return fingerprints(model, images).astype(np.float32)


def _describe_set(images: np.ndarray, maps: np.ndarray, pixel_size_um: float | None) -> list[dict]:
    return [describe(g / 255.0, m, pixel_size_um) for g, m in zip(images, maps)]


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
    record = {"model": model, "data": str(data), "regressor": regressor, **asdict(opts)}
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
        "options": record,
        "properties": ev.pipe.condition_properties.to_json()["properties"],
        "pixel_size_um": ev.pixel_size_um,
    }
    metrics["main"] = ev.scores(report / "main", ref, ev.pipe.conditional)
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
    if ev.is_benchmark and ev.pixel_size_um and ev.pipe.conditional:
        oracle = {
            "segmented_generated": metrics["main"].pop("oracle_accuracy"),
            "ceiling_segmented_real": accuracy_table(ref["oracle_segmented"], ref["targets"], ev.names),
            "ceiling_true_maps": accuracy_table(ref["oracle_map"], ref["targets"], ev.names),
        }
        if ev.cfg.two_stage:
            gen = load_arrays(report / "main", ["targets", "oracle_map"])
            oracle["stage1_maps"] = accuracy_table(gen["oracle_map"], gen["targets"], ev.names)
        metrics["oracle"] = oracle
    # microstructure statistics: the same segmenter on both sets
    k = min(opts.n_describe, opts.n, len(ref["images"]))
    real_d: list[dict] = []
    if k >= 1:
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
                _describe_set(ref["images"][:k], ref["maps"][:k], ev.pixel_size_um),
                _describe_set(gen_small["images"], gen_small["maps"], ev.pixel_size_um),
                ("true maps", "stage-1 maps"),
            )
    # data copying, calibrated by how close held-out real tiles come to the training set
    held_out = ev._split_images("test")
    if len(held_out):
        mse, _ = ev.nearest(held_out / 255.0)
        metrics["main"]["copy_mse_median_heldout_real"] = float(np.median(mse))
    metrics["grid"] = _grid(ev, report)
    metrics["sweeps"] = _sweeps(ev, report, targets, ref, real_d)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["table"] = [ScoreRow.from_scores("this model", metrics["main"]).to_dict()] + list(
        metrics["sweeps"].get("ablation", [])
    )
    draw_figures(report, metrics, ev.train_images, ev.cfg.two_stage)
    write_report(report, metrics)
    write_json_atomic(report / "metrics.json", metrics, default=_jsonable)
    record_outputs(report)
    return metrics


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


def _grid(ev: Evaluator, report: Path) -> dict[str, Any]:
    """Samples for up to 6 held-out specimens' property vectors, beside a real tile of each."""
    ds = ev._dataset("test")
    specimens = ds.specimens
    if len(specimens) < GRID_VECTORS:
        specimens = sorted(set(specimens) | set(ev._dataset("val").specimens))
    specimens = specimens[:GRID_VECTORS]
    full = ev._dataset(None)
    first = {s: i for i, s in reversed(list(enumerate(full.table["specimen"])))}
    rows = [full[first[s]] for s in specimens]
    targets = np.repeat(np.stack([r["props_raw"].numpy().astype(np.float64) for r in rows]), GRID_SAMPLES, axis=0)
    ev.generate_into(report / "grid", targets, "grid samples", measure=False)
    real = resize_batch(torch.stack([r["image"] for r in rows]), ev.cfg.resolution)[:, 0].numpy()
    np.save(report / "grid_real.npy", to_uint8(real))
    return {
        "specimens": specimens,
        "targets": [dict(zip(ev.names, map(float, r["props_raw"].numpy()))) for r in rows],
        "samples_per_vector": GRID_SAMPLES,
    }


def _sweeps(
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
