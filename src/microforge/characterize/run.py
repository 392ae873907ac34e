"""What ``microforge characterize`` and ``microforge segment`` do, as functions.

Inputs are image files, folders of images, or dataset folders (``manifest.csv``: their tiles,
with their masks where they have them).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.images import check_image_header, read_grey, write_png
from ..data.manifest import MANIFEST_NAME, read_dataset
from ..data.outdir import cleaned_on_failure, prepare_output_dir, record_outputs
from ..data.phase_map import CLASS_NAMES, phase_fractions, to_pseudo_rgb
from ..errors import MicroforgeError
from .descriptors import compare_sets, describe
from .figures import compare_figure, image_figure
from .segmentation import segment_classical

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
Segmenter = Callable[[np.ndarray], np.ndarray]


@dataclass
class ImageItem:
    """One image to measure: a name, where it came from, and its mask path if it has one."""

    name: str
    path: Path
    mask: Path | None = None


MIN_SIDE = 8  # px; the smallest image the descriptors can measure


def collect_images(paths: Sequence[str | Path]) -> list[ImageItem]:
    """Expand files, image folders and dataset folders into a list of images (sorted per folder)."""
    items: list[ImageItem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            items.append(ImageItem(path.stem, path))
        elif path.is_dir() and (path / MANIFEST_NAME).is_file():
            data = read_dataset(path)
            for tile, mask in zip(data.table["tile"], data.table["mask"]):
                items.append(
                    ImageItem(
                        Path(tile).stem if len(paths) == 1 else f"{path.name}_{Path(tile).stem}",
                        path / tile,
                        path / mask if mask else None,
                    )
                )
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise MicroforgeError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            items.extend(ImageItem(p.stem, p) for p in found)
        else:
            raise MicroforgeError(f"{path}: no such file or folder")
    names = [i.name for i in items]
    if len(set(names)) != len(names):  # same stem in two folders: prefix the folder
        items = [ImageItem(f"{i.path.parent.name}_{i.name}", i.path, i.mask) for i in items]
    for item in items:  # fail before any work starts, not half-way through a long job
        check_image_header(item.path, MIN_SIDE)
    return items


def load_segmenter(spec: str, modality: str) -> tuple[Segmenter, str]:
    """``"classical"`` or the folder of a trained attention U-Net -> (function, description)."""
    if spec == "classical":
        return (lambda grey: segment_classical(grey, modality)), f"classical ({modality})"
    from ..models.attention_unet import AttentionUNet, predict_phase_map

    model = AttentionUNet.from_pretrained(spec)
    return (lambda grey: predict_phase_map(model, grey)), f"attention U-Net {spec}"


def _measure(
    items: list[ImageItem], segmenter: Segmenter, pixel_size_um: float | None, desc: str, progress: bool
) -> Iterator[tuple[ImageItem, np.ndarray, np.ndarray, dict]]:
    for item in tqdm(items, desc=desc, disable=not progress, unit="image"):
        grey = read_grey(item.path).astype(np.float64) / 255.0
        phase = read_grey(item.mask) if item.mask else segmenter(grey)
        if phase.shape != grey.shape:
            raise MicroforgeError(
                f"{item.mask}: mask is {phase.shape[::-1]} px but {item.path} is {grey.shape[::-1]} px"
            )
        yield item, grey, phase, describe(grey, phase, pixel_size_um)


def characterize(
    paths: Sequence[str | Path],
    out: str | Path,
    segmenter: str = "classical",
    modality: str = "SEM",
    pixel_size_um: float | None = None,
    figures: int = 20,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Measure every image and write ``out/descriptors.json`` and ``out/figures/*.png`` (the
    first ``figures`` images). Given exactly two folders, also compare them (the first is the
    reference) into ``out/compare.json`` and ``out/compare.png``. Returns what it wrote as JSON.
    """
    if figures < 0:
        raise MicroforgeError(f"--figures must be non-negative, got {figures}")
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise MicroforgeError(f"--pixel-size must be positive, got {pixel_size_um}")
    compare = len(paths) == 2 and all(Path(p).is_dir() for p in paths)
    groups = [collect_images([p]) for p in paths] if compare else [collect_images(paths)]
    seg, seg_name = load_segmenter(segmenter, modality)
    out = Path(out)
    prepare_output_dir(out, overwrite, done_marker="descriptors.json", command="characterize", outputs=("figures",))
    (out / "figures").mkdir(exist_ok=True)
    results, per_group, drawn = [], [], 0
    for g, items in enumerate(groups):
        descs = []
        for item, grey, phase, d in _measure(
            items, seg, pixel_size_um, f"characterize {Path(paths[g]).name if compare else ''}".strip(), progress
        ):
            source = "mask" if item.mask else seg_name
            results.append(
                {
                    "name": item.name,
                    "image": str(item.path),
                    "set": Path(paths[g]).name if compare else None,
                    "phase_map": source,
                    "descriptors": d,
                }
            )
            descs.append(d)
            if drawn < figures:
                label = f"{Path(paths[g]).name}_{item.name}" if compare else item.name
                image_figure(grey, phase, d, label, out / "figures" / f"{label}.png")
                drawn += 1
        per_group.append(descs)
    report = {"segmenter": seg_name, "images": results}
    if compare:
        names = tuple(Path(p).name for p in paths)
        if names[0] == names[1]:
            names = (f"{names[0]}_1", f"{names[1]}_2")
        report["comparison"] = compare_sets(per_group[0], per_group[1], names)  # type: ignore[arg-type]
        (out / "compare.json").write_text(json.dumps(report["comparison"], indent=1) + "\n")
        compare_figure(report["comparison"], out / "compare.png")
    tmp = out / "descriptors.json.tmp"
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out / "descriptors.json")
    record_outputs(out)
    return report


def segment_images(
    paths: Sequence[str | Path],
    out: str | Path,
    segmenter: str = "classical",
    modality: str = "SEM",
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Segment every image: ``out/<name>.png`` (class indices), ``out/<name>_rgb.png`` (colours)
    and ``out/fractions.csv`` (phase fractions per image)."""
    items = collect_images(paths)
    seg, _ = load_segmenter(segmenter, modality)
    out = Path(out)
    prepare_output_dir(out, overwrite, done_marker="fractions.csv", command="segment run")
    rows = []
    with cleaned_on_failure(out, fresh=True):
        for item in tqdm(items, desc="segment", disable=not progress, unit="image"):
            phase = seg(read_grey(item.path).astype(np.float64) / 255.0)
            write_png(out / f"{item.name}.png", phase)
            write_png(out / f"{item.name}_rgb.png", to_pseudo_rgb(phase))
            rows.append(
                {
                    "image": str(item.path),
                    "map": f"{item.name}.png",
                    **{n: round(float(f), 6) for n, f in zip(CLASS_NAMES, phase_fractions(phase))},
                }
            )
    with open(out / "fractions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    record_outputs(out)
    return rows
