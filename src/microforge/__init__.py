"""microforge: generate alloy micrographs from target properties, and measure them.

The public API, imported on first use (``import microforge`` stays light for the CLI)::

    import microforge

    pipe = microforge.load_pipeline("bundled:ti-sem-tiny")   # any model folder, or bundled:NAME
    images = pipe(targets)                                    # see TiM3Pipeline.__call__
    d = microforge.describe(phase_map, pixel_size_um=0.25)    # descriptors of one phase map
    c = microforge.compare_sets(real, generated)              # and of two sets of them

Every bad input raises :class:`MicroforgeError` with a message that names what is at fault.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "MicroforgeError": "microforge.errors",
    "TiM3Pipeline": "microforge.pipelines.tim3",
    "load_pipeline": "microforge.pipelines.registry",
    "describe": "microforge.characterize.descriptors",
    "compare_sets": "microforge.characterize.descriptors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for (PEP 562)."""
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'microforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
