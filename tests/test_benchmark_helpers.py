"""The held-out comparisons of benchmarks/ (the tiles and seeded samples they share, and the morphology
recognition score) on known cases and the micro model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _held_out import (  # noqa: E402
    load_regressor,
    held_out_items,
    held_out_tiles,
    model_split,
    reconstructed_maps,
    samples_at,
    sharpness,
    stage2_from,
)
from bias_by_label import (  # noqa: E402
    bias_by_label,
    distance_quartiles,
    maps_by_label,
    nearest_specimen_r2,
    nearest_specimens,
    specimen_spacing,
)
from fid_budget import s2_curves  # noqa: E402
from layout_divergence import drift  # noqa: E402
from lowpass_reconstruction import LowPass  # noqa: E402
from maps_at_specimens import primary_alpha_fractions, summarise  # noqa: E402
from morphology_recognition import recognition  # noqa: E402
from stage1_maps import isolated_share, map_statistics  # noqa: E402
from terminal_signal import window_correlation  # noqa: E402

from microforge.characterize.segmentation import segment_classical  # noqa: E402
from microforge.data.dataset import split_specimens  # noqa: E402
from microforge.pipelines.tim3 import TiM3Pipeline  # noqa: E402


def test_recognition_counts_exactly():
    truth = ["a", "a", "b", "b", "b", "c"]
    pred = np.array(["a", "b", "b", "b", "a", "a"])
    r = recognition(pred, truth, ["a", "b", "c"])
    assert r["recognised"] == 0.5  # 3 of 6
    assert r["per_class"] == {"a": 0.5, "b": 0.667, "c": 0.0}
    assert r["confusion"] == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]


def test_bias_by_label_groups_targets_by_their_nearest_specimen():
    specimens = pd.DataFrame({"A": [0.0, 10.0, 10.0], "B": [0.0, 0.0, 100.0], "m": ["x", "y", "z"]})
    # scaled to [0, 1]: the specimens sit at (0, 0), (1, 0) and (1, 1)
    targets = np.array([[1.0, 10.0], [9.0, 5.0], [8.0, 90.0], [2.0, 0.0]])
    labels = specimens["m"].to_numpy()[nearest_specimens(targets, specimens, ["A", "B"])[0]]
    assert labels.tolist() == ["x", "y", "z", "x"]
    pred = targets + np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])  # only x's targets read high
    groups = bias_by_label(pred, targets, labels, ["A", "B"])
    sd = targets[:, 0].std()
    assert groups["x"] == {
        "n": 2,
        "bias_sd": {"A": round(2.0 / sd, 3), "B": 0.0},
        "abs_error_sd": {"A": round(2.0 / sd, 3), "B": 0.0},
    }
    assert groups["y"]["bias_sd"]["A"] == 0.0 and groups["all"]["n"] == 4
    # the groups' biases weighted by their counts add up to the overall one
    assert groups["all"]["bias_sd"]["A"] == pytest.approx(2 * groups["x"]["bias_sd"]["A"] / 4, abs=1e-3)


def test_lowpass_keeps_block_means_and_averages_laths_away():
    from microforge.fingerprint.vae import reconstruction_quality

    # 2 px laths (period 4) under a 2 x 2 box: each block is one lath's grey, so the bilinear resize back
    # keeps the block means exactly; a 4 x 4 box averages every lath pair to 0.55, lath-free alpha
    x = torch.where((torch.arange(32) // 2) % 2 == 0, 0.2, 0.9).expand(1, 1, 32, 32).contiguous()
    assert torch.equal(LowPass(1).decode(LowPass(1).encode(x)[0]), x)
    assert torch.allclose(LowPass(2).encode(x)[0].mean(), x.mean())
    blurred = LowPass(4).decode(LowPass(4).encode(x)[0])
    assert torch.allclose(blurred, torch.full_like(x, 0.55))
    assert reconstruction_quality(LowPass(1), x, tile_px=32)["alpha_fraction_abs_error_mean"] == 0.0
    assert reconstruction_quality(LowPass(4), x, tile_px=32)["flat_share"] == 1.0


def test_distance_to_the_nearest_specimen_and_its_r2():
    specimens = pd.DataFrame({"A": [0.0, 10.0, 10.0], "B": [0.0, 0.0, 100.0]})  # scaled: (0, 0), (1, 0), (1, 1)
    targets = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 40.0], [10.0, 100.0]])
    rows, distance = nearest_specimens(targets, specimens, ["A", "B"])
    assert rows.tolist() == [0, 0, 1, 2] and distance == pytest.approx([0.0, 0.5, 0.4, 0.0])
    assert specimen_spacing(specimens, ["A", "B"]) == 1.0  # every specimen's nearest other is 1 away
    quartiles, edges = distance_quartiles(distance)
    assert edges == [0.0, 0.2, 0.425] and quartiles.tolist() == ["q1", "q4", "q3", "q1"]
    r2 = nearest_specimen_r2(targets, specimens.to_numpy()[rows], ["A", "B"])
    # A: residuals 0, 5, 0, 0 against a spread of 68.75; B: 0, 0, 40, 0 against 6 700
    assert r2 == {"A": round(1 - 25 / 68.75, 3), "B": round(1 - 1600 / 6700, 3)}


def test_maps_at_specimens_compares_drawn_and_true_fractions():
    hard = torch.zeros(2, 4, 4, dtype=torch.long)
    hard[1, :2] = 2  # half secondary alpha
    assert primary_alpha_fractions(hard).tolist() == [1.0, 0.5]
    soft = torch.zeros(1, 3, 4, 4)
    soft[:, 0], soft[:, 1] = 0.25, 0.75
    assert primary_alpha_fractions(soft).tolist() == [0.25]
    drawn = np.array([[0.05, 0.2], [0.0, 0.0], [0.5, 0.7]])  # 3 specimens, 2 maps each
    true = [np.array([0.04, 0.06]), np.array([0.02]), np.array([0.6, 0.6, 0.6])]
    groups = summarise(drawn, true, np.array(["lam", "lam", "eq"]))
    assert groups["lam"] == {
        "specimens": 2,
        "drawn_primary_alpha": 0.0625,
        "true_primary_alpha": 0.04,
        "drawn_globular_share": 0.25,
        "true_globular_share": 0.0,
    }
    assert groups["all"]["specimens"] == 3 and groups["eq"]["drawn_globular_share"] == 1.0
    unmasked = summarise(drawn, [np.array([]), np.array([]), np.array([0.6])], np.array(["lam", "lam", "eq"]))
    assert unmasked["lam"]["true_primary_alpha"] is None and unmasked["all"]["true_primary_alpha"] == 0.6


def test_maps_by_label_counts_class_fractions_and_globular_maps():
    maps = np.full((3, 10, 10), 2, np.uint8)  # secondary alpha everywhere
    maps[0, :2] = 0  # 20 % primary alpha: globular
    maps[1, :1] = 0  # 10 %: not above the threshold
    maps[2, :5] = 1  # 50 % beta
    groups = maps_by_label(maps, np.array(["x", "x", "y"]))
    assert groups["x"]["class_fraction"] == {"primary_alpha": 0.15, "beta": 0.0, "secondary_alpha": 0.85}
    assert groups["x"]["globular_share"] == 0.5 and groups["y"]["globular_share"] == 0.0
    assert groups["all"]["class_fraction"]["beta"] == pytest.approx(0.5 / 3, abs=1e-4)


def test_s2_curves_of_segmented_known_images():
    # an SEM-like tile: a bright beta band (rows 0-7), dark primary alpha (rows 8-47), and below it
    # 3 px dark laths between 1 px bright films; segmented with opening radius 3 px, the band is
    # beta, the block primary alpha and the laths secondary alpha (but for the rows the opening
    # disc reaches from the block, and the last rows, where the filter loses the films); each
    # class's S2 at r = 0 is its area fraction
    grey = np.full((64, 64), 0.2)
    grey[:8] = 0.9
    grey[48:, ::4] = 0.9
    r, curves = s2_curves(grey[None], "SEM", 3)
    phases = segment_classical(grey, "SEM", 3)
    assert (phases[:8] == 1).all() and (phases[8:48] == 0).all()
    assert (phases[49:58, 1:4] == 2).all() and (phases[48:58, 0:60:4] == 1).all()
    assert r.tolist() == list(range(17)) and curves.shape == (3, 17)
    assert curves[:, 0] == pytest.approx([np.mean(phases == c) for c in range(3)])
    assert curves[:, 0] == pytest.approx([0.725586, 0.169189, 0.105225], abs=1e-6)
    assert np.array_equal(s2_curves(np.stack([grey, grey]), "SEM", 3)[1], curves)  # a mean over the images
    assert curves[2, 2] < curves[2, 0] and curves[2, -1] < 2 * curves[2, 0] ** 2  # uncorrelated far apart


def test_sharpness_of_known_images():
    stripes = np.tile([0.0, 1.0], (2, 4, 2))  # every horizontal step is a full 0 <-> 1 swing
    assert sharpness(stripes) == 255.0
    assert sharpness(np.full((3, 8, 8), 0.4)) == 0.0
    ramp = np.tile(np.arange(5) / 4, (1, 5, 1))  # steps of 0.25
    assert sharpness(ramp) == 63.75


def test_held_out_tiles_come_from_held_out_specimens_and_samples_are_seeded(micro_model, tiny_bench):
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    images, raw, morphology = held_out_tiles(pipe, str(tiny_bench.root), ("val", "test"), 6, seed=1)
    assert images.shape == (6, pipe.cfg.resolution, pipe.cfg.resolution) and raw.shape == (6, 7)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(morphology) <= {"equiaxed", "bimodal", "basketweave", "lamellar"}
    # every property row is a held-out specimen's own
    manifest = pd.read_csv(tiny_bench.root / "manifest.csv")
    split = split_specimens(manifest["specimen"], tuple(pipe.cfg.split_fractions), pipe.cfg.train.seed)
    held = manifest[manifest["specimen"].isin(set(split["val"]) | set(split["test"]))]
    names = pipe.condition_properties.names
    assert all(np.isclose(held[names].to_numpy(), row, rtol=1e-6).all(1).any() for row in raw)
    a, b = samples_at(pipe, raw, 4, seed=3), samples_at(pipe, raw, 4, seed=3)
    assert a.shape == images.shape and np.array_equal(a, b)
    assert not np.array_equal(a, samples_at(pipe, raw, 4, seed=4))


def test_stage_diagnostics_use_the_picked_tiles_true_maps(micro_model, tiny_bench):
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    root = str(tiny_bench.root)
    held = held_out_items(pipe, root, ("val", "test"), 5, seed=2)
    raw, masks = held.props, held.masks
    images, raw_again, _ = held_out_tiles(pipe, root, ("val", "test"), 5, seed=2)
    assert np.array_equal(images, held.images) and np.array_equal(raw, raw_again)
    assert masks.shape[0] == 5 and masks.dtype == torch.long and set(masks.unique().tolist()) <= {0, 1, 2}
    # each mask is the picked tile's own: a held-out tile with that mask has that property row
    items = [ds[i] for split in ("val", "test") for ds in [model_split(pipe, root, split)] for i in range(len(ds))]
    for mask, row in zip(masks, raw):
        owners = [it for it in items if torch.equal(it["mask"], mask)]
        assert any(np.allclose(it["props_raw"].numpy(), row, rtol=1e-6) for it in owners)
    assert not torch.equal(masks, held_out_items(pipe, root, ("val", "test"), 5, 3).masks)
    true = pipe.model_maps(masks)
    recon = reconstructed_maps(pipe, masks)
    assert recon.shape == true.shape == (5, pipe.cfg.resolution, pipe.cfg.resolution)
    assert 0.0 < (recon == true).float().mean() <= 1.0
    a = stage2_from(pipe, raw, true, 2, seed=4)
    assert a.shape == (5, pipe.cfg.resolution, pipe.cfg.resolution) and 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, stage2_from(pipe, raw, true, 2, seed=4))
    assert not np.array_equal(a, stage2_from(pipe, raw, recon, 2, seed=4)) or torch.equal(recon, true)


@pytest.mark.slow
def test_morphology_recognition_runs_on_the_micro_model(micro_model, tiny_bench, tmp_path):
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "morphology_recognition.py"),
            str(tiny_bench.root),
            f"micro={micro_model}",
            "--n",
            "6",
            "--train-tiles",
            "24",
            "--stages",
            "--figure",
            str(tmp_path / "stages.png"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO / "benchmarks",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["held_out_tiles"] == 6 and set(record["rows"]) == {
        "real held-out tiles",
        "micro",
        "micro: stage 2 from true maps",
        "micro: stage 2 from autoencoded true maps",
    }
    for row in record["rows"].values():
        assert sum(map(sum, row["confusion"])) == 6
    assert (tmp_path / "stages.png").stat().st_size > 0


def test_morphology_recognition_refuses_a_figure_without_the_stage_rows(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "morphology_recognition.py"), "data", "m", "--figure", "f.png"],
        capture_output=True,
        text=True,
        cwd=REPO / "benchmarks",
    )
    assert done.returncode == 1 and done.stderr.strip() == "Error: --figure draws the stage rows: give --stages too"


def test_observation_noise_measures_what_the_decoder_lacks_and_writes_a_noisy_copy(micro_model, tiny_bench, tmp_path):
    """benchmarks/observation_noise.py: the real tiles hold more white noise than their
    reconstructions; the std they lack is sqrt(real^2 - reconstructed^2); --model-out writes a copy
    that adds it, and a non-empty --model-out is refused untouched."""
    from microforge.pipelines.tim3 import TiM3Pipeline

    script = [sys.executable, str(REPO / "benchmarks" / "observation_noise.py"), str(micro_model), str(tiny_bench.root)]
    out, copy = tmp_path / "noise.json", tmp_path / "noisy"
    args = ["--n", "24", "--n-samples", "8", "--batch-size", "8", "--out", str(out), "--model-out", str(copy)]
    done = subprocess.run(script + args, capture_output=True, text=True, cwd=REPO / "benchmarks")
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    sigma = record["noise_std"]
    assert record["n"] == 24 and record["n_samples"] == 8 and sigma["real"] > sigma["reconstructed"] > 0
    lacking = np.sqrt(sigma["real"] ** 2 - sigma["reconstructed"] ** 2)
    assert record["lacking_noise_std"] == pytest.approx(lacking, abs=2e-4)
    assert TiM3Pipeline.from_pretrained(copy).cfg.observation_noise_std == record["lacking_noise_std"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = subprocess.run(
        script + ["--out", str(out), "--model-out", str(tmp_path / "busy")], capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"Error: {tmp_path / 'busy'}: exists and is not empty; choose a new folder"
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_window_correlation_of_known_cases():
    """Identical latents read 1, their negation -1; white noise added at the same std to a field
    that is constant over 4 x 4 blocks reads 1/sqrt(2) per pixel and, in 4 x 4 means, where the
    noise averages down by 4, 1/sqrt(1 + 1/16)."""
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(64, 3, 32, 32, generator=gen)
    assert window_correlation(z0, z0, 1) == pytest.approx(1.0, abs=1e-6)
    assert window_correlation(z0, -z0, 4) == pytest.approx(-1.0, abs=1e-6)
    blocks = torch.repeat_interleave(torch.repeat_interleave(torch.randn(64, 3, 8, 8, generator=gen), 4, 2), 4, 3)
    zt = blocks + torch.randn(blocks.shape, generator=gen)
    assert window_correlation(blocks, zt, 1) == pytest.approx(2**-0.5, abs=0.01)
    assert window_correlation(blocks, zt, 4) == pytest.approx((1 + 1 / 16) ** -0.5, abs=0.01)


def test_terminal_signal_reads_the_model_latent_and_the_scaled_lossless_codec(micro_model, tiny_bench, tmp_path):
    """benchmarks/terminal_signal.py on the micro model: one row for its map latent and one per
    scale of the space-to-depth codec, whose correlation falls as its signal_scale does."""
    out = tmp_path / "terminal.json"
    script = [sys.executable, str(REPO / "benchmarks" / "terminal_signal.py"), str(micro_model), str(tiny_bench.root)]
    args = ["--n", "16", "--scales", "1", "0.3", "--windows", "1", "4", "--out", str(out)]
    done = subprocess.run(script + args, capture_output=True, text=True, cwd=REPO / "benchmarks")
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 3 and list(next(iter(rows.values()))["correlation"]) == ["1", "4"]
    unscaled, scaled = (row["correlation"]["4"] for name, row in rows.items() if "space_to_depth" in name)
    assert 0 < scaled < unscaled


def test_drift_is_the_largest_difference_as_a_share_of_the_largest_weight():
    a = {
        "w": torch.tensor([1.0, -4.0]),
        "b": torch.tensor([2.0, 2.0]),
        "n": torch.tensor([3]),
        "s": torch.tensor([1.0]),
    }
    b = {
        "w": torch.tensor([1.5, -4.0]),
        "b": torch.tensor([2.0, 1.0]),
        "n": torch.tensor([5]),
        "s": torch.tensor([9.0]),
    }
    assert drift(a, b) == {"median": 0.3125, "largest": 0.5}  # w: 0.5 / 4, b: 1 / 2; integer and 1-element skipped


def test_layout_divergence_trains_the_map_autoencoder_in_both_layouts(micro_model, tiny_bench, tmp_path):
    """benchmarks/layout_divergence.py on the micro config: both layouts start from the same weights
    and batches, so after a few steps they differ by rounding only; each row reads both runs'
    map accuracy; a used WORK folder is refused untouched."""
    from .conftest import MICRO

    out, work = tmp_path / "drift.json", tmp_path / "work"
    script = [sys.executable, str(REPO / "benchmarks" / "layout_divergence.py"), str(tiny_bench.root)]
    args = ["--config", str(MICRO), "--steps", "4", "--every", "2", "--out", str(out)]
    done = subprocess.run(
        script + [str(work)] + args + ["--compare", str(micro_model), str(micro_model)],
        capture_output=True,
        text=True,
        cwd=REPO / "benchmarks",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert [r["step"] for r in record["rows"]] == [2, 4]
    assert all(0 <= r["drift"]["median"] <= r["drift"]["largest"] < 1e-3 for r in record["rows"])
    assert all(0 < r["fidelity_contiguous"] <= 1 and 0 < r["fidelity_channels_last"] <= 1 for r in record["rows"])
    assert record["models"]["drift"] == {"median": 0.0, "largest": 0.0}
    refused = subprocess.run(script + [str(work)] + args, capture_output=True, text=True, cwd=REPO / "benchmarks")
    assert (
        refused.returncode == 1
        and refused.stderr.strip() == f"Error: {work}: exists and is not empty; choose a new folder"
    )


def test_map_statistics_of_known_maps():
    """A checkerboard is all isolated pixels inside; a map of stripes two pixels wide has none;
    the primary-alpha fractions of two drawn maps against two true ones, exactly."""
    board = (np.indices((6, 6)).sum(0) % 2)[None]
    stripes = np.repeat(np.arange(6) // 2 % 2, 6).reshape(6, 6)[None]
    assert isolated_share(board) == 1.0 and isolated_share(stripes) == 0.0
    true = np.stack([np.zeros((4, 4), int), np.full((4, 4), 2)])
    drawn = true.copy()
    drawn[0, :2] = 1  # half the first map turns to beta: primary alpha 0.5 instead of 1
    drawn[1, 0, 0] = 0  # one pixel of the second map turns primary: 1/16 instead of 0
    stats = map_statistics(drawn, true)
    assert stats["primary_alpha_correlation"] == 1.0 and stats["primary_alpha_mean_abs_error"] == round(
        (0.5 + 1 / 16) / 2, 4
    )
    assert stats["class_fractions_true"] == [0.5, 0.0, 0.5]
    assert stats["class_fractions_drawn"] == [round(9 / 32, 4), 0.25, round(15 / 32, 4)]


def test_stage1_maps_reads_a_model_its_run_folder_and_a_checkpoint_alike(micro_model, tiny_bench, tmp_path):
    """benchmarks/stage1_maps.py: the micro model, its folder read as a run whose stage 1 is done,
    and the same folder with stage 1 turned back into a checkpoint (its weights as the EMA's) draw
    the same maps, so every row is equal; the checkpoint row records its step."""
    import shutil

    from .conftest import MICRO
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import EMAModel

    from microforge.models.property_encoder import PropertyEncoder
    from microforge.models.weights import save_weights

    run = tmp_path / "run"
    shutil.copytree(micro_model, run)
    (run / ".done" / "stage1.json").unlink()
    step = run / "checkpoints" / "stage1" / "step_0000008"
    unet = UNet2DConditionModel.from_pretrained(micro_model / "unet_stage1")
    encoder = PropertyEncoder.from_pretrained(micro_model / "encoder_stage1")
    save_weights(unet, step / "unet_stage1", {})
    save_weights(encoder, step / "encoder_stage1", {})
    ema = EMAModel([*unet.parameters(), *encoder.parameters()])  # its shadow starts as the weights
    torch.save({"ema": ema.state_dict()}, step / "optimizer.pt")
    (step / "step.json").write_text('{"step": 8}')
    out = tmp_path / "maps.json"
    script = [sys.executable, str(REPO / "benchmarks" / "stage1_maps.py"), str(tiny_bench.root), f"model={micro_model}"]
    args = ["--run", f"done={micro_model}:{MICRO}", "--run", f"checkpoint={run}:{MICRO}", "--n", "4", "--out", str(out)]
    done = subprocess.run(script + args, capture_output=True, text=True, cwd=REPO / "benchmarks")
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows["checkpoint"].pop("checkpoint_step") == 8
    assert rows["model"] == rows["done"] == rows["checkpoint"]
    assert rows["model"]["class_fractions_true"] != [0.0, 0.0, 0.0]


def test_load_regressor_takes_a_bundled_spec_and_refuses_a_missing_folder(tmp_path):
    # before, fid_budget.py ran without the regressor, silently, when --regressor named bundled:NAME/regressor
    reg = load_regressor("bundled:ti-om-tiny/regressor")
    assert reg.properties.names[:2] == ["YS", "TS"]
    with pytest.raises(SystemExit, match=f"Error: --regressor {tmp_path / 'none'}: no such folder"):
        load_regressor(str(tmp_path / "none"))
