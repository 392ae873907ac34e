"""The ``microforge`` command line: a thin layer over the library.

Every user error surfaces as one line, ``Error: ...``, and exit code 1; never a traceback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import click


from .errors import MicroforgeError
from .evaluate.options import STEPS_SWEEP, EvaluationOptions
from .training.segmenter_config import SegmenterTrainConfig


class _Group(click.Group):
    """A click group that turns :class:`MicroforgeError` into a one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MicroforgeError as exc:
            raise click.ClickException(str(exc)) from None


class _Root(_Group):
    """The top group: a usage error (an option that is not a number, an unknown option) is one
    line too, ``Error: ...`` naming the option, and exit code 1 like every other bad input,
    instead of click's usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            raise SystemExit(1) from None
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            raise SystemExit(1) from None
        raise SystemExit(result if isinstance(result, int) else 0)


def _csv_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _mapping(items: tuple[str, ...], option: str, number: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MicroforgeError(f"{option} {item!r}: expected NAME=VALUE")
        if number:
            try:
                out[key] = float(value)
            except ValueError:
                raise MicroforgeError(f"{option} {item!r}: {value!r} is not a number") from None
        else:
            out[key] = value
    return out


class _Number(click.ParamType):
    """A finite real number, optionally within [lo, hi]: NaN, infinities and values outside are
    refused by name (click's FloatRange lets NaN through)."""

    name = "number"

    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            self.fail(f"{value!r} is not in {self.lo:g}..{self.hi:g}", param, ctx)
        return number


SEED = click.IntRange(0, 2**63 - 1)  # numpy's SeedSequence and torch's generators take any non-negative seed below 2^63
COUNT = click.IntRange(1, 10**6)  # sample, tile and step counts: a million is far beyond any CPU run
STEPS = click.IntRange(1, 10_000)  # sampling steps
BATCH = click.IntRange(1, 4096)
# config.GUIDANCE_MAX, written out: config imports numpy, which must load after main() sets the threads
# (tests/test_defaults.py checks that the two agree)
GUIDANCE = _Number(0.0, 100.0)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="microforge", prog_name="microforge")
def cli() -> None:
    """microforge: generate alloy micrographs from target properties, and measure them."""


# ----------------------------------------------------------------------------------- data


@cli.group(cls=_Group)
def data() -> None:
    """Build, import and inspect datasets."""


@data.command("synth")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder to write.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML SynthConfig (see configs/synth-default.yaml).",
)
@click.option("--specimens", "n_specimens", type=click.IntRange(1, 100_000), help="Number of specimens [100].")
@click.option("--field-px", type=click.IntRange(8, 16_384), help="Side of each specimen's field, px [640].")
@click.option("--tile-size", type=click.IntRange(8, 4096), help="Tile side, px [128].")
@click.option("--overlap", type=click.IntRange(0, 4095), help="Overlap of neighbouring tiles, px [0].")
@click.option("--modality", type=click.Choice(["OM", "SEM", "both"]), help="Renderings to write [both].")
@click.option("--seed", type=SEED, help="Seed; the benchmark is a pure function of the config [0].")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=max(1, min(4, os.cpu_count() or 1)),
    show_default=True,
    help="Processes.",
)
@click.option("--overwrite", is_flag=True, help="Replace a finished dataset in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_synth(
    out: Path, config_path: Path | None, modality: str | None, workers: int, overwrite: bool, quiet: bool, **fields: Any
) -> None:
    """Build the synthetic titanium benchmark (resumes an interrupted build)."""
    from .config import load_config
    from .data.synth.config import SynthConfig
    from .data.synth.benchmark import build_benchmark

    if modality is not None:
        fields["modalities"] = ("OM", "SEM") if modality == "both" else (modality,)
    config = load_config(SynthConfig, config_path, **fields)
    dataset = build_benchmark(out, config, workers=workers, overwrite=overwrite, progress=not quiet)
    n_spec = dataset.table["specimen"].nunique()
    click.echo(f"wrote {len(dataset)} tiles of {n_spec} specimens to {out}")
    click.echo(f"contact sheet: {out / 'contact_sheet.png'}")


