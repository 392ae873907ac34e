"""The state of one evaluation: the model, its judges (regressor, Inception, fingerprint model,
segmenter, oracle) and the real tiles, with the per-batch jobs every stage of
``microforge evaluate`` shares: generating and measuring samples, the reference set, and the
scores of one generated folder against the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..characterize.descriptors import describe
from ..characterize.segmentation import lath_halfwidth_px, segment_classical
from ..data.dataset import MicrographDataset, load_split, nearest_maps
from ..data.manifest import DatasetTable, read_dataset
from ..data.synth.relations import PROPERTY_NAMES
from ..errors import MicroforgeError
from ..io import resize_batch, to_uint8
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

BENCHMARK_SOURCE = "microforge synthetic titanium benchmark"


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
        self.lath_halfwidth_px = lath_halfwidth_px(self.pixel_size_um)
        self._tiles: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        self.train_images = self.split_images("train")

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

    def dataset(self, split: str | None) -> MicrographDataset:
        """The model's split of the dataset (``None``: every tile of its modality), unaugmented."""
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

    def split_images(self, split: str) -> np.ndarray:
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
        return describe_set(images, self.segment(images / 255.0), self.pixel_size_um)

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
        ds = self.dataset(None)
        rng = np.random.default_rng(seed_from(self.opts.seed, 3))
        pick = np.sort(rng.choice(len(ds), size=min(self.opts.n_reference, len(ds)), replace=False))
        bs = max(self.opts.batch_size, 32)

        def make(i: int) -> dict[str, np.ndarray]:
            items = [ds[int(j)] for j in pick[i * bs : (i + 1) * bs]]
            images = resize_batch(torch.stack([it["image"] for it in items]), self.cfg.resolution)[:, 0].numpy()
            maps = nearest_maps(torch.stack([it["mask"] for it in items]), images.shape[-1]).numpy().astype(np.uint8)
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


def describe_set(images: np.ndarray, maps: np.ndarray, pixel_size_um: float | None) -> list[dict]:
    """:func:`describe` of uint8 images ``(N, R, R)`` with their phase maps ``(N, R, R)``."""
    return [describe(g / 255.0, m, pixel_size_um) for g, m in zip(images, maps)]
