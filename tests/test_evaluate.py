"""Evaluation suite: accuracy, distribution distances, copying, oracle, regressor, report."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from microforge.cli import cli
from microforge.data.dataset import MicrographDataset
from microforge.data.digest import dataset_digest
from microforge.data.synth.morphology import generate_microstructure
from microforge.data.synth.params import SpecimenParams
from microforge.errors import MicroforgeError
from microforge.accuracy import accuracy_table
from microforge.evaluate.copying import nearest_training
from microforge.evaluate.distribution import frechet_distance, kernel_distance, precision_recall
from microforge.models.inception import InceptionFeatures, extract
from microforge.evaluate.oracle import measure_params, oracle_properties
from microforge.evaluate.options import EvaluationOptions
from microforge.evaluate.run import evaluate
from microforge.evaluate.scores import ScoreRow
from microforge.training.regressor_trainer import train_regressor

from .conftest import TINY_REGRESSOR

# --------------------------------------------------------------------- distribution metrics


def test_frechet_distance_exact_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    # equal covariances: the distance is the squared distance between the means
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # scaling one set by s: trace term (1 - s)^2 tr(S)
    s = 2.0
    cov_trace = float(np.trace(np.cov(a, rowvar=False)))
    centred = a - a.mean(0)
    assert frechet_distance(centred, s * centred) == pytest.approx((1 - s) ** 2 * cov_trace, rel=1e-5)


def test_kernel_distance_and_precision_recall():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
    same, _ = kernel_distance(a, b, subsets=20, subset_size=200)
    far, _ = kernel_distance(a, b + 2.0, subsets=20, subset_size=200)
    assert abs(same) < 0.01 and far > 0.5
    # 1-D hand-made sets, k = 1: real balls have radius 1; fake radii 9.5, 1, 1
    real = np.arange(5.0)[:, None]
    fake = np.array([[0.5], [10.0], [11.0]])
    assert precision_recall(real, fake, k=1) == (pytest.approx(1 / 3), 1.0)
    assert precision_recall(a, a, k=3) == (1.0, 1.0)


def test_inception_features_are_real_and_deterministic(tiny_bench):
    from microforge.data.images import read_grey

    tiles = [read_grey(tiny_bench.root / t) / 255.0 for t in tiny_bench.table["tile"][:6]]
    images = np.stack(tiles).astype(np.float32)
    net = InceptionFeatures()
    f = extract(net, images, batch_size=4)
    assert f.shape == (6, 2048) and np.isfinite(f).all()
    assert (f >= 0).all() and f.std() > 0.01  # pool3 features follow a ReLU
    assert np.allclose(extract(net, images[:2]), f[:2], atol=1e-4)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-3)


# --------------------------------------------------------------------------- data copying


def test_nearest_training_finds_the_copied_image_across_batches():
    rng = np.random.default_rng(2)
    train = rng.random((10, 8, 8))
    gen = np.stack([train[7], train[2] + 0.1, rng.random((8, 8))])
    mse, idx = nearest_training(gen, [train[:4], train[4:]])
    assert idx[0] == 7 and mse[0] == pytest.approx(0.0, abs=1e-12)
    assert idx[1] == 2 and mse[1] == pytest.approx(0.01, rel=1e-9)
    assert mse[2] > 0.05
    with pytest.raises(MicroforgeError, match="same size"):
        nearest_training(gen, [rng.random((2, 4, 4))])


# -------------------------------------------------------------------------------- oracle


@pytest.mark.parametrize(
    "morphology,fraction,lath_um",
    [("equiaxed", 0.8, 1.0), ("bimodal", 0.4, 1.0), ("lamellar", 0.05, 2.0), ("basketweave", 0.03, 0.8)],
)
def test_oracle_measures_the_drawn_microstructure(morphology, fraction, lath_um):
    p = SpecimenParams(morphology, fraction, 8.0, lath_um, 30.0, 100.0, 0.2)
    ms = generate_microstructure(p, (256, 256), 0.25, np.random.default_rng(3))
    m = measure_params(ms.phase_map, 0.25)
    assert m.morphology == morphology
    assert m.primary_alpha_fraction == pytest.approx(fraction, abs=0.01)  # the generator is quantile-exact
    assert m.beta_in_transformed == pytest.approx(0.2, abs=0.02)
    if morphology in ("equiaxed", "bimodal"):  # globules: 4/pi x mean chord recovers the diameter
        assert m.primary_alpha_size_um == pytest.approx(8.0, rel=0.2)
    if morphology != "equiaxed":  # laths in equiaxed specimens are cut short by the small beta pockets
        assert m.lath_thickness_um == pytest.approx(lath_um, rel=0.25)


def test_oracle_properties_on_true_maps_of_the_benchmark(tiny_bench):
    from microforge.data.images import read_grey

    t = tiny_bench.table[tiny_bench.table["modality"] == "SEM"]
    maps = np.stack([read_grey(tiny_bench.root / m) for m in t["mask"]])
    truth = t[list(tiny_bench.properties.names)].to_numpy(float)
    pred = oracle_properties(maps, 0.25)
    assert pred.shape == truth.shape
    # the oracle's ceiling on true 64 px maps of the tiny benchmark (stated in docs/evaluation.md)
    assert accuracy_table(pred, truth, tiny_bench.properties.names)["acc"]["0.2"] >= 0.5


# ----------------------------------------------------------------------- end to end report


OPTS = EvaluationOptions(n=8, n_reference=8, n_describe=3, batch_size=4)


@pytest.fixture(scope="module")
def evaluated(micro_model, tiny_bench, tmp_path_factory):
    """One finished evaluation of the micro model with a tiny regressor: (report folder,
    metrics, regressor folder). Tests that change the folder work on a copy."""
    root = tmp_path_factory.mktemp("evaluated")
    reg = root / "reg"
    train_regressor(tiny_bench.root, reg, TINY_REGRESSOR, progress=False)
    m = evaluate(str(micro_model), tiny_bench.root, root / "report", OPTS, regressor=str(reg), progress=False)
    return root / "report", m, reg


def copy_of(report, tmp_path):
    return Path(shutil.copytree(report, tmp_path / "report"))


def test_evaluate_scores_the_samples(evaluated):
    main = evaluated[1]["main"]
    assert main["n"] == 8 and main["fid"] > 0 and 0 <= main["precision"] <= 1
    assert set(main["accuracy"]["acc"]) == {"0.1", "0.2", "0.3"}
    assert evaluated[1]["oracle"]["ceiling_true_maps"]["n"] == 8
    assert "s2" in evaluated[1]["microstructure"] and "microstructure_maps" in evaluated[1]


def test_the_regressor_ceiling_is_read_on_held_out_specimens_only(evaluated, tiny_bench):
    held = evaluated[1]["regressor_on_held_out"]
    test_split = MicrographDataset(tiny_bench.root, split="test", fractions=(0.5, 0.25, 0.25), seed=0, modality="SEM")
    assert held["specimens"] == test_split.specimens and held["n"] == len(test_split)
    train_split = MicrographDataset(tiny_bench.root, split="train", fractions=(0.5, 0.25, 0.25), seed=0, modality="SEM")
    assert not set(held["specimens"]) & set(train_split.specimens)


def test_evaluate_writes_the_page_and_its_figures(evaluated):
    report = evaluated[0]
    page = (report / "index.html").read_text()
    assert "Table 1" in page and "figures/samples_vs_ground_truth.png" in page
    for fig in ("samples_vs_ground_truth", "property_scatter", "microstructure", "persistence", "data_copying"):
        assert (report / "figures" / f"{fig}.png").is_file()


def test_metrics_json_table_reads_back_as_score_rows(evaluated):
    report, main = evaluated[0], evaluated[1]["main"]
    saved = json.loads((report / "metrics.json").read_text())
    assert saved["main"]["fid"] == pytest.approx(main["fid"])
    row = ScoreRow.from_dict(saved["table"][0])
    assert row.name == "this model" and row.fid == pytest.approx(main["fid"]) and row.mAcc == main["accuracy"]["mAcc"]
    assert row.acc_01 == main["accuracy"]["acc"]["0.1"] and ScoreRow.from_dict(row.to_dict()) == row


def test_report_command_re_renders_the_same_page_from_metrics_json(evaluated, tmp_path):
    report = copy_of(evaluated[0], tmp_path)
    page = (report / "index.html").read_text()
    (report / "index.html").unlink()
    r = CliRunner().invoke(cli, ["report", str(report)])
    assert r.exit_code == 0, r.output
    assert (report / "index.html").read_text() == page


def test_a_finished_report_is_refused_without_overwrite(evaluated, micro_model, tiny_bench):
    with pytest.raises(MicroforgeError, match="--overwrite"):
        evaluate(str(micro_model), tiny_bench.root, evaluated[0], OPTS, regressor=str(evaluated[2]), progress=False)


def test_an_interrupted_evaluation_recomputes_only_the_missing_batch(evaluated, micro_model, tiny_bench, tmp_path):
    report, main = copy_of(evaluated[0], tmp_path), evaluated[1]["main"]
    (report / "metrics.json").unlink()
    kept = (report / "main" / "batch_00000.npz").stat().st_mtime_ns
    (report / "main" / "batch_00001.npz").unlink()
    again = evaluate(str(micro_model), tiny_bench.root, report, OPTS, regressor=str(evaluated[2]), progress=False)
    assert (report / "main" / "batch_00000.npz").stat().st_mtime_ns == kept
    assert again["main"]["fid"] == pytest.approx(main["fid"], rel=1e-6)
    assert again["main"]["accuracy"]["mAcc"] == main["accuracy"]["mAcc"]


def test_an_unfinished_report_with_other_options_is_refused(evaluated, micro_model, tiny_bench, tmp_path):
    report = copy_of(evaluated[0], tmp_path)
    (report / "metrics.json").unlink()
    other = EvaluationOptions(n=12, n_reference=8, n_describe=3, batch_size=4)
    with pytest.raises(MicroforgeError, match="other options"):
        evaluate(str(micro_model), tiny_bench.root, report, other, regressor=str(evaluated[2]), progress=False)


def test_a_report_records_its_data_and_resumes_only_on_the_same(evaluated, micro_model, tiny_bench, tmp_path):
    digest = dataset_digest(tiny_bench.root)
    saved = json.loads((evaluated[0] / "metrics.json").read_text())
    assert saved["data_digest"] == saved["options"]["data_digest"] == digest
    assert digest in (evaluated[0] / "index.html").read_text()
    report = copy_of(evaluated[0], tmp_path)
    (report / "metrics.json").unlink()
    data = shutil.copytree(tiny_bench.root, tmp_path / "data")
    options = json.loads((report / "options.json").read_text())
    (report / "options.json").write_text(json.dumps({**options, "data": str(data)}, indent=1) + "\n")
    tile = data / str(MicrographDataset(data, modality="SEM").table["tile"].iloc[0])
    pixels = np.asarray(Image.open(tile))
    changed = pixels.copy()
    changed[0, 0] ^= 1
    Image.fromarray(changed).save(tile)
    with pytest.raises(MicroforgeError, match="other options"):  # same path and options, other content
        evaluate(str(micro_model), data, report, OPTS, regressor=str(evaluated[2]), progress=False)
    Image.fromarray(pixels).save(tile)  # the content the report was started on: it resumes
    again = evaluate(str(micro_model), data, report, OPTS, regressor=str(evaluated[2]), progress=False)
    assert again["data_digest"] == digest


def test_evaluate_sweeps_and_ablation(micro_model, tiny_bench, tmp_path):
    opts = EvaluationOptions(
        n=4,
        n_reference=4,
        n_describe=4,
        batch_size=4,
        sweep_steps=(1, 3),
        n_sweep=4,
        brightness=True,
        ablation={"again": str(micro_model)},
    )
    m = evaluate(str(micro_model), tiny_bench.root, tmp_path / "r", opts, progress=False)
    assert [r["steps"] for r in m["sweeps"]["steps"]] == [1, 3]
    assert "skipped" in m["sweeps"]["brightness"]  # the micro model has no brightness condition
    row = m["sweeps"]["ablation"][0]
    assert row["name"] == "again" and row["fid"] > 0
    # the same model on the same targets and seeds: its row repeats the main row, microstructure included
    main = m["main"]
    for key in ("fid", "oracle_mAcc", "s2_discrepancy_pct", "lineal_path_discrepancy_pct", "copy_mse_median"):
        assert row[key] == pytest.approx(main[key], rel=1e-6, abs=1e-9), key
    assert main["s2_discrepancy_pct"] > 0 and 0 <= main["oracle_mAcc"] <= 1
    assert m["main"]["accuracy"] is None and "regressor" in m["notes"][0]
    assert (tmp_path / "r" / "figures" / "steps_sweep.png").is_file()


def test_evaluate_cli_errors_are_one_line(micro_model, tiny_bench, tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        cli,
        [
            "evaluate",
            "--model",
            str(micro_model),
            "--data",
            str(tiny_bench.root),
            "--report",
            str(tmp_path / "r"),
            "-n",
            "-3",
        ],
    )
    assert r.exit_code == 1 and r.output.startswith("Error:") and "'-n': -3 is not in the range" in r.output
    r = runner.invoke(
        cli,
        [
            "evaluate",
            "--model",
            str(tmp_path / "none"),
            "--data",
            str(tiny_bench.root),
            "--report",
            str(tmp_path / "r2"),
        ],
    )
    assert r.exit_code == 1 and "model folder not found" in r.output
    r = runner.invoke(
        cli, ["evaluate", "--data", str(tiny_bench.root), "--report", str(tmp_path / "r3"), "--ablation", "oops"]
    )
    assert r.exit_code == 1 and "NAME=VALUE" in r.output
    # report: a folder that no evaluation wrote is refused with one line, and nothing is written
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "metrics.json").write_text("{}")
    for folder, message in (
        (tmp_path / "none", "not found"),
        (tmp_path / "mine", "not a report written by microforge evaluate"),
    ):
        r = runner.invoke(cli, ["report", str(folder)])
        assert (
            r.exit_code == 1
            and r.output.startswith("Error:")
            and message in r.output
            and len(r.output.strip().splitlines()) == 1
        )
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["metrics.json"]


# ----------------------------------------------------------------- bounded memory, resume


def test_run_batches_writes_each_batch_before_the_next_and_resumes(tmp_path):
    from microforge.evaluate.batches import load_arrays, run_batches

    made = []

    def make(i):
        if i == 2 and not made.count("resumed"):
            raise RuntimeError("killed")
        made.append(i)
        return {"x": np.full((3, 2), i), "y": np.arange(3) + 3 * i}

    with pytest.raises(RuntimeError):
        run_batches(tmp_path, 4, make, "t", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_00000.npz", "batch_00001.npz"]
    made.append("resumed")
    run_batches(tmp_path, 4, make, "t", progress=False)
    assert made == [0, 1, "resumed", 2, 3]  # finished batches are not redone
    assert np.array_equal(load_arrays(tmp_path, ["y"])["y"], np.arange(12))
    assert load_arrays(tmp_path, ["x"], limit=4)["x"].shape == (4, 2)


def test_generate_writes_each_batch_before_sampling_the_next(micro_model, tmp_path):
    from microforge.pipelines.generate import generate
    from microforge.pipelines.tim3 import TiM3Pipeline

    pipe = TiM3Pipeline.from_pretrained(micro_model)
    real, on_disk = pipe.iter_batches, []
    images = tmp_path / "out" / "images"

    def spy(*args, **kwargs):
        for batch in real(*args, **kwargs):
            on_disk.append(len(list(images.glob("*.png"))) if images.is_dir() else 0)
            yield batch

    pipe.iter_batches = spy
    target = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]])
    generate(str(micro_model), target, 10, tmp_path / "out", batch_size=4, progress=False, pipe=pipe)
    assert on_disk == [0, 4, 8]  # batch k+1 is drawn only after batch k's images are on disk


BRIGHT_STEPS, BRIGHT_MIN_R = 1500, 0.8


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured dead: after 1 500 stage-2 steps the micro model's samples span 0.001 of the "
    "brightness range for requests from -1 to 1 (r 0.74); the old assertions passed this. "
    "The known gap of docs/tim3.md (Brightness).",
)
def test_brightness_experiment_on_a_model_trained_with_brightness(tiny_bench, tmp_path):
    from microforge.models.tim3 import load_tim3_config
    from microforge.training.tim3_trainer import train_tim3

    from .conftest import MICRO

    from dataclasses import replace

    micro = load_tim3_config(MICRO)
    # stage 2 long enough to learn the condition: the micro model's 10 steps would learn nothing
    cfg = replace(micro, brightness=True, train=replace(micro.train, stage2_steps=BRIGHT_STEPS, lr=1e-3))
    model = train_tim3(tiny_bench.root, tmp_path / "bright", cfg, progress=False)
    opts = EvaluationOptions(n=4, n_reference=4, n_describe=0, batch_size=4, brightness=True, n_brightness=4)
    b = evaluate(str(model), tiny_bench.root, tmp_path / "r", opts, progress=False)["sweeps"]["brightness"]
    assert len(b["levels"]) == len(b["measured"]) == 21 and b["levels"][0] == -1.0 and b["levels"][-1] == 1.0
    # the measured brightness follows the requested one (a dead condition gives r near 0)
    assert b["pearson_r"] > BRIGHT_MIN_R, b
    assert b["measured"][-1] - b["measured"][0] > 0.2, (b["measured"], b["pearson_r"])  # a fifth of the range, at least
    assert (tmp_path / "r" / "figures" / "brightness.png").is_file()
