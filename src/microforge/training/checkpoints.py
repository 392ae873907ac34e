"""Atomic, resumable checkpoints for the plain-PyTorch trainers (regressor, baselines).

A checkpoint is a folder ``step_<n>``: each network's weights as safetensors (``<name>/``) and
the optimiser and schedule states in ``optimizer.pt``, written to a temporary folder and renamed,
so a killed process leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..data.digest import data_digests
from ..data.outdir import check_run_folder, claim_run_folder
from ..errors import MicroforgeError
from ..models.weights import load_weights, save_weights


def save_checkpoint(
    ckdir: Path,
    step: int,
    modules: Mapping[str, torch.nn.Module],
    states: Mapping[str, Any],
    keep: int = 1,
    seconds: float | None = None,
) -> None:
    """Write ``ckdir/step_<step>`` with every module's weights and the ``states`` (optimisers,
    schedules: anything with ``state_dict``), then delete all but the newest ``keep``. ``seconds``:
    the training time its ``step`` steps took, over every run (``step.json`` records it; a resumed
    run adds its own to it, so a phase's record counts the whole phase, not only its last run)."""
    tmp, final = ckdir / f".tmp_step_{step:07d}", ckdir / f"step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    for name, module in modules.items():
        save_weights(module, tmp / name, {"step": step})
    torch.save({name: s.state_dict() for name, s in states.items()}, tmp / "optimizer.pt")
    record = {"step": step} if seconds is None else {"step": step, "seconds": round(seconds, 3)}
    (tmp / "step.json").write_text(json.dumps(record))
    shutil.rmtree(final, ignore_errors=True)  # a resumed run may write the same step again
    os.replace(tmp, final)
    for old in sorted(ckdir.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def newest_checkpoint(ckdir: Path) -> Path | None:
    """The newest ``step_<n>`` folder in ``ckdir`` (the step numbers are zero-padded, so the names
    sort by step), or ``None`` when there is none."""
    done = sorted(ckdir.glob("step_*"))
    return done[-1] if done else None


def load_checkpoint(ckdir: Path, modules: Mapping[str, torch.nn.Module], states: Mapping[str, Any]) -> int:
    """Restore the newest checkpoint in ``ckdir`` into ``modules`` and ``states``; return its
    step (0 when there is none). Weights load through safetensors; ``optimizer.pt`` with
    ``weights_only=True`` (tensors and numbers only: nothing executes)."""
    latest = newest_checkpoint(ckdir)
    if latest is None:
        return 0
    if not (latest / "optimizer.pt").is_file():  # TiM3 runs checkpointed through accelerate's save_state before
        raise MicroforgeError(
            f"{latest}: a checkpoint in an older format (no optimizer.pt) that this version cannot resume; "
            f"delete {ckdir} to train this phase again from its start"
        )
    for name, module in modules.items():
        load_weights(module, latest / name)
        module.train()
    try:
        saved = torch.load(latest / "optimizer.pt", weights_only=True)
    except Exception as exc:
        raise MicroforgeError(f"{latest / 'optimizer.pt'}: cannot be loaded ({exc.__class__.__name__})") from None
    for name, s in states.items():
        s.load_state_dict(saved[name])
    return int(json.loads((latest / "step.json").read_text())["step"])


def checkpoint_seconds(ckdir: Path) -> float | None:
    """The training seconds the newest checkpoint in ``ckdir`` records for its steps: 0.0 when there
    is no checkpoint, ``None`` when it was written by a version that did not record them."""
    latest = newest_checkpoint(ckdir)
    if latest is None:
        return 0.0
    seconds = json.loads((latest / "step.json").read_text()).get("seconds")
    return None if seconds is None else float(seconds)


RUN_DATA = "run_data.json"  # the datasets a run started on, by content digest, checked on --resume


def _started_digests(path: Path) -> list[str] | None:
    """The data digests ``run_data.json`` recorded at a run's first start (``None``: a run started
    before the record existed); an unreadable record is an error that names it."""
    if not path.exists():
        return None
    try:
        digests = json.loads(path.read_text())["data_digest"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        digests = None
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise MicroforgeError(f"{path}: unreadable; it should hold the data_digest list the run started on")
    return digests


def check_run_dir(out: Path, done_marker: str, what: str, resume: bool, config: dict[str, Any]) -> None:
    """Check a training run folder before the data are read or anything is written: a finished
    one (holding ``done_marker``) is refused; an unfinished one is continued only with ``resume``
    and the config it was started with."""
    if (out / done_marker).exists():
        raise MicroforgeError(f"{out}: already holds a trained {what}; choose another folder")
    if check_run_folder(out) and not resume:
        raise MicroforgeError(f"{out}: holds an unfinished run; pass --resume to continue it, or choose another folder")
    saved = out / "run_config.json"
    if resume and saved.exists() and json.loads(saved.read_text()) != config:
        raise MicroforgeError(f"{out}: was started with another config; resume with the same --config")


def check_run_data(out: Path, data: Mapping[str, str]) -> None:
    """Refuse to continue a run on datasets other than those it was started on: ``data`` holds
    each dataset's path and :func:`~microforge.data.digest.dataset_digest`, in order, and must
    have the digests of ``run_data.json`` where the run folder has one."""
    was = _started_digests(out / RUN_DATA)
    if was is not None and was != list(data.values()):
        raise MicroforgeError(
            f"{out}: was started on another dataset ({', '.join(was)}); {', '.join(data)} holds "
            f"{', '.join(data.values())}; resume with the same --data"
        )


def start_run_dir(out: Path, what: str, config: dict[str, Any], data: Mapping[str, str]) -> None:
    """Claim a checked run folder (:func:`check_run_dir`, :func:`check_run_data`) and record
    ``config`` in ``run_config.json`` and ``data``'s paths and digests in ``run_data.json``."""
    claim_run_folder(out, f"train {what}")
    (out / "run_config.json").write_text(json.dumps(config, indent=2) + "\n")
    record = {"data": list(data), "data_digest": list(data.values())}
    (out / RUN_DATA).write_text(json.dumps(record, indent=2) + "\n")


def prepare_run_dir(
    out: Path,
    done_marker: str,
    what: str,
    resume: bool,
    config: dict[str, Any],
    datasets: Sequence[str | Path],
    progress: bool = False,
) -> dict[str, str]:
    """For a trainer in one process: :func:`check_run_dir`, then the datasets' content digests
    (a progress bar with ``progress``), :func:`check_run_data` and :func:`start_run_dir`. Returns
    each dataset's path and digest, for the model's record."""
    check_run_dir(out, done_marker, what, resume, config)
    data = data_digests(*datasets, progress=progress)
    check_run_data(out, data)
    start_run_dir(out, what, config, data)
    return data
