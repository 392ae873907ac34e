"""Building the synthetic titanium benchmark dataset (``microforge data synth``).

Each specimen is a pure function of ``(config.seed, specimen index)``, so the benchmark is
deterministic whatever the number of worker processes, and an interrupted build resumes where it
stopped: a specimen counts as done once its part file under ``.parts/`` exists (written last,
atomically), and the manifest is assembled from the parts at the end.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...config import config_to_dict
from .config import SynthConfig
from ...errors import MicroforgeError
from ...properties import TITANIUM_PROPERTIES, PropertySet, PropertySpec
from ..images import write_png
from ..manifest import DatasetTable, read_dataset, write_manifest
from ..outdir import PARTS_DIR, prepare_output_dir, record_outputs
from ...io import to_uint8, write_json_atomic
from ..tiling import tile_origins
from .morphology import Microstructure, generate_microstructure
from .params import MORPHOLOGIES, SpecimenParams, sample_params
from .relations import noiseless_properties, specimen_properties
from .render import render

META_COLUMNS = ["morphology", "y", "x"]
SPECIMENS_NAME = "specimens.csv"


@dataclass
class Specimen:
    """One synthetic specimen: its parameters, properties, field and renderings."""

    id: str
    params: SpecimenParams
    properties: dict[str, float]  # with specimen noise (what a test would measure)
    true_properties: dict[str, float]  # the noiseless relations
    structure: Microstructure
    images: dict[str, np.ndarray]  # modality -> (H, W) float32 in [0, 1]


def specimen_id(index: int) -> str:
    return f"S{index:04d}"


def morphology_schedule(config: SynthConfig) -> list[str]:
    """Morphology of each specimen: counts proportional to the weights (largest remainder),
    shuffled by the seed, so that even a handful of specimens covers every weighted morphology."""
    names = [m for m in MORPHOLOGIES if config.morphology_weights.get(m, 0) > 0]
    w = np.array([config.morphology_weights[m] for m in names], dtype=np.float64)
    quota = w / w.sum() * config.n_specimens
    counts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - counts), kind="stable")[: config.n_specimens - counts.sum()]:
        counts[i] += 1
    schedule = [m for m, c in zip(names, counts) for _ in range(c)]
    order = np.random.default_rng([config.seed, 0x5EED]).permutation(len(schedule))
    return [schedule[i] for i in order]


def make_specimen(config: SynthConfig, index: int, morphology: str | None = None) -> Specimen:
    """Generate specimen ``index`` of the benchmark ``config`` (deterministic).

    ``morphology`` overrides the schedule (used by tests and figures).
    """
    if morphology is None:
        morphology = morphology_schedule(config)[index]
    rng = np.random.default_rng([config.seed, index])
    params = sample_params(rng, morphology)
    structure = generate_microstructure(params, (config.field_px, config.field_px), config.pixel_size_um, rng)
    images = {
        m: render(structure, m, np.random.default_rng([config.seed, index, i + 1]))
        for i, m in enumerate(("OM", "SEM"))
        if m in config.modalities
    }
    noise_rng = np.random.default_rng([config.seed, index, 99]) if config.specimen_noise else None
    return Specimen(
        specimen_id(index),
        params,
        specimen_properties(params, noise_rng),
        noiseless_properties(params),
        structure,
        images,
    )


def _write_specimen(out: Path, config: SynthConfig, index: int, morphology: str) -> None:
    """Generate one specimen, write its tiles and masks, then its part file (last, atomically)."""
    sp = make_specimen(config, index, morphology)
    rows = []
    for y, x in tile_origins(config.field_px, config.field_px, config.tile_size, config.overlap):
        window = (slice(y, y + config.tile_size), slice(x, x + config.tile_size))
        mask_rel = f"masks/{sp.id}/y{y:04d}_x{x:04d}.png"
        write_png(out / mask_rel, sp.structure.phase_map[window])
        for modality, image in sp.images.items():
            tile_rel = f"tiles/{sp.id}/{modality}_y{y:04d}_x{x:04d}.png"
            write_png(out / tile_rel, to_uint8(image[window]))
            rows.append(
                {
                    "tile": tile_rel,
                    "specimen": sp.id,
                    "modality": modality,
                    "mask": mask_rel,
                    **sp.properties,
                    "morphology": morphology,
                    "y": y,
                    "x": x,
                }
            )
    part = {
        "rows": rows,
        "specimen": {
            "specimen": sp.id,
            **sp.params.as_dict(),
            **{f"true_{k}": v for k, v in sp.true_properties.items()},
        },
    }
    write_json_atomic(out / PARTS_DIR / f"{sp.id}.json", part, indent=None)


def _write_specimen_star(args: tuple[Path, SynthConfig, int, str]) -> None:
    _write_specimen(*args)


def build_benchmark(
    out: str | Path,
    config: SynthConfig = SynthConfig(),
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetTable:
    """Build the benchmark into the folder ``out`` and return the validated dataset.

    Parameters
    ----------
    out : output folder (created). A finished dataset there is refused unless ``overwrite``; an
        unfinished build of the same config is resumed.
    config : what to build.
    workers : processes generating specimens in parallel (the output does not depend on it).
    progress : show a progress bar.
    """
    out = Path(out)
    resuming = prepare_output_dir(out, overwrite, command="data synth", outputs=(PARTS_DIR,))
    parts = out / PARTS_DIR
    parts.mkdir(exist_ok=True)
    config_json = json.dumps(config_to_dict(config), sort_keys=True)
    config_file = parts / "config.json"
    if resuming and config_file.exists() and config_file.read_text() != config_json:
        raise MicroforgeError(f"{out}: holds an unfinished benchmark with another config; pass --overwrite to restart")
    config_file.write_text(config_json)
    schedule = morphology_schedule(config)
    todo = [
        (out, config, i, schedule[i])
        for i in range(config.n_specimens)
        if not (parts / f"{specimen_id(i)}.json").exists()
    ]
    bar = tqdm(
        total=config.n_specimens,
        initial=config.n_specimens - len(todo),
        desc="synth specimens",
        disable=not progress,
        unit="specimen",
    )
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_write_specimen_star, todo):
                bar.update()
    else:
        for job in todo:
            _write_specimen_star(job)
            bar.update()
    bar.close()
    return _assemble(out, config)


def _assemble(out: Path, config: SynthConfig) -> DatasetTable:
    """Join the part files into manifest.csv, specimens.csv and properties.json; draw the contact sheet."""
    rows, specimens = [], []
    for i in range(config.n_specimens):
        part = json.loads((out / PARTS_DIR / f"{specimen_id(i)}.json").read_text())
        rows.extend(part["rows"])
        specimens.append(part["specimen"])
    table = pd.DataFrame(rows)
    pd.DataFrame(specimens).to_csv(out / SPECIMENS_NAME, index=False)
    specs = []
    for base in TITANIUM_PROPERTIES:
        values = table[base.name].to_numpy()
        specs.append(
            PropertySpec(base.name, base.unit, float(values.min()), float(values.max()), base.noise_std, base.long_name)
        )
    info = {
        "source": "microforge synthetic titanium benchmark",
        "pixel_size_um": config.pixel_size_um,
        "config": config_to_dict(config),
        "specimens_file": SPECIMENS_NAME,
    }
    props = PropertySet(specs, META_COLUMNS, info)
    write_manifest(out, table, props)
    dataset = read_dataset(out)
    from ..contact_sheet import synth_contact_sheet

    synth_contact_sheet(dataset, out / "contact_sheet.png")
    record_outputs(out)
    return dataset
