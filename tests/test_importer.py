"""`data import`: the real Ti set, tiling geometry, and every bad-input case of the issue."""

import csv

import numpy as np
import pytest
from PIL import Image

from microforge.data.images import read_image
from microforge.data.importer import ImportOptions, import_dataset
from microforge.data.phase_map import phase_fractions
from microforge.data.tiling import Crop, normalise_grey
from microforge.errors import MicroforgeError


def ti_options(root, out, **kw):
    return ImportOptions(
        images=root,
        table=root / "labels.csv",
        out=out,
        key_column="micrograph",
        specimen_column="condition",
        properties=["temperature_C", "time_h", "cooling"],
        categorical=["cooling"],
        units={"temperature_C": "C", "time_h": "h"},
        meta_columns=["alpha_vol_pct", "beta_vol_pct", "secondary_alpha_vol_pct"],
        mask_column="mask",
        mask_type_column="mask_type",
        modality="SEM",
        crop=Crop(0, 24, 0, 0),
        **kw,
    )


def test_real_ti_set_imports_with_its_phase_fractions(ti_ab, tmp_path):
    ds = import_dataset(ti_options(ti_ab, tmp_path / "ti", scale=0.5), progress=False)
    t = ds.table
    assert t["specimen"].nunique() == 9
    # 1408x1076 px after the crop, halved: 704x538 -> 6 x 5 tiles of 128 px (last row/column flush)
    assert len(t) == 9 * 30
    cooling = ds.properties.spec("cooling")
    assert cooling.categories == ("AC", "WQ") and ds.properties.spec("temperature_C").unit == "C"
    assert sorted(set(t["cooling"])) == [0.0, 1.0]
    assert t.loc[t["specimen"] == "900C5hWQ", "cooling"].iloc[0] == 1.0
    for specimen, rows in t.groupby("specimen"):
        measured = 100 * np.mean([phase_fractions(read_image(ds.root / m)) for m in rows["mask"]], axis=0)
        recorded = [float(rows.iloc[0][c] or 0) for c in ("alpha_vol_pct", "beta_vol_pct", "secondary_alpha_vol_pct")]
        assert np.abs(measured - recorded).max() < 2.0, specimen


