"""Fingerprint kinds (vae, inception, descriptors), the cross-validation that reads labels from
them, the VAE's reconstruction measure, and explore / encode with several kinds."""

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from microforge.cli import cli
from microforge.errors import MicroforgeError
from microforge.fingerprint import (
    FingerprintTrainConfig,
    classify_cv,
    explore,
    make_kind,
    reconstruction_quality,
    regress_cv,
    train_fingerprints,
)
from microforge.fingerprint.crossval import CV_SPLITS
from microforge.fingerprint.kinds import DescriptorKind, InceptionKind, descriptor_vector
from microforge.models.fingerprint import FingerprintConfig
from microforge.properties import PropertySet, PropertySpec

MICRO = FingerprintTrainConfig(
    model=FingerprintConfig(resolution=32, width=8, hidden=64, latent=16),
    steps=4,
    batch_size=8,
    split_fractions=(0.5, 0.25, 0.25),
    checkpoint_every=100,
)


def _two_clusters(n_groups: int = 20, per_group: int = 5, gap: float = 10.0, seed: int = 0):
    """Two classes far apart in 3-D; every group (specimen) holds one class."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    labels = np.where(groups % 2 == 0, "a", "b")
    x = rng.normal(size=(len(groups), 3)) + gap * (labels == "b")[:, None]
    return x, labels, groups


# ------------------------------------------------------------------ cross-validation


def test_svm_separates_two_distant_classes_exactly():
    x, labels, groups = _two_clusters()
    r = classify_cv(x, labels, groups)
    assert r["accuracy_mean"] == 1.0 and r["accuracy_std"] == 0.0 and r["splits"] == CV_SPLITS
    assert r["chance"] == 0.5 and r["classes"] == ["a", "b"]
    conf = np.array(r["confusion"])
    assert (
        conf[0, 1] == conf[1, 0] == 0 and conf.sum() == CV_SPLITS * 2 * 5
    )  # 10 % of 20 groups = 2 groups of 5 tiles per split


def test_svm_on_noise_is_near_chance():
    x, labels, groups = _two_clusters(n_groups=40, gap=0.0)
    assert abs(classify_cv(x, labels, groups)["accuracy_mean"] - 0.5) < 0.2


def test_cross_validation_never_puts_one_specimen_on_both_sides():
    # each group's tiles carry a unique offset: a split that leaked a group into its training side would classify it
    # perfectly
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 4)
    labels = rng.choice(["a", "b"], size=30)[groups]
    x = np.eye(30)[groups] * 100.0
    assert classify_cv(x, labels, groups)["accuracy_mean"] < 0.8


def test_svr_reads_a_linear_target_and_reports_the_percentage_error():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, size=(200, 2))
    y = 10.0 + 5.0 * x[:, 0]
    groups = np.arange(200) // 4
    r = regress_cv(x, y, groups)
    assert r["r2"] > 0.95 and 0 < r["mpe_pct_mean"] < 2.0 and r["mae_mean"] > 0
    y0 = y.copy()
    y0[:4] = 0.0  # percentage error is undefined where a true value is 0
    assert regress_cv(x, y0, groups)["mpe_pct_mean"] is None
    # a target whose whole range is far below the SVR's epsilon (0.1) is still read
    small = regress_cv(x, y * 1e-3, groups)
    assert small["r2"] > 0.95 and small["mpe_pct_mean"] == pytest.approx(r["mpe_pct_mean"], rel=0.05)


# ------------------------------------------------------------------ kinds


def test_descriptor_vector_of_stripes_matches_the_exact_counts():
    stripes = np.where((np.arange(64) // 8) % 2 == 0, 0, 1)[None, :].repeat(64, 0)  # 8 px columns of alpha and beta
    v = descriptor_vector(stripes)
    names = DescriptorKind().column_names()
    assert len(v) == 39 and len(names) == 42
    at = dict(zip(names, v))
    assert at["fraction_primary_alpha"] == 0.5 and at["fraction_beta"] == 0.5 and at["fraction_secondary_alpha"] == 0.0
    for r in (1, 2, 4):
        # lineal path, both axes pooled: 32 full columns of 64 - r positions, and 64 rows with 4 runs of 8 px
        exact = (32 * (64 - r) + 64 * 4 * (8 - r)) / (2 * 64 * (64 - r))
        assert at[f"lineal_path_primary_alpha_r{r}"] == pytest.approx(exact, abs=1e-12)
    assert at["lineal_path_primary_alpha_r8"] == pytest.approx(
        0.25, abs=1e-12
    )  # only the columns hold 9-pixel segments
    # chords touching the edge are dropped: the 3 inner 8 px runs of every row remain, no column
    assert (
        at["log_chord_mean_primary_alpha"]
        == at["log_chord_median_primary_alpha"]
        == pytest.approx(np.log1p(8.0), abs=1e-12)
    )
    assert at["s2_secondary_alpha_r4"] == 0.0 and at["log_chord_mean_secondary_alpha"] == 0.0


def test_descriptor_and_inception_kinds_give_fixed_shapes_deterministically():
    rng = np.random.default_rng(0)
    images = rng.random((4, 48, 48)).astype(np.float32)
    d = DescriptorKind()
    a, b = d.encode(images), d.encode(images)
    assert a.shape == (4, 42) and np.array_equal(a, b)
    inc = InceptionKind()
    f = inc.encode(images)
    assert f.shape == (4, 2048) and np.array_equal(f, inc.encode(images)) and len(inc.column_names()) == 2048
    assert InceptionKind(pca=3).encode(images).shape == (4, 3)
    with pytest.raises(MicroforgeError, match="--pca 8 needs at least 8 images"):
        InceptionKind(pca=8).encode(images)
    with pytest.raises(MicroforgeError, match="at least 32 px"):
        descriptor_vector(np.zeros((16, 16), dtype=int))
    with pytest.raises(MicroforgeError, match="--kind vae needs --model"):
        make_kind("vae")
    with pytest.raises(MicroforgeError, match="--kind must be one of"):
        make_kind("pixels")


class _Identity(nn.Module):
    def encode(self, x):
        return x, None

    def decode(self, z):
        return z


class _MeanGrey(_Identity):
    def decode(self, z):
        return torch.full_like(z, 0.5)


class _BlurredLaths(_Identity):
    """Keeps the top beta film and the left primary-alpha half, and blurs the right half's laths
    to their mean grey, as a decoder that cannot place them does."""

    def decode(self, z):
        out = z.clone()
        out[..., 2:, 16:] = z[..., 2:, 16:].mean((-2, -1), keepdim=True)
        return out


def test_reconstruction_quality_of_a_perfect_and_of_a_flat_decoder():
    stripes = torch.from_numpy(np.where((np.arange(32) // 4) % 2 == 0, 0.2, 0.9)[None, :].repeat(32, 0)).float()
    x = torch.stack([stripes, stripes.T])[:, None]
    perfect = reconstruction_quality(_Identity(), x, tile_px=32)
    assert (
        perfect["mse"] == 0.0
        and perfect["ssim"] == pytest.approx(1.0)
        and perfect["alpha_fraction_abs_error_mean"] == 0.0
    )
    assert perfect["flat_share"] == 0.0
    flat = reconstruction_quality(_MeanGrey(), x, tile_px=32)
    assert flat["flat_share"] == 1.0 and flat["mse"] == pytest.approx(float(((x - 0.5) ** 2).mean()), rel=1e-6)


def test_blurred_laths_read_as_primary_alpha():
    # a beta film on top, a primary-alpha half and a colony of 2 px laths; the segmenter (6 px
    # halfwidth at 32 px) reads the tile as 0.512 primary alpha and 0.299 beta, and the blurred
    # copy as 0.925 and 0.070: lath-free alpha is primary alpha to it (White et al.'s Fig. 11)
    tile = torch.full((32, 32), 0.2)
    tile[:, 16:] = torch.where((torch.arange(16) // 2) % 2 == 0, 0.2, 0.9)
    tile[:2] = 0.9
    q = reconstruction_quality(_BlurredLaths(), tile[None, None], tile_px=32)
    assert q["alpha_fraction_signed_error_mean"] == pytest.approx(0.9248046875 - 0.51171875)
    assert q["alpha_fraction_abs_error_mean"] == pytest.approx(q["alpha_fraction_signed_error_mean"])
    assert q["beta_fraction_abs_error_mean"] == pytest.approx(0.298828125 - 0.0703125)
    assert reconstruction_quality(_Identity(), tile[None, None], tile_px=32)["beta_fraction_abs_error_mean"] == 0.0


def test_training_writes_the_reconstruction_measure(tiny_bench, tmp_path):
    out = train_fingerprints(tiny_bench.root, tmp_path / "fp", MICRO, progress=False)
    rec = json.loads((out / "reconstruction.json").read_text())
    assert rec["split"] == "test" and rec["tiles"] > 0 and 0 <= rec["flat_share"] <= 1 and rec["mse"] > 0


# ------------------------------------------------------------------ explore and encode


def _with_categorical_morphology(src, dst):
    """A copy of a benchmark whose morphology is an imported categorical property (integer codes)."""
    shutil.copytree(src, dst)
    table = pd.read_csv(dst / "manifest.csv")
    cats = sorted(table["morphology"].unique())
    table["phase"] = [cats.index(m) for m in table["morphology"]]
    props = PropertySet.load(dst / "properties.json")
    spec = PropertySpec("phase", "", 0.0, float(len(cats) - 1), categories=tuple(cats))
    PropertySet([*props.specs, spec], [c for c in props.meta_columns if c != "morphology"], props.info).save(
        dst / "properties.json"
    )
    table.drop(columns=["morphology"]).to_csv(dst / "manifest.csv", index=False)
    return dst


def test_explore_compares_every_kind_and_classifies_categorical_properties(tiny_bench, tmp_path):
    model = train_fingerprints(tiny_bench.root, tmp_path / "fp", MICRO, progress=False)
    data = _with_categorical_morphology(tiny_bench.root, tmp_path / "cat")
    r = CliRunner().invoke(
        cli,
        [
            "fingerprint",
            "explore",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "ex"),
            "--model",
            str(model),
            "--kind",
            "vae",
            "--kind",
            "inception",
            "--kind",
            "descriptors",
            "--pca",
            "8",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    cv = json.loads((tmp_path / "ex" / "cv.json").read_text())
    assert set(cv) == {"vae", "inception", "descriptors"}
    for kind in cv.values():
        assert set(kind["classification"]) == {"phase"}  # the categorical property: an SVM, and no SVR on its codes
        assert "phase" not in kind["regression"] and "primary_alpha_fraction" in kind["regression"]
    rows = list(csv.DictReader(open(tmp_path / "ex" / "cv.csv")))
    assert {row["measure"] for row in rows} == {"SVM accuracy", "SVR R²", "SVR mean % error"}
    assert set(rows[0]) == {"target", "measure", "vae", "inception", "descriptors", "chance"}
    for name in ("cv", "embeddings", "reconstructions", "paths", "clouds", "pca"):
        assert (tmp_path / "ex" / f"{name}.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "ex" / "summary.json").read_text())
    assert summary["dims"] == {"vae": 16, "inception": 8, "descriptors": 42} and summary["labels"] == ["phase"]
    assert "SVM accuracy" in r.output and "descriptors" in r.output


def test_explore_without_a_vae_needs_no_model_and_refuses_a_vae_without_one(tiny_bench, tmp_path):
    s = explore(tiny_bench.root, tmp_path / "ex", kinds=("descriptors",), modality="SEM")
    assert s["kinds"] == ["descriptors"] and not (tmp_path / "ex" / "paths.png").exists()
    rows = np.load(tmp_path / "ex" / "fingerprints.npz")["tile_index"]  # manifest rows, though OM rows are skipped
    assert set(pd.read_csv(tiny_bench.root / "manifest.csv")["modality"].iloc[rows]) == {"SEM"}
    assert s["cv"]["kinds"]["descriptors"]["classification"]["morphology"]["classes"] == [
        "basketweave",
        "bimodal",
        "equiaxed",
        "lamellar",
    ]
    r = CliRunner().invoke(
        cli,
        ["fingerprint", "explore", "--data", str(tiny_bench.root), "--out", str(tmp_path / "none"), "--kind", "vae"],
    )
    assert r.exit_code != 0 and "Error: --kind vae needs --model" in r.output and not (tmp_path / "none").exists()
    r = CliRunner().invoke(
        cli,
        [
            "fingerprint",
            "explore",
            "--data",
            str(tiny_bench.root),
            "--out",
            str(tmp_path / "both"),
            "--kind",
            "descriptors",
        ],
    )
    assert r.exit_code != 0 and "needs --modality" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "fingerprint",
            "explore",
            "--data",
            str(tiny_bench.root),
            "--out",
            str(tmp_path / "lab"),
            "--kind",
            "inception",
            "--label",
            "grain",
        ],
    )
    assert r.exit_code != 0 and "--label grain: no such column" in r.output


def test_encode_writes_named_descriptor_columns_and_refuses_to_overwrite(tiny_bench, tmp_path):
    tiles = sorted((tiny_bench.root / "tiles").rglob("SEM_*.png"))[:5]
    out = tmp_path / "d.csv"
    r = CliRunner().invoke(
        cli, ["fingerprint", "encode", *map(str, tiles), "--kind", "descriptors", "--out", str(out), "--quiet"]
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(open(out)))
    assert rows[0][:3] == ["name", "image", "fraction_primary_alpha"] and len(rows[0]) == 2 + 42 and len(rows) == 6
    again = CliRunner().invoke(
        cli, ["fingerprint", "encode", *map(str, tiles), "--kind", "descriptors", "--out", str(out)]
    )
    assert again.exit_code != 0 and "already exists" in again.output
