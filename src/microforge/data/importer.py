"""``microforge data import``: large micrographs plus a property table become a dataset folder.

The whole table is checked before anything is written, so bad input fails fast with a message
that names the table line and the file: missing images, NaN or non-numeric properties, unknown
columns, unreadable or zero-size images, masks that do not cover the image's field of view.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..errors import MicroforgeError
from ..properties import TITANIUM_PROPERTIES, PropertySet, PropertySpec
from .images import read_grey, read_image, write_png
from .manifest import (
    MASK_TYPE_COLUMN,
    MODALITIES,
    RESERVED_COLUMNS,
    DatasetTable,
    check_property_cell,
    line_of,
    read_dataset,
    write_manifest,
)
from .outdir import PARTS_DIR, check_output_dir, cleaned_on_failure, prepare_output_dir, record_outputs
from .phase_map import MASK_TYPES, mask_to_phase_map
from ..io import to_uint8
from .tiling import Crop, iter_tiles, normalise_grey

KEY_CANDIDATES = ("file", "image", "filename", "micrograph", "path")
ASPECT_TOLERANCE = 0.01  # relative: a mask must show the same field of view as its image


@dataclass
class ImportOptions:
    """What ``data import`` reads and how it tiles. Column options name columns of the table."""

    images: Path  # folder the table's image (and, by default, mask) paths are relative to
    table: Path  # CSV, one row per micrograph
    out: Path  # dataset folder to write
    key_column: str | None = None  # image path column; default: the first of KEY_CANDIDATES present
    specimen_column: str | None = None  # default: each image is its own specimen (file stem)
    properties: list[str] | None = None  # condition columns; default: every column not otherwise used
    categorical: list[str] = field(default_factory=list)  # property columns holding labels, coded 0..n-1
    units: dict[str, str] = field(default_factory=dict)  # property -> unit (TiM3 names get theirs)
    noise_std: dict[str, float] = field(default_factory=dict)  # property -> augmentation std
    meta_columns: list[str] = field(default_factory=list)  # columns kept in the manifest, not conditions
    mask_column: str | None = None  # mask path column (empty cell: no mask for that image)
    masks_dir: Path | None = None  # folder mask paths are relative to; default: ``images``
    mask_type: str = "index"  # one of MASK_TYPES, for every mask ...
    mask_type_column: str | None = None  # ... or per row, from this column
    modality: str = "SEM"  # OM or SEM for every image ...
    modality_column: str | None = None  # ... or per row, from this column
    tile_size: int = 128  # tile side, px (after scaling)
    overlap: int = 0  # px shared by neighbouring tiles
    crop: Crop = field(default_factory=Crop)  # px cut from each edge first (scale bars)
    scale: float = 1.0  # resampling factor applied after cropping (0.5 halves the resolution)
    upper_percentile: float = 90.0  # grey level mapped to 1 (White et al.: 90th percentile)
    lower_percentile: float = 0.0  # grey level mapped to 0
    overwrite: bool = False


@dataclass
class _Row:
    line: int
    image: Path
    specimen: str
    modality: str
    values: dict[str, float]
    meta: dict[str, str]
    mask: Path | None
    mask_type: str


def _where(table_path: Path, line: int, image: str) -> str:
    return f"{table_path} line {line} ({image})"


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _read_table(opt: ImportOptions) -> pd.DataFrame:
    """Check the folders and read the property table as strings; errors name the file."""
    if opt.images.is_file():
        raise MicroforgeError(f"{opt.images}: is a file, expected the images folder (--images)")
    if not opt.images.is_dir():
        raise MicroforgeError(f"{opt.images}: images folder not found")
    if not opt.table.is_file():
        raise MicroforgeError(f"{opt.table}: property table not found")
    try:
        table = pd.read_csv(opt.table, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise MicroforgeError(f"{opt.table}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MicroforgeError(f"{opt.table}: cannot be parsed as CSV ({exc})") from None
    if table.empty:
        raise MicroforgeError(f"{opt.table}: the table has no rows")
    return table


def _columns(opt: ImportOptions, table: pd.DataFrame) -> tuple[str, list[str]]:
    """The image column and the property columns of ``table``, every named column checked."""
    columns = list(table.columns)
    key = opt.key_column or next((c for c in KEY_CANDIDATES if c in columns), None)
    if key is None:
        raise MicroforgeError(f"{opt.table}: no image column; name it with --key (columns: {', '.join(columns)})")
    used = {
        "key": key,
        "specimen": opt.specimen_column,
        "mask": opt.mask_column,
        "mask type": opt.mask_type_column,
        "modality": opt.modality_column,
    }
    named = [*(c for c in used.values() if c), *(opt.properties or []), *opt.categorical, *opt.meta_columns]
    unknown = [c for c in dict.fromkeys(named) if c not in columns]
    if unknown:
        raise MicroforgeError(
            f"{opt.table}: unknown column(s) {', '.join(unknown)}; the table has: {', '.join(columns)}"
        )
    taken = {c for c in used.values() if c} | set(opt.meta_columns)
    props = opt.properties if opt.properties is not None else [c for c in columns if c not in taken]
    reserved = [c for c in dict.fromkeys([*opt.meta_columns, *props]) if c in RESERVED_COLUMNS]
    if reserved:
        raise MicroforgeError(
            f"{opt.table}: column(s) {', '.join(reserved)} clash with the manifest's own columns "
            f"({', '.join(RESERVED_COLUMNS)}); rename them in the table"
        )
    stray = [c for c in opt.categorical if c not in props]
    if stray:
        raise MicroforgeError(f"--categorical {', '.join(stray)}: not among the properties {', '.join(props)}")
    extra = [c for c in columns if c not in taken and c not in props]
    if extra:
        raise MicroforgeError(
            f"{opt.table}: unknown column(s) {', '.join(extra)}; list them with --properties or --meta-columns"
        )
    if opt.mask_type not in MASK_TYPES:
        raise MicroforgeError(f"--mask-type {opt.mask_type!r}: expected one of {', '.join(MASK_TYPES)}")
    if opt.modality not in MODALITIES:
        raise MicroforgeError(f"--modality {opt.modality!r}: expected one of {', '.join(MODALITIES)}")

    return key, props


def _row(
    opt: ImportOptions, rec: pd.Series, line: int, key: str, props: list[str], categories: dict[str, list[str]]
) -> _Row:
    """One table row checked: its image, properties, modality, mask and specimen exist and parse."""
    masks_dir = opt.masks_dir or opt.images
    name = rec[key]
    where = _where(opt.table, line, name)
    if not name:
        raise MicroforgeError(f"{opt.table} line {line}: empty image path in column {key}")
    image = opt.images / name
    if not image.is_file():
        raise MicroforgeError(f"{where}: image {image} not found")
    values = {}
    for c in props:
        if c in categories:
            if rec[c] == "":
                raise MicroforgeError(f"{where}: categorical property {c} is empty")
            values[c] = float(categories[c].index(rec[c]))
        else:
            values[c] = check_property_cell(rec[c], c, where)
    modality = rec[opt.modality_column] if opt.modality_column else opt.modality
    if modality not in MODALITIES:
        raise MicroforgeError(f"{where}: modality {modality!r} is not one of {', '.join(MODALITIES)}")
    mask, mask_type = None, opt.mask_type
    if opt.mask_column and rec[opt.mask_column]:
        mask = masks_dir / rec[opt.mask_column]
        if not mask.is_file():
            raise MicroforgeError(f"{where}: mask {mask} not found")
        if opt.mask_type_column:
            mask_type = rec[opt.mask_type_column]
            if mask_type not in MASK_TYPES:
                raise MicroforgeError(f"{where}: mask type {mask_type!r} is not one of {', '.join(MASK_TYPES)}")
    specimen = rec[opt.specimen_column] if opt.specimen_column else Path(name).stem
    if not specimen:
        raise MicroforgeError(f"{where}: empty specimen in column {opt.specimen_column}")
    return _Row(line, image, specimen, modality, values, {c: rec[c] for c in opt.meta_columns}, mask, mask_type)


def _properties(
    opt: ImportOptions,
    rows: list[_Row],
    props: list[str],
    categories: dict[str, list[str]],
    warn: Callable[[str], None],
) -> PropertySet:
    """The dataset's property specs (ranges from the rows, units and noise from the options or the
    titanium defaults), warning on repeated images and constant properties."""
    seen: dict[str, int] = {}
    for r in rows:
        if str(r.image) in seen:
            warn(
                f"{opt.table} line {r.line}: image {r.image.name} is listed again (first on line "
                f"{seen[str(r.image)]}); its tiles are imported twice"
            )
        seen.setdefault(str(r.image), r.line)
    known = {s.name: s for s in TITANIUM_PROPERTIES}
    specs = []
    for c in props:
        vals = [r.values[c] for r in rows]
        if min(vals) == max(vals):
            warn(
                f"{opt.table}: property {c} has the same value ({min(vals):g}) on every row; it carries no "
                "information and normalises to a constant"
            )
        base = known.get(c)
        specs.append(
            PropertySpec(
                name=c,
                unit=opt.units.get(c, base.unit if base else ""),
                min=min(vals),
                max=max(vals),
                noise_std=opt.noise_std.get(c, base.noise_std if base else 0.0),
                long_name=base.long_name if base else c,
                categories=tuple(categories[c]) if c in categories else None,
            )
        )
    info = {
        "source": f"imported from {opt.table}",
        "tile_size": opt.tile_size,
        "overlap": opt.overlap,
        "crop": [opt.crop.top, opt.crop.bottom, opt.crop.left, opt.crop.right],
        "scale": opt.scale,
        "percentiles": [opt.lower_percentile, opt.upper_percentile],
    }
    meta = list(dict.fromkeys([*opt.meta_columns, MASK_TYPE_COLUMN])) if opt.mask_column else list(opt.meta_columns)
    return PropertySet(specs, meta, info)


def _plan(opt: ImportOptions, warn: Callable[[str], None]) -> tuple[list[_Row], PropertySet]:
    """Read and check the table; return the rows to import and the dataset's properties."""
    table = _read_table(opt)
    key, props = _columns(opt, table)
    categories = {c: sorted(set(table[c])) for c in opt.categorical}
    rows = [_row(opt, rec, line_of(int(i)), key, props, categories) for i, rec in table.iterrows()]
    return rows, _properties(opt, rows, props, categories, warn)


