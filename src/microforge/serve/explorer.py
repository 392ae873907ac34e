"""The web explorer's logic, without HTTP: validate a request, sample, measure, record the run.

Every public method takes and returns plain JSON-able data, so the server is a thin layer and
the logic is tested without a browser. Bad input raises :class:`MicroforgeError` with a message
meant for the person at the page.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..characterize.lamellae import lamella_stats
from ..characterize.statistics import chord_lengths
from ..data.images import write_png
from ..data.outdir import OWNER_FILE, prepare_output_dir, read_owner, record_outputs, remove_owned
from ..data.phase_map import CLASS_NAMES, PRIMARY_ALPHA, SECONDARY_ALPHA, phase_fractions, to_pseudo_rgb
from ..io import to_uint8
from ..errors import MicroforgeError
from ..hull import feasible_interval, sample_in_hull
from ..models.property_regressor import PropertyRegressor
from ..pipelines.base import Generated
from ..pipelines.generate import hull_check, pixel_size_at, project_target
from ..pipelines.registry import load_pipeline, resolve_model
from ..properties import category_name, check_target_range, parse_property_mapping

_NEXT_DRAW = object()  # random_target without a seed: the next draw
DEFAULT_MAX_SAMPLES = 16  # per request: a page of results that a CPU draws in seconds
PROGRESS_BATCH = 4  # samples drawn per batch, so that the page can show progress between batches
KEPT_RUNS = 20  # finished runs kept for download; older ones are deleted


class Explorer:
    """A loaded model (and optional regressor) serving property targets from the web page.

    Parameters
    ----------
    model : model folder or ``bundled:NAME``.
    runs_dir : folder where each run's images and JSON are written for download.
    regressor : regressor folder (default: the model's ``regressor/`` when present; ``""``: none).
    max_samples : the most samples one request may ask for.
    """

    def __init__(
        self, model: str, runs_dir: str | Path, regressor: str | None = None, max_samples: int = DEFAULT_MAX_SAMPLES
    ) -> None:
        folder = resolve_model(model)
        if not folder.is_dir():
            raise MicroforgeError(f"{folder}: model folder not found")
        if not (folder / "properties.json").is_file():
            raise MicroforgeError(
                f"{folder / 'properties.json'}: not found; a model needs its properties.json to bound the sliders"
            )
        self.model_name = model
        self.pipe = load_pipeline(folder)
        self.props = self.pipe.condition_properties
        if regressor is None and (folder / "regressor").is_dir():
            regressor = str(folder / "regressor")
        self.regressor = PropertyRegressor.from_pretrained(regressor) if regressor else None
        if self.regressor is not None and self.regressor.properties.names != self.props.names:
            raise MicroforgeError(
                f"{regressor}: the regressor predicts {self.regressor.properties.names}, the model takes "
                f"{self.props.names}"
            )
        self.hull = np.asarray(self.pipe.properties.info.get("hull_points") or [], dtype=np.float64)
        self.max_samples = max_samples
        self.runs_dir = Path(runs_dir)
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise MicroforgeError(f"{self.runs_dir}: --runs-dir is a file, expected a folder")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.pixel_size_um = pixel_size_at(self.pipe.properties.info, self.pipe.cfg.resolution)
        self._lock = threading.Lock()  # one sampling at a time: the networks are shared
        self._random_draws = 0
        self._progress = {"done": 0, "total": 0, "running": False}  # of the sampling in progress

    # ------------------------------------------------------------------ requests

    def describe_model(self) -> dict[str, Any]:
        """What the page needs to draw its controls: one entry per property with unit, bounds and
        a default (the centre of the training hull), and the limits."""
        centre = (
            self.props.denormalise(self.hull.mean(0)) if len(self.hull) else (self.props.mins + self.props.maxs) / 2
        )
        return {
            "model": self.model_name,
            "resolution": self.pipe.cfg.resolution,
            "two_stage": self.pipe.cfg.two_stage,
            "modality": self.pipe.cfg.modality,
            "max_samples": self.max_samples,
            "has_regressor": self.regressor is not None,
            "has_hull": bool(len(self.hull)),
            "pixel_size_um": self.pixel_size_um,
            "properties": [
                {
                    "name": s.name,
                    "unit": s.unit,
                    "long_name": s.long_name,
                    "min": s.min,
                    "max": s.max,
                    "step": _step(s.min, s.max),
                    "default": float(c),
                    "categories": list(s.categories) if s.categories else None,
                }
                for s, c in zip(self.props.specs, centre)
            ],
        }

    def parse_target(self, raw: Any, allow_extrapolation: Any = False) -> np.ndarray:
        """A ``{name: value}`` mapping -> the raw vector ``(K,)``; values may be numbers, numeric text
        or category names. Refused, with a message naming the property: a missing or unknown name,
        text that is not a number, a boolean, NaN or infinity, and a value outside the model's range
        unless ``allow_extrapolation`` (the command line's rules: :func:`check_target_range`)."""
        if not isinstance(allow_extrapolation, bool):
            raise MicroforgeError(f"allow_extrapolation must be true or false, got {allow_extrapolation!r}")
        y = parse_property_mapping(raw, self.props)
        check_target_range(self.props, y, allow_extrapolation)
        return y

    def parse_count(self, raw: Any) -> int:
        """The number of samples asked for: a whole number in 1..max_samples (not a boolean)."""
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise MicroforgeError(f"the number of samples must be a whole number, got {raw!r}")
        try:
            value = float(raw)
            n = int(value)
        except (TypeError, ValueError, OverflowError):
            raise MicroforgeError(f"the number of samples must be a whole number, got {raw!r}") from None
        if value != n:
            raise MicroforgeError(f"the number of samples must be a whole number, got {raw!r}")
        if not 1 <= n <= self.max_samples:
            raise MicroforgeError(f"ask for 1 to {self.max_samples} samples at a time, not {n}")
        return n

    @staticmethod
    def parse_seed(raw: Any) -> int:
        """A seed: a whole number in 0..2^63-1 (not a boolean, not text)."""
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2**63:
            raise MicroforgeError(f"the seed must be a non-negative whole number, got {raw!r}")
        return raw

    def check(self, target: Any) -> dict[str, Any]:
        """Whether a target lies inside the training hull (and is valid), and for each continuous
        property the interval of values (raw units) that keeps it inside with the others fixed:
        ``[low, high]``, or ``None`` when no value does."""
        y = self.parse_target(target)
        out: dict[str, Any] = {"in_hull": bool(hull_check(self.pipe, y[None])[0])}
        if len(self.hull):
            x = self.props.normalise(y[None])[0]
            out["intervals"] = {}
            for j, spec in enumerate(self.props.specs):
                if spec.categories is not None:
                    continue
                span = feasible_interval(self.hull, x, j)
                if span is None:
                    out["intervals"][spec.name] = None
                    continue
                ends = np.repeat(x[None], 2, axis=0)  # the target with property j at each end, in raw units
                ends[:, j] = span
                out["intervals"][spec.name] = self.props.denormalise(ends)[:, j].tolist()
        return out

    def nearest(self, target: Any, locked: Any = None) -> dict[str, Any]:
        """The nearest target inside the training hull (normalised units), moving only the
        properties not in ``locked`` (a list of names): ``{"target", "moved", "locked"}``."""
        y = self.parse_target(target, allow_extrapolation=True)
        locked = [] if locked is None else locked
        if not isinstance(locked, list) or not all(isinstance(name, str) for name in locked):
            raise MicroforgeError(f"locked must be a list of property names, got {locked!r}")
        projected, record = project_target(self.pipe, y, [name.strip() for name in locked])
        return {
            "target": {s.name: category_name(s, v) for s, v in zip(self.props.specs, projected)},
            "moved": record["moved"],
            "locked": record["locked"],
        }

    def random_target(self, seed: Any = _NEXT_DRAW) -> dict[str, float]:
        """A target drawn uniformly inside the training hull (Algorithm 1); without ``seed``, the
        next of this explorer's draws. A given seed, ``None`` included, must be a valid seed."""
        if not len(self.hull):
            raise MicroforgeError("this model's properties.json has no hull points to sample from")
        if seed is _NEXT_DRAW:
            self._random_draws += 1
            seed = self._random_draws
        seed = self.parse_seed(seed)
        y = self.props.denormalise(sample_in_hull(self.hull, 1, np.random.default_rng(seed))[0])
        y = np.clip(y, self.props.mins, self.props.maxs)  # hull points lie in the range; rounding may not
        return {n: float(v) for n, v in zip(self.props.names, y)}

    def generate(self, request: dict[str, Any]) -> dict[str, Any]:
        """Sample ``request["n"]`` micrographs for ``request["target"]``; write them under a new run
        folder and return the run record (image URLs relative to the server root)."""
        if not isinstance(request, dict):
            raise MicroforgeError("the request must be a JSON object")
        y = self.parse_target(request.get("target"), request.get("allow_extrapolation", False))
        n = self.parse_count(request.get("n", 4))
        seed = self.parse_seed(request.get("seed", 0))
        inside = bool(hull_check(self.pipe, y[None])[0])
        with self._lock:
            t0 = time.perf_counter()
            self._progress = {"done": 0, "total": n, "running": True}
            parts = []
            try:
                for part in self.pipe.iter_batches(np.repeat(y[None], n, axis=0), batch_size=PROGRESS_BATCH, seed=seed):
                    parts.append(part)
                    self._progress = {"done": self._progress["done"] + len(part.images), "total": n, "running": True}
            finally:
                self._progress = {**self._progress, "running": False}
            g = Generated.concatenate(parts)
            seconds = time.perf_counter() - t0
            pred = self.regressor.predict(g.images) if self.regressor is not None else None
        run_id = uuid.uuid4().hex[:12]
        folder = self.runs_dir / run_id
        prepare_output_dir(folder, False, done_marker="run.json", command="serve", outputs=("run.json", "run.zip"))
        samples = []
        for i, image in enumerate(g.images):
            rec: dict[str, Any] = {"image": f"runs/{run_id}/sample_{i:02d}.png"}
            write_png(folder / f"sample_{i:02d}.png", to_uint8(image))
            if g.maps is not None:
                write_png(folder / f"sample_{i:02d}_map.png", to_pseudo_rgb(g.maps[i]))
                rec["map"] = f"runs/{run_id}/sample_{i:02d}_map.png"
                rec["descriptors"] = self.measure(g.maps[i])
            if pred is not None:
                rec["predicted"] = {name: float(v) for name, v in zip(self.props.names, pred[i])}
            samples.append(rec)
        run = {
            "run": run_id,
            "model": self.model_name,
            "target": {s.name: category_name(s, v) for s, v in zip(self.props.specs, y)},
            "units": {s.name: s.unit for s in self.props.specs},
            "in_hull": inside,
            "seed": seed,
            "n": n,
            "seconds": round(seconds, 2),
            "samples": samples,
            "download": f"runs/{run_id}/run.zip",
        }
        (folder / "run.json").write_text(json.dumps(run, indent=1) + "\n")
        self._zip(folder)
        record_outputs(folder)
        self._prune()
        return run

    def progress(self) -> dict[str, Any]:
        """How far the sampling in progress is: ``{"done": samples drawn, "total": asked, "running": bool}``."""
        return dict(self._progress)

    def measure(self, phase_map: np.ndarray) -> dict[str, Any]:
        """Descriptors of one stage-1 map a metallographer reads first."""
        fr = phase_fractions(phase_map)
        out: dict[str, Any] = {f"{n}_fraction": round(float(f), 4) for n, f in zip(CLASS_NAMES, fr)}
        chords = chord_lengths(phase_map == PRIMARY_ALPHA)
        lam = lamella_stats(phase_map == SECONDARY_ALPHA)
        scale, unit = (self.pixel_size_um, "um") if self.pixel_size_um else (1.0, "px")
        out[f"primary_alpha_mean_chord_{unit}"] = round(float(chords.mean()) * scale, 3) if chords.size else None
        out[f"lath_width_{unit}"] = round(float(lam.width_px) * scale, 3) if np.isfinite(lam.width_px) else None
        out["lath_orientation_spread_deg"] = (
            round(float(lam.orientation_spread_deg), 1) if np.isfinite(lam.orientation_spread_deg) else None
        )
        return out

    # ------------------------------------------------------------------ files

    def _zip(self, folder: Path) -> None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.iterdir()):
                if f.suffix in (".png", ".json") and not f.name.startswith("."):  # not the ownership record
                    z.write(f, f.name)
        (folder / "run.zip").write_bytes(buf.getvalue())

    def _prune(self) -> None:
        """Keep the newest KEPT_RUNS runs this explorer's kind wrote; any other folder in the runs
        folder (the user's own) is never touched."""
        runs = []
        for p in self.runs_dir.iterdir():
            try:
                record = read_owner(p) if p.is_dir() and not p.is_symlink() else None
            except MicroforgeError:
                record = None
            if record is not None and record.get("command") == "serve":
                runs.append(p)
        for old in sorted(runs, key=lambda p: p.stat().st_mtime)[:-KEPT_RUNS]:
            remove_owned(old, read_owner(old) or {"written": []})
            if {f.name for f in old.iterdir()} <= {OWNER_FILE}:
                shutil.rmtree(old)

    def run_file(self, relative: str) -> Path:
        """The file of a run named by ``runs/<id>/<name>``; anything else is refused."""
        parts = relative.split("/")
        if (
            len(parts) != 3
            or parts[0] != "runs"
            or not parts[1].isalnum()
            or "/" in parts[2]
            or parts[2].startswith(".")
        ):
            raise FileNotFoundError(relative)
        path = self.runs_dir / parts[1] / parts[2]
        if not path.is_file():
            raise FileNotFoundError(relative)
        return path


def _step(lo: float, hi: float) -> float:
    """A slider step: about 1/200 of the range, rounded to 1, 2 or 5 times a power of ten."""
    span = hi - lo
    if span <= 0:
        return 1.0
    raw = span / 200.0
    power = 10.0 ** math.floor(math.log10(raw))
    return float(min((m * power for m in (1, 2, 5, 10) if m * power >= raw), default=raw))
