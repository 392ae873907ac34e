"""What every sampling pipeline shares: the batch it yields, the target check, ``to()`` and a
``__call__`` that gathers :meth:`SamplingPipeline.iter_batches`. TiM3 and the baselines subclass
it, so ``generate``, ``evaluate`` and ``serve`` take either."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..config import check_guidance
from ..errors import MicroforgeError
from ..io import write_json_atomic
from ..properties import PropertySet


@dataclass
class Generated:
    """A batch of samples: ``maps`` ``(N, H, W)`` uint8 classes 0..2 (``None`` for models
    without a stage-1 map), ``images`` ``(N, H, W)`` float32 in [0, 1], and the raw targets ``(N, K)``."""

    maps: np.ndarray | None
    images: np.ndarray
    targets: np.ndarray

    @classmethod
    def concatenate(cls, parts: list["Generated"]) -> "Generated":
        """One :class:`Generated` of the batches ``parts``, in order."""
        maps = None if parts[0].maps is None else np.concatenate([p.maps for p in parts])
        return cls(maps, np.concatenate([p.images for p in parts]), np.concatenate([p.targets for p in parts]))


def check_targets(targets: np.ndarray, props: PropertySet) -> np.ndarray:
    """Raw targets ``(N, K)`` (or ``(K,)``) checked for width and finiteness against ``props``;
    the errors list the expected names and units. Returns ``(N, K)`` float64."""
    targets = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    if targets.shape[1] != len(props):
        raise MicroforgeError(
            f"a target needs {len(props)} values, got {targets.shape[1]}; expected {props.describe()}"
        )
    if not np.isfinite(targets).all():
        raise MicroforgeError(f"targets must be finite numbers; expected {props.describe()}")
    return targets


class SamplingPipeline:
    """Base of the pipelines: subclasses set ``self.modules`` (name -> network) and implement
    :meth:`iter_batches` and ``condition_properties``."""

    modules: dict[str, torch.nn.Module]

    @property
    def condition_properties(self) -> PropertySet:
        raise NotImplementedError

    def iter_batches(
        self,
        targets: np.ndarray,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        batch_size: int = 16,
        seed: int = 0,
        brightness: float | None = None,
        progress: bool = False,
    ) -> Iterator[Generated]:
        raise NotImplementedError

    def to(self, device: str | torch.device) -> "SamplingPipeline":
        """Move every network to ``device`` (e.g. ``"cuda"``); returns self."""
        for m in self.modules.values():
            m.to(device)
        return self

    def check_options(
        self,
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        batch_size: int = 16,
        brightness: float | None = None,
    ) -> None:
        """Validate sampling options before anything is written; each error names the option
        (``--steps``, ``--guidance``, ``--seed``, ``--batch-size``, ``--brightness``)."""
        if steps is not None and (isinstance(steps, bool) or not 1 <= steps <= 10_000):
            raise MicroforgeError(f"--steps must be a whole number in 1..10000, got {steps}")
        if guidance_scale is not None:
            check_guidance(guidance_scale, "--guidance")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise MicroforgeError(f"--seed must be a whole number in 0..2^63-1, got {seed}")
        if isinstance(batch_size, bool) or not 1 <= batch_size <= 4096:
            raise MicroforgeError(f"--batch-size must be a whole number in 1..4096, got {batch_size}")
        if brightness is not None:
            if not getattr(getattr(self, "cfg", None), "brightness", False):
                raise MicroforgeError("--brightness: this model was not trained with a brightness condition")
            if not math.isfinite(brightness) or not -1.0 <= brightness <= 1.0:
                raise MicroforgeError(f"--brightness must lie in [-1, 1], got {brightness}")

    def check_targets(self, targets: np.ndarray) -> np.ndarray:
        """Validate raw targets ``(N, K)`` (or ``(K,)``): width, finiteness. Returns ``(N, K)`` float64."""
        return check_targets(targets, self.condition_properties)

    @torch.no_grad()
    def __call__(
        self,
        targets: np.ndarray,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        batch_size: int = 16,
        seed: int = 0,
        brightness: float | None = None,
        progress: bool = False,
    ) -> Generated:
        """Sample one micrograph (and map, where the model has one) per target row; see :meth:`iter_batches`."""
        return Generated.concatenate(
            list(self.iter_batches(targets, steps, guidance_scale, sampler, batch_size, seed, brightness, progress))
        )


def save_diffusers_module(module: torch.nn.Module, folder: Path) -> None:
    """Write a diffusers network (its ``config.json`` and safetensors weights) into ``folder``,
    without the ``_name_or_path`` that diffusers records on loading and writes back on saving: a
    saved model would otherwise carry the path of the run it was loaded from, on whatever machine
    made it. The saved folder is its own source."""
    module.save_pretrained(folder, safe_serialization=True)
    config = folder / "config.json"
    saved = json.loads(config.read_text())
    if saved.pop("_name_or_path", None) is not None:
        write_json_atomic(config, saved, indent=2)
