"""The dataset folder format: ``manifest.csv`` + ``properties.json``.

``manifest.csv`` has one row per tile::

    tile, specimen, modality, mask, <one column per property>, <meta columns>

``tile`` and ``mask`` are paths relative to the dataset folder (``mask`` may be empty),
``modality`` is ``OM`` or ``SEM``, and the property columns are those of ``properties.json``,
in physical units (categorical properties hold their integer code). Any other column must be
declared in ``properties.json`` as a meta column; anything else is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MicroforgeError
from ..io import atomic_path
from ..properties import PropertySet

MANIFEST_NAME = "manifest.csv"
PROPERTIES_NAME = "properties.json"
RESERVED_COLUMNS = ("tile", "specimen", "modality", "mask")
MODALITIES = ("OM", "SEM")
MASK_TYPE_COLUMN = "mask_type"  # meta column: the format a tile's mask was imported from


@dataclass
class DatasetTable:
    """A validated dataset folder.

    Attributes
    ----------
    root : the dataset folder.
    table : the manifest, one row per tile (pandas DataFrame, index 0..N-1).
    properties : the dataset's properties.
    """

    root: Path
    table: pd.DataFrame
    properties: PropertySet

    def property_values(self) -> np.ndarray:
        """Raw property matrix ``(N, K)`` in physical units, in ``properties`` order."""
        return self.table[self.properties.names].to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.table)


def line_of(index: int) -> int:
    """File line number of data row ``index`` (0-based) in a CSV with one header line."""
    return index + 2


def check_property_cell(value: object, column: str, where: str) -> float:
    """Parse one property cell as a finite float, or raise naming ``where`` and ``column``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MicroforgeError(f"{where}: property {column} = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MicroforgeError(f"{where}: property {column} is {value!r}; it must be a finite number")
    return number


def read_dataset(root: str | Path, check_files: bool = True) -> DatasetTable:
    """Read and validate a dataset folder.

    Raises :class:`MicroforgeError` with the file and line for: a missing folder, manifest or
    properties.json; an empty manifest; missing or unknown columns; non-numeric, NaN or infinite
    properties; an unknown modality; and (with ``check_files``) tiles or masks that do not exist.
    """
    root = Path(root)
    if root.is_file():
        raise MicroforgeError(f"{root}: is a file, expected a dataset folder")
    if not root.is_dir():
        raise MicroforgeError(f"{root}: dataset folder not found")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise MicroforgeError(f"{manifest_path}: manifest not found; is {root} a microforge dataset?")
    props = PropertySet.load(root / PROPERTIES_NAME)
    try:
        table = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise MicroforgeError(f"{manifest_path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MicroforgeError(f"{manifest_path}: cannot be parsed as CSV ({exc})") from None
    where = str(manifest_path)
    missing = [c for c in ("tile", "specimen", "modality", *props.names) if c not in table.columns]
    if missing:
        raise MicroforgeError(f"{where}: missing column(s) {', '.join(missing)}")
    known = set(RESERVED_COLUMNS) | set(props.names) | set(props.meta_columns)
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        raise MicroforgeError(
            f"{where}: unknown column(s) {', '.join(unknown)}; declare them as meta_columns in {PROPERTIES_NAME}"
        )
    if table.empty:
        raise MicroforgeError(f"{where}: the dataset is empty (no tiles)")
    if "mask" not in table.columns:
        table["mask"] = ""
    for i, row in table.iterrows():
        at = f"{where} line {line_of(int(i))} ({row['tile']})"
        if row["modality"] not in MODALITIES:
            raise MicroforgeError(f"{at}: modality {row['modality']!r} is not one of {', '.join(MODALITIES)}")
        for name in props.names:
            check_property_cell(row[name], name, at)
        if check_files:
            if not (root / row["tile"]).is_file():
                raise MicroforgeError(f"{at}: tile file {root / row['tile']} not found")
            if row["mask"] and not (root / row["mask"]).is_file():
                raise MicroforgeError(f"{at}: mask file {root / row['mask']} not found")
    for name in props.names:
        table[name] = table[name].astype(np.float64)
    return DatasetTable(root, table, props)


def write_manifest(root: str | Path, table: pd.DataFrame, props: PropertySet) -> None:
    """Write ``manifest.csv`` and ``properties.json`` into ``root``, atomically (temp file + rename).

    Columns are ordered reserved, properties, meta.
    """
    root = Path(root)
    columns = [*RESERVED_COLUMNS, *props.names, *props.meta_columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MicroforgeError(f"cannot write manifest: missing column(s) {', '.join(missing)}")
    with atomic_path(root / MANIFEST_NAME) as tmp:
        table[columns].to_csv(tmp, index=False)
        with atomic_path(root / PROPERTIES_NAME) as props_tmp:  # the properties first: a manifest implies them
            props.save(props_tmp)
