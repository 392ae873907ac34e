"""Property definitions: names, units, ranges, normalisation and ``properties.json``.

A dataset and every checkpoint carry a ``properties.json`` that fixes the order of the property
vector, each property's unit, its range (used to normalise to [-1, 1]) and the std of the
Gaussian noise added to it during training (TiM3's property augmentation).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import MicroforgeError

PROPERTIES_FORMAT = "microforge-properties/1"


@dataclass(frozen=True)
class PropertySpec:
    """One condition column.

    Attributes
    ----------
    name : short column name, e.g. ``"YS"``.
    unit : physical unit, e.g. ``"MPa"`` (``""`` when dimensionless).
    min, max : range of the property in the dataset, in ``unit``; maps to [-1, 1].
    noise_std : std of the zero-mean Gaussian noise added in training, in ``unit``.
    long_name : human-readable name.
    categories : for a categorical column, the category labels; the manifest then stores the
        integer code (index into ``categories``).
    """

    name: str
    unit: str
    min: float
    max: float
    noise_std: float = 0.0
    long_name: str = ""
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise MicroforgeError("a property has an empty name")
        for label, value in (("min", self.min), ("max", self.max), ("noise_std", self.noise_std)):
            if not math.isfinite(value):
                raise MicroforgeError(f"property {self.name}: {label} is not a finite number ({value})")
        if self.max < self.min:
            raise MicroforgeError(f"property {self.name}: max {self.max} < min {self.min}")
        if self.noise_std < 0:
            raise MicroforgeError(f"property {self.name}: negative noise_std {self.noise_std}")

    @property
    def label(self) -> str:
        """``"YS [MPa]"``-style label for plots and messages."""
        return f"{self.name} [{self.unit}]" if self.unit else self.name


# The seven TiM3 properties. Ranges follow TiM3's Table 4 and are replaced by the dataset's own
# range when a dataset is written; noise stds are the paper's augmentation stds.
TITANIUM_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("YS", "MPa", 800.0, 1400.0, 50.0, "yield strength"),
    PropertySpec("TS", "MPa", 850.0, 1500.0, 50.0, "ultimate tensile strength"),
    PropertySpec("EF", "%", 1.5, 20.0, 1.5, "elongation to fracture"),
    PropertySpec("RH", "HRC", 25.0, 60.0, 3.0, "Rockwell hardness"),
    PropertySpec("IT", "J/cm^2", 4.0, 60.0, 2.0, "impact toughness"),
    PropertySpec("DCS", "MPa", 1200.0, 1800.0, 70.0, "dynamic compression strength"),
    PropertySpec("CFS", "", 0.04, 0.30, 0.02, "critical fracture strain"),
)


@dataclass
class PropertySet:
    """The ordered properties of a dataset or model, as stored in ``properties.json``.

    Attributes
    ----------
    specs : the condition columns, in the order of the property vector.
    meta_columns : further manifest columns kept as metadata (never used as conditions).
    info : free-form provenance (source, pixel size, seed, ...).
    """

    specs: list[PropertySpec]
    meta_columns: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise MicroforgeError(f"duplicate property names: {names}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def __len__(self) -> int:
        return len(self.specs)

    def spec(self, name: str) -> PropertySpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise MicroforgeError(f"unknown property {name!r}; expected one of: {self.describe()}")

    def require(self, where: str, what: str) -> None:
        """Refuse an unlabelled dataset (no properties) for ``what``, a job that conditions on them."""
        if not self.specs:
            raise MicroforgeError(
                f"{where}: the dataset has no properties, and {what} needs at least one; import its table with "
                "--properties"
            )

    def describe(self) -> str:
        """``"YS [MPa], TS [MPa], ..."``: the expected names and units, for messages."""
        return ", ".join(s.label for s in self.specs)

    @property
    def mins(self) -> np.ndarray:
        return np.array([s.min for s in self.specs], dtype=np.float64)

    @property
    def maxs(self) -> np.ndarray:
        return np.array([s.max for s in self.specs], dtype=np.float64)

    @property
    def noise_stds(self) -> np.ndarray:
        return np.array([s.noise_std for s in self.specs], dtype=np.float64)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Map raw values ``(..., K)`` in physical units to [-1, 1] (min -> -1, max -> 1).

        A property whose min equals its max maps to 0.
        """
        values = np.asarray(values, dtype=np.float64)
        self._check_width(values)
        span = self.maxs - self.mins
        safe = np.where(span > 0, span, 1.0)
        out = 2.0 * (values - self.mins) / safe - 1.0
        return np.where(span > 0, out, 0.0)

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalise`: ``(..., K)`` in [-1, 1] to physical units."""
        values = np.asarray(values, dtype=np.float64)
        self._check_width(values)
        return self.mins + (values + 1.0) * 0.5 * (self.maxs - self.mins)

    def _check_width(self, values: np.ndarray) -> None:
        if values.shape[-1] != len(self):
            raise MicroforgeError(
                f"property vector has {values.shape[-1]} values, expected {len(self)}: {self.describe()}"
            )

    def to_json(self) -> dict[str, Any]:
        specs = []
        for s in self.specs:
            d = asdict(s)
            if s.categories is None:
                d.pop("categories")
            else:
                d["categories"] = list(s.categories)
            specs.append(d)
        return {
            "format": PROPERTIES_FORMAT,
            "properties": specs,
            "meta_columns": list(self.meta_columns),
            "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, data: Any, source: str = "properties.json") -> "PropertySet":
        if not isinstance(data, dict) or not isinstance(data.get("properties"), list):
            raise MicroforgeError(f"{source}: expected an object with a 'properties' list")
        specs = []
        for i, item in enumerate(data["properties"]):
            if not isinstance(item, dict) or "name" not in item:
                raise MicroforgeError(f"{source}: property #{i + 1} has no 'name'")
            try:
                cats = item.get("categories")
                specs.append(
                    PropertySpec(
                        name=str(item["name"]),
                        unit=str(item.get("unit", "")),
                        min=float(item["min"]),
                        max=float(item["max"]),
                        noise_std=float(item.get("noise_std", 0.0)),
                        long_name=str(item.get("long_name", "")),
                        categories=tuple(str(c) for c in cats) if cats is not None else None,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise MicroforgeError(f"{source}: property {item.get('name')!r} is malformed ({exc})") from None
        return cls(specs, [str(c) for c in data.get("meta_columns", [])], dict(data.get("info", {})))

    @classmethod
    def load(cls, path: str | Path) -> "PropertySet":
        """Read a ``properties.json``; raises :class:`MicroforgeError` naming the file if bad."""
        from .io import read_json_file

        if not Path(path).is_file():
            raise MicroforgeError(f"{path}: properties.json not found")
        return cls.from_json(read_json_file(path, "a dataset or model"), str(path))


def parse_property_value(spec: PropertySpec, raw: Any, where: str) -> float:
    """One property value as typed on the command line or sent as JSON: a finite number, or, for a
    categorical property, one of its category names (or its integer code). Returns the value in
    the manifest's units (a category's code). ``where`` starts each error message."""
    if isinstance(raw, bool):
        raise MicroforgeError(f"{where}: {raw!r} is not a number")
    if spec.categories is not None:
        text = raw.strip() if isinstance(raw, str) else raw
        if text in spec.categories:
            return float(spec.categories.index(text))
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError, OverflowError):
        names = f"; expected one of {', '.join(spec.categories)}" if spec.categories is not None else ""
        raise MicroforgeError(f"{where}: {raw!r} is not a number{names}") from None
    if not math.isfinite(value):
        raise MicroforgeError(f"{where}: value must be finite")
    if spec.categories is not None and (value != int(value) or not 0 <= value < len(spec.categories)):
        raise MicroforgeError(f"{where}: {raw!r} is not a category; expected one of {', '.join(spec.categories)}")
    return value


def category_name(spec: PropertySpec, value: float) -> str | float:
    """A categorical property's name for its code (other properties: the value itself)."""
    if spec.categories is not None and float(value).is_integer() and 0 <= int(value) < len(spec.categories):
        return spec.categories[int(value)]
    return float(value)


def parse_property_assignments(items: Sequence[str], props: PropertySet) -> np.ndarray:
    """Parse ``["YS=1050", "TS=1120", ...]`` into a raw property vector ``(K,)`` in ``props`` order.

    Every property must be given exactly once, as a finite number (a categorical one also by its
    category name). Errors list the expected names and units. The range is checked separately,
    by :func:`check_target_range`.
    """
    values: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise MicroforgeError(f"--prop {item!r}: expected NAME=VALUE; properties are {props.describe()}")
        if name not in props.names:
            raise MicroforgeError(f"--prop {item!r}: unknown property {name!r}; expected {props.describe()}")
        if name in values:
            raise MicroforgeError(f"--prop {name} given twice")
        values[name] = parse_property_value(props.specs[props.names.index(name)], text, f"--prop {item!r}")
    missing = [s.label for s in props.specs if s.name not in values]
    if missing:
        raise MicroforgeError(f"missing properties: {', '.join(missing)}; expected {props.describe()}")
    return np.array([values[n] for n in props.names], dtype=np.float64)


def parse_property_mapping(raw: Any, props: PropertySet) -> np.ndarray:
    """A JSON ``{name: value}`` target (the web explorer's) -> the raw vector ``(K,)``; values may
    be numbers, numeric text or category names. The same rules as :func:`parse_property_assignments`."""
    if not isinstance(raw, dict):
        raise MicroforgeError("the target must be an object of property values")
    unknown = sorted(set(raw) - set(props.names))
    if unknown:
        raise MicroforgeError(f"unknown properties {', '.join(map(str, unknown))}; expected {props.describe()}")
    out = []
    for s in props.specs:
        if s.name not in raw or raw[s.name] in (None, ""):
            raise MicroforgeError(f"{s.label}: no value given")
        out.append(parse_property_value(s, raw[s.name], s.label))
    return np.asarray(out, dtype=np.float64)


def check_target_range(props: PropertySet, target: np.ndarray, allow_extrapolation: bool = False) -> None:
    """Refuse a raw target ``(K,)`` with a value outside the model's range (the training data's
    min..max in properties.json) unless ``allow_extrapolation``: the one range rule of the command
    line, the HTTP API and the page."""
    if allow_extrapolation:
        return
    for s, v in zip(props.specs, np.asarray(target, dtype=np.float64)):
        if not s.min <= v <= s.max:
            raise MicroforgeError(
                f"{s.label}: {v:g} is outside the model's range {s.min:g} to {s.max:g}; "
                "pass --allow-extrapolation to sample it anyway"
            )
