"""Typed configurations, loadable from YAML. Every default carries a comment saying why."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, TypeVar

from .errors import MicroforgeError
from .io import read_yaml_mapping

T = TypeVar("T")


GUIDANCE_MAX = 100.0  # the largest classifier-free guidance scale a config or a command accepts


def check_guidance(value: float, name: str) -> None:
    """Refuse a classifier-free guidance scale that is not a finite number in 0..GUIDANCE_MAX (or
    is a bool), naming the field or option ``name`` that gave it."""
    if isinstance(value, bool) or not math.isfinite(value) or not 0 <= value <= GUIDANCE_MAX:
        raise MicroforgeError(f"{name} must be a finite number in 0..{GUIDANCE_MAX:g}, got {value}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-able data (tuples become lists)."""
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def load_config(cls: type[T], path: str | Path | None = None, **overrides: Any) -> T:
    """Build config ``cls`` from a YAML file (optional) and keyword overrides (``None`` ignored).

    Unknown keys are an error that names the file and the key.
    """
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise MicroforgeError(
            f"{path or 'config'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
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
    factory) are built from mappings, as are optional ones (the section's class in the field's
    ``metadata["section"]``; null gives None, and a mapping fills the field's default section, or
    the class's defaults where the field's default is None); lists become tuples; unknown keys are
    named errors."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise MicroforgeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        factory = names[key].default_factory
        default = factory() if factory is not dataclasses.MISSING else None  # type: ignore[misc]
        optional = names[key].metadata.get("section")
        if optional is not None and value is None:  # an optional section, turned off
            kwargs[key] = None
            continue
        if optional is not None and default is None:
            default = optional()
        if dataclasses.is_dataclass(default):  # a nested section: vae, unet, encoder, train
            if not isinstance(value, dict):
                raise MicroforgeError(f"{where}: {key} must be a mapping")
            # keys the section leaves out take the section's own defaults (its default factory's)
            kwargs[key] = nested_config_from_dict(
                type(default), {**dataclasses.asdict(default), **value}, f"{where}: {key}"
            )
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except (TypeError, MicroforgeError) as exc:  # a missing field, or a value the dataclass's own checks refuse
        raise MicroforgeError(f"{where}: {exc}") from None