def load_mask_for(image_shape: tuple[int, int], mask_path: Path, mask_type: str, where: str) -> np.ndarray:
    """Read a mask, convert it to a phase map and resize it (nearest) to ``image_shape`` ``(H, W)``.

    Masks at another resolution are accepted when they show the same field of view, i.e. the same
    aspect ratio within :data:`ASPECT_TOLERANCE`; anything else is refused.
    """
    phase = mask_to_phase_map(read_image(mask_path, where), mask_type)
    (h, w), (mh, mw) = image_shape, phase.shape
    if abs((mw / mh) / (w / h) - 1.0) > ASPECT_TOLERANCE:
        raise MicroforgeError(
            f"{where}: mask {mask_path} is {mw}x{mh} px but the image is {w}x{h} px; "
            "a mask must cover the image's field of view (same aspect ratio)"
        )
    if (mh, mw) != (h, w):
        phase = np.asarray(Image.fromarray(phase).resize((w, h), Image.Resampling.NEAREST))
    return phase


def _rescale(array: np.ndarray, scale: float, nearest: bool) -> np.ndarray:
    if scale == 1.0:
        return array
    h, w = array.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(array).resize(size, method))


def import_dataset(opt: ImportOptions, progress: bool = True, warn: Callable[[str], None] = _warn) -> DatasetTable:
    """Run the import described by ``opt`` and return the validated dataset.

    Each image is cropped, rescaled, grey-normalised (over the whole image, so its tiles share
    one normalisation) and cut into tiles; its mask, if any, goes through the same geometry.
    """
    if not math.isfinite(opt.scale) or opt.scale <= 0:
        raise MicroforgeError(f"--scale must be a positive number, got {opt.scale}")
    check_output_dir(opt.out)  # before reading the table: a refused folder gets its error first
    rows, props = _plan(opt, warn)
    # an unfinished import restarts from scratch (its tiles are cheap to cut again)
    prepare_output_dir(
        opt.out,
        opt.overwrite or (opt.out / PARTS_DIR).is_dir(),
        command="data import",
        outputs=(PARTS_DIR, "tiles", "masks", "manifest.csv", "properties.json"),
    )
    (opt.out / PARTS_DIR).mkdir(parents=True, exist_ok=True)  # marks the folder as an unfinished import
    with cleaned_on_failure(opt.out, fresh=True):
        write_manifest(opt.out, _write_tiles(opt, rows, props, progress, warn), props)
    (opt.out / PARTS_DIR).rmdir()
    record_outputs(opt.out)
    return read_dataset(opt.out)


