"""Save and load a plain ``nn.Module`` as ``config.json`` + ``model.safetensors``.

Loading never unpickles: the weights are read with safetensors, and every failure (missing,
truncated, tampered, wrong shapes) is a :class:`MicroforgeError` that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io import atomic_path, read_json_file, write_json_atomic
from ..errors import MicroforgeError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_weights(module: torch.nn.Module, folder: str | Path, config: dict[str, Any]) -> None:
    """Write ``config`` to ``folder/config.json`` and the state dict to ``folder/model.safetensors``,
    each through a temporary file and a rename, so a killed process never leaves half a file."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(tmp))
    write_json_atomic(folder / CONFIG_NAME, config, indent=2)


def read_config(folder: str | Path, model_type: str, what: str) -> dict[str, Any]:
    """``folder/config.json`` as a dict, checked to be of ``model_type`` (``what`` names the model
    kind in errors)."""
    path = Path(folder) / CONFIG_NAME
    raw = read_json_file(path, what)
    if raw.get("model_type") != model_type:
        raise MicroforgeError(f"{path}: model_type is {raw.get('model_type')!r}, expected {model_type!r}")
    return raw


def load_weights(module: torch.nn.Module, folder: str | Path) -> torch.nn.Module:
    """Fill ``module`` from ``folder/model.safetensors`` (strict) and put it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise MicroforgeError(f"{path}: not found")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MicroforgeError(f"{path}: cannot be read as safetensors ({exc})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MicroforgeError(f"{path}: weights do not match the model's config ({str(exc).splitlines()[0]})") from None
    return module.eval()