@data.command("import")
@click.option(
    "--images", required=True, type=click.Path(path_type=Path), help="Folder the table's image paths are relative to."
)
@click.option("--table", required=True, type=click.Path(path_type=Path), help="CSV with one row per micrograph.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder to write.")
@click.option("--key", "key_column", help="Column of image paths [first of file,image,filename,micrograph,path].")
@click.option("--specimen-column", help="Column naming each image's specimen [the file name].")
@click.option("--properties", help="Comma-separated condition columns [all columns not otherwise used].")
@click.option("--categorical", help="Comma-separated property columns holding labels (coded 0..n-1).")
@click.option("--unit", "units", multiple=True, help="NAME=UNIT, repeatable.")
@click.option("--noise-std", "noise_std", multiple=True, help="NAME=STD training noise, repeatable.")
@click.option("--meta-columns", help="Comma-separated columns to keep in the manifest as metadata.")
@click.option("--mask-column", help="Column of mask paths (empty cell: no mask).")
@click.option("--masks-dir", type=click.Path(path_type=Path), help="Folder mask paths are relative to [--images].")
@click.option(
    "--mask-type",
    default="index",
    show_default=True,
    help="Mask format: index, pseudo_rgb, binary_white_is_beta, rgb_green_alpha_blue_beta_red_secondary_alpha.",
)
@click.option("--mask-type-column", help="Column giving each row's mask format.")
@click.option("--modality", default="SEM", show_default=True, help="OM or SEM for all images.")
@click.option("--modality-column", help="Column giving each row's modality.")
@click.option("--tile-size", default=128, show_default=True, type=click.IntRange(8, 4096), help="Tile side, px.")
@click.option(
    "--overlap", default=0, show_default=True, type=click.IntRange(0, 4095), help="Overlap of neighbouring tiles, px."
)
@click.option(
    "--crop", help="Pixels cut from each edge first: top,bottom,left,right (e.g. 0,24,0,0 drops a scale bar)."
)
@click.option(
    "--scale", default=1.0, show_default=True, type=_Number(1e-3, 100.0), help="Resampling factor after cropping."
)
@click.option(
    "--percentile",
    "upper_percentile",
    default=90.0,
    show_default=True,
    type=_Number(0.0, 100.0),
    help="Grey level mapped to white.",
)
@click.option(
    "--lower-percentile", default=0.0, show_default=True, type=_Number(0.0, 100.0), help="Grey level mapped to black."
)
@click.option("--overwrite", is_flag=True, help="Replace a finished dataset in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_import(**kw: Any) -> None:
    """Tile and normalise micrographs with a property table into a dataset."""
    from .data.importer import ImportOptions, import_dataset
    from .data.tiling import Crop

    quiet = kw.pop("quiet")
    opt = ImportOptions(
        images=kw["images"],
        table=kw["table"],
        out=kw["out"],
        key_column=kw["key_column"],
        specimen_column=kw["specimen_column"],
        properties=_csv_list(kw["properties"]),
        categorical=_csv_list(kw["categorical"]) or [],
        units=_mapping(kw["units"], "--unit"),
        noise_std=_mapping(kw["noise_std"], "--noise-std", number=True),
        meta_columns=_csv_list(kw["meta_columns"]) or [],
        mask_column=kw["mask_column"],
        masks_dir=kw["masks_dir"],
        mask_type=kw["mask_type"],
        mask_type_column=kw["mask_type_column"],
        modality=kw["modality"],
        modality_column=kw["modality_column"],
        tile_size=kw["tile_size"],
        overlap=kw["overlap"],
        crop=Crop.parse(kw["crop"]),
        scale=kw["scale"],
        upper_percentile=kw["upper_percentile"],
        lower_percentile=kw["lower_percentile"],
        overwrite=kw["overwrite"],
    )
    dataset = import_dataset(opt, progress=not quiet, warn=lambda m: click.echo(f"warning: {m}", err=True))
    click.echo(f"wrote {len(dataset)} tiles of {dataset.table['specimen'].nunique()} specimens to {opt.out}")
    if not len(dataset.properties):
        click.echo(
            "no property columns: an unlabelled dataset (fingerprints, characterize, DDPM; the conditional "
            "models need properties)"
        )


@data.command("info")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--seed", default=0, show_default=True, type=SEED, help="Split seed.")
@click.option(
    "--digest",
    is_flag=True,
    help="Also print the content digest (SHA-256 of the table and the decoded pixels) that trained models "
    "and evaluations record, to check that two copies of a dataset are the same.",
)
def data_info(dataset: Path, seed: int, digest: bool) -> None:
    """Summarise a dataset: tiles, specimens, splits and property ranges."""
    from .data.dataset import split_specimens
    from .data.manifest import read_dataset

    ds = read_dataset(dataset)
    t = ds.table
    splits = split_specimens(t["specimen"], seed=seed)
    click.echo(
        f"{dataset}: {len(t)} tiles, {t['specimen'].nunique()} specimens, modalities "
        f"{', '.join(sorted(set(t['modality'])))}"
    )
    click.echo("split (specimens): " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    click.echo(f"masks: {(t['mask'] != '').sum()} of {len(t)} tiles")
    for s in ds.properties.specs:
        extra = f"  categories: {', '.join(s.categories)}" if s.categories else ""
        click.echo(f"  {s.label:<22} {s.min:10.4g} .. {s.max:<10.4g} noise std {s.noise_std:g}{extra}")
    if digest:
        from .data.digest import dataset_digest

        click.echo(f"content digest: {dataset_digest(ds, progress=True)}")


@data.command("sheet")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
@click.option(
    "--per-morphology",
    default=2,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Specimens per morphology (synthetic data).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def data_sheet(dataset: Path, out: Path, per_morphology: int, overwrite: bool) -> None:
    """Draw a contact sheet of a synthetic benchmark (maps, OM and SEM per morphology)."""
    from .data.contact_sheet import synth_contact_sheet
    from .data.manifest import read_dataset
    from .data.outdir import check_output_file

    ds = read_dataset(dataset)
    check_output_file(out, overwrite, (".png",))
    if "morphology" not in ds.table.columns:
        raise MicroforgeError(f"{dataset}: not a synthetic benchmark (no morphology column)")
    synth_contact_sheet(ds, out, per_morphology)
    click.echo(f"wrote {out}")


# ---------------------------------------------------------------------- train / generate


def _training_options(config_file: str, data_help: str = "Dataset folder.", out_help: str = "Model folder to write."):
    """The options every training command shares: --data, --config, --out, --resume, --quiet."""

    def apply(f):
        for option in reversed(
            [
                click.option("--data", required=True, type=click.Path(path_type=Path), help=data_help),
                click.option(
                    "--config",
                    "config_path",
                    type=click.Path(path_type=Path),
                    help=f"YAML config [{config_file} defaults].",
                ),
                click.option("--out", required=True, type=click.Path(path_type=Path), help=out_help),
                click.option(
                    "--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint."
                ),
                click.option("--quiet", is_flag=True, help="No progress bar."),
            ]
        ):
            f = option(f)
        return f

    return apply


@cli.group(cls=_Group)
def train() -> None:
    """Train a model: TiM3, the property regressor, and the CCDM, CcGAN, DDPM and ACWGAN-GP baselines."""


def _warn_bf16(asked: bool) -> None:
    """Warn, on stderr, where a config asks for bf16 autocast on a CPU that would emulate it."""
    from .cpu_features import bf16_warning

    message = bf16_warning(asked)
    if message is not None:
        click.echo(f"warning: {message}", err=True)


@train.command("tim3")
@_training_options(
    "configs/tim3-tiny.yaml", "Dataset folder (with phase maps for two-stage).", "Run folder; becomes the model folder."
)
def train_tim3_cmd(data: Path, config_path: Path | None, out: Path, resume: bool, quiet: bool) -> None:
    """Train TiM3 (autoencoders, stage 1, stage 2) under accelerate.

    Several processes or machines: accelerate launch -m microforge train tim3 ...
    """
    from .models.tim3 import load_tim3_config
    from .training.tim3_trainer import phases, train_tim3

    cfg = load_tim3_config(config_path)
    _warn_bf16(bool(cfg.train.bf16_stages))
    train_tim3(data, out, cfg, resume=resume, progress=not quiet)
    click.echo(f"trained TiM3 -> {out}")
    click.echo(_training_minutes(out, phases(cfg)))


def _training_minutes(model: Path, order: list[str]) -> str:
    """One line: each phase's training time in minutes as the model's config.json records it (over
    every run that trained it; "reused" where the phase was copied from another model), in the
    training's phase ``order`` (config.json sorts them by name), and the sum."""
    from .io import read_json_file
    from .training.loop import recorded_seconds

    training = read_json_file(model / "config.json", "a trained TiM3 model").get("training", {})
    ranked = sorted(training.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    parts = [
        f"{phase} {recorded_seconds(r) / 60:.1f}" + (" (reused)" if "reused_from" in r else "") for phase, r in ranked
    ]
    total = sum(recorded_seconds(r) for r in training.values()) / 60
    return f"training minutes, as config.json records them: {', '.join(parts)}; {total:.1f} in all"


def _train_baseline(kind: str, data: Path, config_path: Path | None, out: Path, resume: bool, quiet: bool) -> None:
    from .io import read_yaml_mapping
    from .models.baselines import baseline_config_from_dict
    from .training.baseline_trainer import train_baseline

    raw = read_yaml_mapping(config_path) if config_path else {}
    if raw.get("kind", kind) != kind:
        raise MicroforgeError(f"{config_path}: is a {raw['kind']} config, not {kind}")
    cfg = baseline_config_from_dict({**raw, "kind": kind}, str(config_path or f"{kind} defaults"))
    train_baseline(data, out, cfg, resume=resume, progress=not quiet)
    click.echo(f"trained {kind} -> {out}")


for _kind, _what in (
    ("ccdm", "CCDM: a conditional diffusion model trained with the hard vicinal loss"),
    ("ccgan", "CcGAN: a conditional GAN with the hard vicinal discriminator loss, on every property"),
    ("ddpm", "the unconditional DDPM of Lee & Yun (T = 4000, learned variance, hybrid loss)"),
    ("acwgan-gp", "ACWGAN-GP (Howland et al.): a category and low/mid/high bins of one property"),
):

    @train.command(_kind, help=f"Train {_what} (configs/{_kind}-*.yaml).")
    @_training_options(f"configs/{_kind}-tiny.yaml")
    def _train_kind(
        data: Path, config_path: Path | None, out: Path, resume: bool, quiet: bool, _kind: str = _kind
    ) -> None:
        _train_baseline(_kind, data, config_path, out, resume, quiet)


@train.command("regressor")
@_training_options(
    "configs/regressor-tiny.yaml", "Dataset folder with the properties to learn.", "Regressor folder to write."
)
def train_regressor_cmd(data: Path, config_path: Path | None, out: Path, resume: bool, quiet: bool) -> None:
    """Train the property regressor F (ResNet-18, eq. 12 gamma/contrast augmentation).

    It judges property accuracy in `microforge evaluate`; put it in a TiM3 model folder as
    `regressor/` to have it used by default.
    """
    from .config import load_config
    from .training.regressor_trainer import RegressorTrainConfig, train_regressor

    metrics = train_regressor(
        data, out, load_config(RegressorTrainConfig, config_path), resume=resume, progress=not quiet
    )
    test = metrics["test"]
    click.echo(
        f"trained the regressor -> {out}; test specimens: mAcc {test['mAcc']:.3f}, "
        + ", ".join(f"Acc_{g} {v:.3f}" for g, v in test["acc"].items())
    )


_EVAL = EvaluationOptions()  # the source of evaluate's defaults


@cli.command("evaluate")
@click.option("--model", default="bundled:ti-sem-tiny", show_default=True, help="TiM3 model folder, or bundled:NAME.")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset the model was trained on (the real reference).",
)
@click.option(
    "--report", required=True, type=click.Path(path_type=Path), help="Folder for index.html, metrics.json and figures."
)
@click.option("--regressor", help="Property regressor folder [the model's regressor/ when present].")
@click.option(
    "-n",
    "n",
    default=_EVAL.n,
    show_default=True,
    type=click.IntRange(4, 10**6),
    help="Generated samples (targets drawn inside the training hull).",
)
@click.option(
    "--n-reference",
    default=_EVAL.n_reference,
    show_default=True,
    type=click.IntRange(4, 10**6),
    help="Real tiles in the reference set.",
)
@click.option(
    "--n-describe",
    default=_EVAL.n_describe,
    show_default=True,
    type=click.IntRange(0, 10**6),
    help="Samples per set measured with every descriptor.",
)
@click.option("--batch-size", default=_EVAL.batch_size, show_default=True, type=BATCH)
@click.option("--steps", type=STEPS, help="Sampling steps [the model's sampling_steps; bundled TiM3: 10].")
@click.option(
    "--guidance", "guidance_scale", type=GUIDANCE, help="Classifier-free guidance (TiM3: both stages) [the model's]."
)
@click.option("--seed", default=_EVAL.seed, show_default=True, type=SEED)
@click.option("--sweep-steps", is_flag=True, help=f"Also the DDIM-steps sweep ({', '.join(map(str, STEPS_SWEEP))}).")
@click.option(
    "--brightness", is_flag=True, help="Also the 21-level brightness experiment (models trained with brightness)."
)
@click.option("--ablation", multiple=True, help="NAME=MODEL: another model scored on the same targets, repeatable.")
@click.option(
    "--n-sweep",
    default=_EVAL.n_sweep,
    show_default=True,
    type=COUNT,
    help="Samples per sweep point and per ablation model.",
)
@click.option("--fingerprint", help="Fingerprint VAE folder: adds the Fréchet distance on its fingerprints.")
@click.option(
    "--no-fid", is_flag=True, help="Skip FID, KID and precision/recall (for machines without the Inception weights)."
)
@click.option("--overwrite", is_flag=True, help="Replace a finished report in --report.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate_cmd(
    model: str,
    data: Path,
    report: Path,
    regressor: str | None,
    n: int,
    n_reference: int,
    n_describe: int,
    batch_size: int,
    steps: int | None,
    guidance_scale: float | None,
    seed: int,
    sweep_steps: bool,
    brightness: bool,
    ablation: tuple[str, ...],
    n_sweep: int,
    fingerprint: str | None,
    no_fid: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Score a TiM3 model: property accuracy, FID/KID/precision/recall, microstructure, copying.

    Writes REPORT/index.html and REPORT/metrics.json. An interrupted run continues when started
    again with the same options.
    """
    from .evaluate.run import evaluate

    opts = EvaluationOptions(
        n=n,
        n_reference=n_reference,
        n_describe=n_describe,
        batch_size=batch_size,
        steps=steps,
        guidance_scale=guidance_scale,
        seed=seed,
        sweep_steps=STEPS_SWEEP if sweep_steps else (),
        n_sweep=n_sweep,
        brightness=brightness,
        fingerprint=fingerprint,
        fid=not no_fid,
        ablation={k: str(v) for k, v in _mapping(ablation, "--ablation").items()},
    )
    m = evaluate(model, data, report, opts, regressor, overwrite, progress=not quiet)
    main = m["main"]
    acc = main.get("accuracy")
    parts = (
        []
        if main["fid"] is None
        else [
            f"FID {main['fid']:.2f}, KID {main['kid_mean']:.4f}, precision {main['precision']:.3f}, recall "
            f"{main['recall']:.3f}"
        ]
    )
    parts += [f"mAcc {acc['mAcc']:.3f}"] if acc else []
    click.echo(", ".join(parts) or "scored (no FID, no regressor)")
    click.echo(f"report -> {report / 'index.html'}")


@cli.command("report")
@click.argument("folder", type=click.Path(path_type=Path))
def report_cmd(folder: Path) -> None:
    """Re-render FOLDER/index.html from FOLDER/metrics.json and the figures already drawn.

    FOLDER is the --report folder of a finished `microforge evaluate`; no model and no data are
    read, so a report can be re-rendered after the model or the dataset has moved.
    """
    from .evaluate.report import rerender_report

    click.echo(f"report -> {rerender_report(folder)}")


@cli.command("generate")
@click.option("--model", default="bundled:ti-sem-tiny", show_default=True, help="Model folder, or bundled:NAME.")
@click.option("--prop", "props", multiple=True, help="NAME=VALUE for every property of the model, repeatable.")
@click.option("-n", "n", default=8, show_default=True, type=click.IntRange(1, 10_000), help="Samples per target.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--steps", type=STEPS, help="Denoising steps [the model's sampling_steps; bundled TiM3: 10].")
@click.option(
    "--guidance", "guidance_scale", type=GUIDANCE, help="Classifier-free guidance (TiM3: both stages) [the model's]."
)
@click.option("--sampler", type=click.Choice(["ddim", "dpm++"]), help="Sampler [the model's, ddim].")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--batch-size", default=16, show_default=True, type=BATCH)
@click.option(
    "--brightness",
    type=_Number(-1.0, 1.0),
    help="Target brightness in [-1, 1]: -1 the darkest training tile's mean grey, "
    "1 the brightest's (models trained with it).",
)
@click.option("--allow-extrapolation", is_flag=True, help="Sample targets outside the model's property range too.")
@click.option(
    "--nearest-feasible",
    is_flag=True,
    help="Move the target to the nearest one inside the training hull first "
    "(normalised units); run.json records the projection.",
)
@click.option(
    "--lock",
    "locked",
    multiple=True,
    metavar="NAME",
    help="With --nearest-feasible: keep this property as given, repeatable.",
)
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate_cmd(
    model: str,
    props: tuple[str, ...],
    n: int,
    out: Path,
    steps: int | None,
    guidance_scale: float | None,
    sampler: str | None,
    seed: int,
    batch_size: int,
    brightness: float | None,
    allow_extrapolation: bool,
    nearest_feasible: bool,
    locked: tuple[str, ...],
    overwrite: bool,
    quiet: bool,
) -> None:
    """Generate micrographs (and their stage-1 maps) for a property target."""
    from .pipelines.generate import generate, project_target
    from .pipelines.registry import load_pipeline, resolve_model
    from .properties import check_target_range, parse_property_assignments

    if locked and not nearest_feasible:
        raise MicroforgeError("--lock needs --nearest-feasible")
    pipe = load_pipeline(resolve_model(model))
    target = parse_property_assignments(list(props), pipe.condition_properties)
    check_target_range(pipe.condition_properties, target, allow_extrapolation)
    record = None
    if nearest_feasible:
        target, projection = project_target(pipe, target, locked)
        record = {"projection": projection}
        units = {s.name: s.unit for s in pipe.condition_properties.specs}
        moved = ", ".join(
            f"{k} {v:+.4g}{' ' + units[k] if units.get(k) else ''}" for k, v in projection["moved"].items()
        )
        click.echo(f"nearest feasible target: {moved or 'the target is already inside the hull'}", err=True)
    run = generate(
        model,
        target[None],
        n,
        out,
        steps=steps,
        guidance_scale=guidance_scale,
        sampler=sampler,
        seed=seed,
        batch_size=batch_size,
        brightness=brightness,
        overwrite=overwrite,
        progress=not quiet,
        pipe=pipe,
        record=record,
    )
    if not run["in_training_hull"][0]:
        click.echo(
            "warning: the target lies outside the convex hull of the training data's properties; "
            "the model extrapolates and the result may not honour the target",
            err=True,
        )
    click.echo(
        f"wrote {len(run['samples'])} samples in {run['seconds']} s -> {out} (contact sheet: "
        f"{out / 'contact_sheet.png'})"
    )


@cli.command("serve")
@click.option("--model", default="bundled:ti-sem-tiny", show_default=True, help="TiM3 model folder, or bundled:NAME.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; the default serves this machine only."
)
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--regressor", help="Property regressor folder [the model's regressor/ when present].")
@click.option(
    "--max-samples",
    default=16,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Most samples one request may ask for.",
)
@click.option(
    "--runs-dir", type=click.Path(path_type=Path), help="Where runs are kept for download [a temporary folder]."
)
def serve_cmd(model: str, host: str, port: int, regressor: str | None, max_samples: int, runs_dir: Path | None) -> None:
    """Explore property targets in the browser: sliders, samples, maps, descriptors, download."""
    import tempfile
    import time

    from .serve.explorer import Explorer
    from .serve.server import start_server

    with tempfile.TemporaryDirectory(prefix="microforge-serve-") as tmp:
        explorer = Explorer(model, runs_dir or tmp, regressor, max_samples)
        server, _ = start_server(explorer, host, port)
        click.echo(f"microforge explorer on http://{host}:{server.server_port}/  (Ctrl+C stops it)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.shutdown()


@cli.group(cls=_Group)
def fingerprint() -> None:
    """Microstructure fingerprints: train White et al.'s ResNet18-VAE; encode and explore it,
    Inception features or descriptors."""


@fingerprint.command("train")
@_training_options("configs/fingerprint-tiny.yaml")
def fingerprint_train(data: Path, config_path: Path | None, out: Path, resume: bool, quiet: bool) -> None:
    """Train the VAE (loss: alpha BCE + (1 - alpha) spectral + beta KL); with refiner_steps in the config,
    then a detail refiner that draws the laths its reconstructions blur away."""
    from .fingerprint import load_fingerprint_config, train_fingerprints

    cfg = load_fingerprint_config(config_path)
    _warn_bf16(cfg.autocast == "bf16")
    train_fingerprints(data, out, cfg, resume=resume, progress=not quiet)
    click.echo(f"trained the fingerprint model -> {out}")


# fingerprint.KINDS, written out here so that --help imports no torch (a test keeps them equal)
FINGERPRINT_KINDS = ("vae", "vae-d4", "inception", "descriptors")
_KIND_HELP = (
    "vae: White et al.'s VAE (needs --model); vae-d4: the same VAE's fingerprints under the 8 rotations and "
    "reflections of the square, pooled to their mean and standard deviation (needs --model); "
    "inception: the FID network's pool features; "
    "descriptors: the segmented micrograph's statistics."
)


@fingerprint.command("encode")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(FINGERPRINT_KINDS), default="vae", show_default=True, help=_KIND_HELP)
@click.option("--model", type=click.Path(path_type=Path), help="Trained fingerprint model folder (--kind vae, vae-d4).")
@click.option(
    "--pca", type=COUNT, help="Keep this many principal components of the Inception features (fitted on these images)."
)
@click.option(
    "--modality",
    type=click.Choice(["SEM", "OM"]),
    default="SEM",
    show_default=True,
    help="Contrast of the images (--kind descriptors).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV file to write (name, image, one column per feature).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fingerprint_encode(
    paths: tuple[Path, ...], kind: str, model: Path | None, pca: int | None, modality: str, out: Path, quiet: bool
) -> None:
    """Fingerprint images, folders of images or dataset folders."""
    from .fingerprint import encode_images

    n = encode_images(paths, out, kind, model, pca, modality, progress=not quiet)
    click.echo(f"encoded {n} images ({kind}) -> {out}")


@fingerprint.command("explore")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset folder to explore.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the figures and JSON.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(FINGERPRINT_KINDS),
    help="Fingerprint kind, repeatable; all given are compared side by side [vae]. " + _KIND_HELP,
)
@click.option("--model", type=click.Path(path_type=Path), help="Trained fingerprint model folder (--kind vae, vae-d4).")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Categorical manifest column to classify (SVM), repeatable [morphology, where present].",
)
@click.option("--pca", type=COUNT, help="Keep this many principal components of the Inception features.")
@click.option(
    "--modality", type=click.Choice(["SEM", "OM"]), help="Tiles to explore [the VAE's, else the dataset's only one]."
)
@click.option(
    "--gamma", "gammas", multiple=True, type=_Number(1e-6, 1e6), help="Cloud scale, repeatable [0.25, 0.5, 1]."
)
@click.option("--max-images", default=1500, show_default=True, type=COUNT, help="Tiles used (a seeded subset).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def fingerprint_explore(
    data: Path,
    out: Path,
    kinds: tuple[str, ...],
    model: Path | None,
    labels: tuple[str, ...],
    pca: int | None,
    modality: str | None,
    gammas: tuple[float, ...],
    max_images: int,
    seed: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """SVM / SVR cross-validation and t-SNE for each kind; paths, clouds and PCA for the VAE."""
    from .fingerprint import GAMMAS, explore
    from .fingerprint.explore import cv_rows

    s = explore(
        data,
        out,
        kinds or ("vae",),
        model,
        labels or None,
        gammas or GAMMAS,
        max_images,
        seed,
        pca,
        modality,
        overwrite,
        progress=not quiet,
    )
    kinds, rows = tuple(s["kinds"]), cv_rows(s["cv"]["kinds"])
    if not rows:
        click.echo("the dataset has no labels or properties to cross-validate: PCA and t-SNE only")
    else:
        click.echo(f"{'target':<24} {'measure':<18} " + " ".join(f"{k:>12}" for k in kinds))
    for r in rows:
        cells = " ".join(f"{r[k]:>12.3f}" if r[k] is not None else f"{'–':>12}" for k in kinds)
        click.echo(f"{r['target']:<24} {r['measure']:<18} {cells}")
    click.echo(f"figures{', cv.csv' if rows else ''} and JSON -> {out}")


# --------------------------------------------------------------------------- characterize


@cli.command("characterize")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for descriptors.json and figures.")
@click.option(
    "--segmenter",
    default="classical",
    show_default=True,
    help="'classical' or a trained U-Net folder (images without masks).",
)
@click.option(
    "--modality", type=click.Choice(["SEM", "OM"]), default="SEM", show_default=True, help="Contrast of the images."
)
@click.option(
    "--pixel-size", "pixel_size_um", type=_Number(1e-6, 1e6), help="Micrometres per pixel (adds um lengths and ASTM G)."
)
@click.option(
    "--figures",
    default=20,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Draw a figure for the first N images.",
)
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def characterize_cmd(
    paths: tuple[Path, ...],
    out: Path,
    segmenter: str,
    modality: str,
    pixel_size_um: float | None,
    figures: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Measure micrographs: phase fractions, S2, lineal path, chords, grain size, laths, topology.

    PATHS are images, folders of images or dataset folders (whose masks are used). Given exactly
    two folders, also compares them, the first as reference.
    """
    from .characterize.run import characterize

    report = characterize(paths, out, segmenter, modality, pixel_size_um, figures, overwrite, progress=not quiet)
    click.echo(f"measured {len(report['images'])} images -> {out / 'descriptors.json'}")
    if "comparison" in report:
        c = report["comparison"]
        for key in ("s2", "lineal_path"):
            eps = ", ".join(
                f"{k} {v['discrepancy_pct']:.1f}%"
                for k, v in c[key].items()
                if k != "r" and v["discrepancy_pct"] is not None
            )
            click.echo(f"{key} discrepancy ({c['sets'][1]} vs {c['sets'][0]}): {eps}")
        click.echo(f"comparison -> {out / 'compare.png'}")


# -------------------------------------------------------------------------------- segment


@cli.group(cls=_Group)
def segment() -> None:
    """Segment micrographs into 3-class maps; train and score the U-Net segmenter."""


@segment.command("run")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the maps.")
@click.option(
    "--model", "segmenter", default="classical", show_default=True, help="'classical' or a trained U-Net folder."
)
@click.option("--modality", type=click.Choice(["SEM", "OM"]), default="SEM", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace earlier results in --out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def segment_run(
    paths: tuple[Path, ...], out: Path, segmenter: str, modality: str, overwrite: bool, quiet: bool
) -> None:
    """Write the phase map of every image (indices and colours) and fractions.csv."""
    from .characterize.run import segment_images

    rows = segment_images(paths, out, segmenter, modality, overwrite, progress=not quiet)
    click.echo(f"segmented {len(rows)} images -> {out / 'fractions.csv'}")


_SEGMENTER = SegmenterTrainConfig()  # the source of segment train's defaults


@segment.command("train")
@click.option(
    "--data",
    "datasets",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Dataset with masks (repeatable).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder to write.")
@click.option("--steps", default=_SEGMENTER.steps, show_default=True, type=COUNT, help="Optimiser steps.")
@click.option("--batch-size", default=_SEGMENTER.batch_size, show_default=True, type=BATCH)
@click.option("--crop", default=_SEGMENTER.crop, show_default=True, help="Training crop side, px (multiple of 8).")
@click.option("--modality", type=click.Choice(["SEM", "OM"]), help="Train on one modality only.")
@click.option("--seed", default=_SEGMENTER.seed, show_default=True, type=SEED)
@click.option("--overwrite", is_flag=True, help="Replace a model in --out.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def segment_train(
    datasets: tuple[Path, ...],
    out: Path,
    steps: int,
    batch_size: int,
    crop: int,
    modality: str | None,
    seed: int,
    overwrite: bool,
    resume: bool,
    quiet: bool,
) -> None:
    """Train the attention U-Net on the train split (by specimen) of datasets with masks."""
    from dataclasses import replace

    from .data.outdir import prepare_output_dir, record_outputs
    from .training.segmenter_trainer import train_segmenter

    if overwrite and resume:
        raise MicroforgeError(
            "--overwrite and --resume exclude each other: one restarts the run, the other continues it"
        )
    if overwrite:  # remove what an earlier run wrote (the folder must be microforge's)
        prepare_output_dir(out, True, done_marker="model.safetensors", command="train segmenter")
    cfg = replace(SegmenterTrainConfig(), steps=steps, batch_size=batch_size, crop=crop, modality=modality, seed=seed)
    train_segmenter(list(datasets), out, cfg, resume=resume, progress=not quiet)
    record_outputs(out)
    click.echo(f"saved the segmenter to {out}")


@segment.command("evaluate")
@click.option("--data", "dataset", required=True, type=click.Path(path_type=Path), help="Dataset with masks.")
@click.option(
    "--model", "segmenter", default="classical", show_default=True, help="'classical' or a trained U-Net folder."
)
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="test", show_default=True)
@click.option("--modality", type=click.Choice(["SEM", "OM"]), default="SEM", show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write the scores here.")
def segment_evaluate(dataset: Path, segmenter: str, split: str, modality: str, json_out: Path | None) -> None:
    """Per-class IoU and phase-fraction error on held-out specimens."""
    import json

    from .characterize.run import load_segmenter
    from .training.segmenter_trainer import evaluate_segmentation

    seg, name = load_segmenter(segmenter, modality)
    cfg = SegmenterTrainConfig()
    scores = evaluate_segmentation(
        seg, dataset, None if split == "all" else split, cfg.split_fractions, cfg.split_seed, modality
    )
    click.echo(f"{name} on {dataset} ({split} split)")
    click.echo(f"{'specimen':<16}{'IoU a_p':>9}{'IoU b':>8}{'IoU a_s':>9}   fraction error [pts] a_p / b / a_s")
    fmt = lambda v: "   -" if v is None else f"{v:.3f}"  # noqa: E731
    for sp, s in scores["specimens"].items():
        errs = " / ".join("-" if e is None else f"{e:+.1f}" for e in s["fraction_error_pts"])
        click.echo(
            f"{sp:<16}{fmt(s['iou'][0]):>9}{fmt(s['iou'][1]):>8}{fmt(s['iou'][2]):>9}   {errs}"
            + ("  (binary mask)" if s["merged_alpha"] else "")
        )
    if json_out:
        json_out.write_text(json.dumps(scores, indent=1) + "\n")


def main() -> None:
    """Console-script entry point: PyTorch gets the cores that are free now (microforge.threads)."""
    from .threads import configure_threads

    try:
        configure_threads()
    except MicroforgeError as exc:
        raise SystemExit(f"Error: {exc}") from None
    cli(prog_name="microforge")
