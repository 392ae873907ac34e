"""Typed configurations, loadable from YAML. Every default carries a comment saying why."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import MicroforgeError

T = TypeVar("T")


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic titanium benchmark (docs/synthetic_benchmark.md)."""

    n_specimens: int = 100  # docs/synthetic_benchmark.md: about 100 specimens
    field_px: int = 640  # side of each specimen's field; 25 tiles of 128 px without overlap
    tile_size: int = 128  # tiles at 64-128 px keep tiny models trainable on a CPU
    overlap: int = 0  # tiles of one specimen do not overlap: no duplicated pixels across tiles
    pixel_size_um: float = 0.25  # 0.5-3 um laths are 2-12 px wide: resolved, not aliased
    modalities: tuple[str, ...] = ("OM", "SEM")  # both renderings of every specimen
    # Share of each morphology among specimens; equal by default so no class is rare.
    morphology_weights: dict[str, float] = field(
        default_factory=lambda: {"equiaxed": 1.0, "bimodal": 1.0, "lamellar": 1.0, "basketweave": 1.0}
    )
    specimen_noise: bool = True  # specimen-to-specimen scatter on the properties, as real tests have
    seed: int = 0  # the benchmark is a pure function of this config

    def __post_init__(self) -> None:
        if self.n_specimens < 1:
            raise MicroforgeError(f"n_specimens must be at least 1, got {self.n_specimens}")
        if self.field_px < self.tile_size:
            raise MicroforgeError(f"field_px {self.field_px} is smaller than tile_size {self.tile_size}")
        if not 0 <= self.overlap < self.tile_size:
            raise MicroforgeError(f"overlap must be in [0, tile size), got {self.overlap} for tile {self.tile_size}")
        if self.pixel_size_um <= 0:
            raise MicroforgeError(f"pixel_size_um must be positive, got {self.pixel_size_um}")
        bad = [m for m in self.modalities if m not in ("OM", "SEM")]
        if bad or not self.modalities:
            raise MicroforgeError(f"modalities must be OM and/or SEM, got {list(self.modalities)}")
        from .data.synth.params import MORPHOLOGIES

        unknown = [m for m in self.morphology_weights if m not in MORPHOLOGIES]
        if unknown:
            raise MicroforgeError(f"unknown morphologies {unknown}; expected {', '.join(MORPHOLOGIES)}")
        weights = list(self.morphology_weights.values())
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise MicroforgeError("morphology_weights must be non-negative with a positive sum")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-able data (tuples become lists)."""
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MicroforgeError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MicroforgeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(loaded, dict):
        raise MicroforgeError(f"{path}: expected a mapping of config keys")
    return loaded


def read_json_file(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON object from ``path``; a missing or malformed file is an error naming it and
    saying what it should have been (``what``)."""
    path = Path(path)
    if not path.is_file():
        raise MicroforgeError(f"{path}: not found; is {path.parent} {what}?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MicroforgeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MicroforgeError(f"{path}: expected a JSON object")
    return data


def load_config(cls: type[T], path: str | Path | None = None, **overrides: Any) -> T:
    """Build config ``cls`` from a YAML file (optional) and keyword overrides (``None`` ignored).

    Unknown keys are an error that names the file and the key.
    """
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise MicroforgeError(f"{path or 'config'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    try:
        return cls(**data)
    except TypeError as exc:
        raise MicroforgeError(f"{path or 'config'}: {exc}") from None


def plain_data(value: Any) -> Any:
    """Dicts, lists and tuples of a config as plain JSON/YAML data (tuples become lists)."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value


def nested_config_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from plain nested data: nested dataclass fields (with a default
    factory) are built from mappings; lists become tuples; unknown keys are named errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise MicroforgeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        factory = names[key].default_factory
        default = factory() if factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(default):  # a nested section: vae, unet, encoder, train
            if not isinstance(value, dict):
                raise MicroforgeError(f"{where}: {key} must be a mapping")
            # keys the section leaves out take the section's own defaults (its default factory's)
            kwargs[key] = nested_config_from_dict(type(default), {**dataclasses.asdict(default), **value}, f"{where}: {key}")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise MicroforgeError(f"{where}: {exc}") from None