def _write_set(root, rows, header=("file", "YS", "TS"), size=(300, 200)):
    """A small import case: grey images with a gradient, plus a table."""
    root.mkdir(exist_ok=True)
    img = (np.add.outer(np.arange(size[1]), np.arange(size[0])) % 256).astype(np.uint8)
    for r in rows:
        if r[0] and not (root / r[0]).exists():
            Image.fromarray(img).save(root / r[0])
    with open(root / "props.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return img


def _opts(root, out, **kw):
    return ImportOptions(images=root, table=root / "props.csv", out=out, tile_size=64, **kw)


def test_tiling_geometry_and_normalisation(tmp_path):
    img = _write_set(tmp_path / "in", [("a.png", 900, 950), ("b.png", 1000, 1100)])
    ds = import_dataset(_opts(tmp_path / "in", tmp_path / "out", overlap=16), progress=False)
    a = ds.table[ds.table["specimen"] == "a"]
    # 300x200 px, 64 px tiles, stride 48: x starts 0,48,...,192 and 236; y starts 0,48,96 and 136
    assert len(a) == 6 * 4
    expect = normalise_grey(img, 90)
    tile = read_image(ds.root / a["tile"].iloc[-1])
    assert np.abs(tile.astype(float) - np.rint(expect[136:200, 236:300] * 255)).max() <= 1
    assert ds.properties.spec("YS").min == 900 and ds.properties.spec("TS").max == 1100
    assert ds.properties.spec("YS").unit == "MPa" and ds.properties.spec("YS").noise_std == 50.0


def test_masks_are_resized_to_the_image(tmp_path):
    root = tmp_path / "in"
    _write_set(root, [("a.png", 900, 950, "m.png")], header=("file", "YS", "TS", "mask"))
    m = np.zeros((100, 150), np.uint8)
    m[:, 75:] = 255  # right half beta, at half the image's resolution
    Image.fromarray(m).save(root / "m.png")
    ds = import_dataset(
        _opts(root, tmp_path / "out", mask_column="mask", mask_type="binary_white_is_beta"), progress=False
    )
    f = np.mean([phase_fractions(read_image(ds.root / p)) for p in ds.table["mask"]], axis=0)
    # beta is x >= 150; tile columns start at 0, 64, 128, 192, 236 -> beta shares 0, 0, 42/64, 1, 1
    assert f[1] == pytest.approx((42 / 64 + 2) / 5, abs=1e-9)


def _error(tmp_path, rows, match, header=("file", "YS", "TS"), **kw):
    _write_set(tmp_path / "in", rows, header)
    with pytest.raises(MicroforgeError, match=match):
        import_dataset(_opts(tmp_path / "in", tmp_path / "out", **kw), progress=False)


def test_missing_image(tmp_path):
    _write_set(tmp_path / "in", [("a.png", 900, 950)])
    with open(tmp_path / "in" / "props.csv", "a") as f:
        f.write("gone.png,900,950\n")
    with pytest.raises(MicroforgeError, match=r"props.csv line 3 \(gone.png\): image .*gone.png not found"):
        import_dataset(_opts(tmp_path / "in", tmp_path / "out"), progress=False)


@pytest.mark.parametrize(
    "value,match",
    [
        ("nan", r"line 3 \(b.png\): property TS is 'nan'"),
        ("strong", r"line 3 \(b.png\): property TS = 'strong' is not a number"),
        ("", "is not a number"),
        ("inf", "finite"),
    ],
)
def test_bad_property_values(tmp_path, value, match):
    _error(tmp_path, [("a.png", 900, 950), ("b.png", 900, value)], match)


def test_unknown_columns(tmp_path):
    _error(tmp_path, [("a.png", 900, 950)], r"unknown column\(s\) EF", properties=["YS", "EF"])
    _error(tmp_path, [("a.png", 900, 950)], r"unknown column\(s\) TS; list them", properties=["YS"])
    _error(tmp_path, [("a.png", 900, 950)], r"unknown column\(s\) shape", mask_column="shape")


def test_unreadable_and_empty_images(tmp_path):
    root = tmp_path / "in"
    _write_set(root, [("a.png", 900, 950)])
    (root / "a.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(MicroforgeError, match=r"line 2 \(a.png\): image .*a.png cannot be read"):
        import_dataset(_opts(root, tmp_path / "out"), progress=False)
    (root / "a.png").write_bytes(b"")
    with pytest.raises(MicroforgeError, match=r"line 2 \(a.png\): image .*a.png is an empty file"):
        import_dataset(_opts(root, tmp_path / "out"), progress=False)


def test_mask_of_the_wrong_size(tmp_path):
    root = tmp_path / "in"
    _write_set(root, [("a.png", 900, 950, "m.png")], header=("file", "YS", "TS", "mask"))
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(root / "m.png")  # square, image is 300x200
    with pytest.raises(
        MicroforgeError, match=r"line 2 \(a.png\): mask .*m.png is 200x200 px but the image is 300x200 px"
    ):
        import_dataset(_opts(root, tmp_path / "out", mask_column="mask"), progress=False)


def test_missing_mask_and_bad_mask_type(tmp_path):
    _error(
        tmp_path,
        [("a.png", 900, 950, "nomask.png")],
        "mask .*nomask.png not found",
        header=("file", "YS", "TS", "mask"),
        mask_column="mask",
    )
    _error(tmp_path, [("a.png", 900, 950)], "--mask-type 'jpeg'", mask_type="jpeg")


def test_image_smaller_than_a_tile_and_bad_scale(tmp_path):
    _write_set(tmp_path / "in", [("a.png", 900, 950)])
    with pytest.raises(MicroforgeError, match="smaller than one 64 px tile"):
        import_dataset(_opts(tmp_path / "in", tmp_path / "out", scale=0.2), progress=False)
    with pytest.raises(MicroforgeError, match="--scale"):
        import_dataset(_opts(tmp_path / "in", tmp_path / "out2", scale=-1.0), progress=False)


def test_existing_results_are_refused(tmp_path):
    _write_set(tmp_path / "in", [("a.png", 900, 950)])
    import_dataset(_opts(tmp_path / "in", tmp_path / "out"), progress=False)
    with pytest.raises(MicroforgeError, match="--overwrite"):
        import_dataset(_opts(tmp_path / "in", tmp_path / "out"), progress=False)
    # 300x200 px in 64 px tiles: x starts 0,64,128,192,236 and y starts 0,64,128,136
    assert len(import_dataset(_opts(tmp_path / "in", tmp_path / "out", overwrite=True), progress=False)) == 20


def test_a_table_without_properties_gives_an_unlabelled_dataset_that_conditional_trainers_refuse(tmp_path):
    _write_set(tmp_path / "in", [("a.png",), ("b.png",), ("c.png",)], header=("file",))
    ds = import_dataset(_opts(tmp_path / "in", tmp_path / "ds"), progress=False)
    assert (
        len(ds.properties) == 0 and len(ds) == 3 * 20
    )  # 300 x 200 px: 5 x 4 tiles of 64 px (the last row and column flush)
    from microforge.training.regressor_trainer import RegressorTrainConfig, train_regressor

    with pytest.raises(MicroforgeError, match="has no properties, and train regressor needs at least one"):
        train_regressor(
            tmp_path / "ds",
            tmp_path / "reg",
            RegressorTrainConfig(split_fractions=(0.34, 0.33, 0.33), modality=None),
            progress=False,
        )
    assert not (tmp_path / "reg").exists()