def _write_tiles(
    opt: ImportOptions, rows: list, props: PropertySet, progress: bool, warn: Callable[[str], None]
) -> pd.DataFrame:
    """Crop, rescale, normalise and tile every planned image into ``opt.out``; returns the manifest table."""
    records = []
    for row in tqdm(rows, desc="import images", disable=not progress, unit="image"):
        where = _where(opt.table, row.line, row.image.name)
        grey = read_grey(row.image, where)
        if grey.min() == grey.max():
            warn(f"{where}: the image is uniform (every pixel {int(grey.min())}); it holds no microstructure")
        phase = load_mask_for(grey.shape, row.mask, row.mask_type, where) if row.mask else None
        grey = _rescale(opt.crop.apply(grey), opt.scale, nearest=False)
        norm = normalise_grey(grey, opt.upper_percentile, opt.lower_percentile)
        if phase is not None:
            phase = _rescale(opt.crop.apply(phase), opt.scale, nearest=True)
        h, w = norm.shape
        if h < opt.tile_size or w < opt.tile_size:
            raise MicroforgeError(
                f"{where}: after cropping and scaling the image is {w}x{h} px, smaller than one {opt.tile_size} px tile"
            )
        stem = row.image.stem
        for y, x, tile in iter_tiles(norm, opt.tile_size, opt.overlap):
            tile_rel = f"tiles/{row.specimen}/{stem}_y{y:05d}_x{x:05d}.png"
            write_png(opt.out / tile_rel, to_uint8(tile))
            mask_rel = ""
            if phase is not None:
                mask_rel = f"masks/{row.specimen}/{stem}_y{y:05d}_x{x:05d}.png"
                write_png(opt.out / mask_rel, phase[y : y + opt.tile_size, x : x + opt.tile_size])
            records.append(
                {
                    "tile": tile_rel,
                    "specimen": row.specimen,
                    "modality": row.modality,
                    "mask": mask_rel,
                    **row.values,
                    **row.meta,
                    MASK_TYPE_COLUMN: row.mask_type if phase is not None else "",
                }
            )
    table = pd.DataFrame(records)
    if MASK_TYPE_COLUMN not in props.meta_columns:
        table = table.drop(columns=MASK_TYPE_COLUMN)
    return table
