"""Which pipeline reads a model folder: a registry keyed by the ``format`` of its config.json,
each format defined once, by the pipeline that writes and reads it."""

from __future__ import annotations

from pathlib import Path

from ..errors import MicroforgeError
from ..io import read_json_file
from .base import SamplingPipeline
from .baselines import FORMAT as BASELINE_FORMAT
from .baselines import BaselinePipeline
from .tim3 import FORMAT as TIM3_FORMAT
from .tim3 import TiM3Pipeline

BUNDLED_PREFIX = "bundled:"  # bundled:NAME names a model shipped in the package
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"

PIPELINES: dict[str, type[SamplingPipeline]] = {TIM3_FORMAT: TiM3Pipeline, BASELINE_FORMAT: BaselinePipeline}


def resolve_model(spec: str | Path) -> Path:
    """``bundled:NAME`` -> the checkpoint shipped in the package; anything else is a folder."""
    spec = str(spec)
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        path = BUNDLED_DIR / name
        if not path.is_dir():
            known = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir()) if BUNDLED_DIR.is_dir() else []
            raise MicroforgeError(f"no bundled model {name!r}; bundled: {', '.join(known) or 'none'}")
        return path
    return Path(spec)


def load_pipeline(spec: str | Path) -> SamplingPipeline:
    """A TiM3 or baseline model folder (or ``bundled:NAME``) -> its pipeline, chosen by the
    ``format`` in its config.json."""
    folder = resolve_model(spec)
    if not folder.is_dir():
        raise MicroforgeError(f"{folder}: model folder not found")
    fmt = read_json_file(folder / "config.json", "a trained model").get("format")
    if fmt not in PIPELINES:
        raise MicroforgeError(
            f"{folder / 'config.json'}: unknown model format {fmt!r}; known: {', '.join(sorted(PIPELINES))}"
        )
    return PIPELINES[fmt].from_pretrained(folder)
