"""A dataset's content digest: what changes it, what does not, and who records and checks it."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from microforge.cli import cli
from microforge.data.digest import dataset_digest
from microforge.data.outdir import claim_run_folder
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config
from microforge.training.checkpoints import RUN_DATA
from microforge.training.regressor_trainer import train_regressor
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO, TINY_REGRESSOR


@pytest.fixture
def bench_copy(tiny_bench, tmp_path):
    """A writable copy of the tiny benchmark."""
    return shutil.copytree(tiny_bench.root, tmp_path / "ti")


def _first_tile(root):
    return root / next(line.split(",")[0] for line in (root / "manifest.csv").read_text().splitlines()[1:])


def test_digest_is_the_content_not_the_png_encoding(tiny_bench, bench_copy):
    digest = dataset_digest(tiny_bench.root)
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert int(digest[7:], 16) >= 0 and dataset_digest(tiny_bench.root) == digest
    assert dataset_digest(bench_copy) == digest
    tile = _first_tile(bench_copy)
    pixels = np.asarray(Image.open(tile))
    before = tile.read_bytes()
    Image.fromarray(pixels).save(tile, compress_level=0)  # the same pixels, other bytes
    assert tile.read_bytes() != before and dataset_digest(bench_copy) == digest
    changed = pixels.copy()
    changed[0, 0] ^= 1  # one pixel, one grey level
    Image.fromarray(changed).save(tile)
    assert dataset_digest(bench_copy) != digest


def test_digest_covers_the_table(tiny_bench, bench_copy):
    manifest = bench_copy / "manifest.csv"
    lines = manifest.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    ys = header.index("YS")
    row[ys] = repr(float(row[ys]) + 1e-9)  # a property value, in its ninth decimal
    manifest.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert dataset_digest(bench_copy) != dataset_digest(tiny_bench.root)


def test_digest_of_a_one_tile_dataset_is_its_documented_order(tmp_path):
    """The digest's order, spelled out with hashlib for a dataset of one 2 x 3 tile and its mask."""
    root = tmp_path / "one"
    (root / "t").mkdir(parents=True)
    tile = np.array([[0, 10, 20], [30, 40, 255]], np.uint8)
    mask = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    Image.fromarray(tile).save(root / "t" / "a.png")
    Image.fromarray(mask).save(root / "t" / "m.png")
    props = {"format": "microforge-properties/1", "properties": [{"name": "YS", "unit": "MPa", "min": 1, "max": 2}]}
    (root / "properties.json").write_text(json.dumps(props))
    (root / "manifest.csv").write_text("tile,specimen,modality,mask,YS\nt/a.png,S0,SEM,t/m.png,1.5\n")
    from microforge.data.manifest import read_dataset

    spec = read_dataset(root).properties.to_json()
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    h.update(b"tile,specimen,modality,mask,YS\nt/a.png,S0,SEM,t/m.png,1.5\n")
    for a in (tile, mask):
        h.update(b"|u1(2, 3)" + a.tobytes())
    assert dataset_digest(root) == "sha256:" + h.hexdigest()


def test_info_prints_the_digest(tiny_bench):
    r = CliRunner().invoke(cli, ["data", "info", str(tiny_bench.root), "--digest"])
    assert r.exit_code == 0, r.output
    assert f"content digest: {dataset_digest(tiny_bench.root)}" in r.output
    assert "content digest" not in CliRunner().invoke(cli, ["data", "info", str(tiny_bench.root)]).output


def test_a_trained_model_records_its_data(tiny_bench, micro_model):
    record = json.loads((micro_model / "config.json").read_text())
    assert record["data_digest"] == dataset_digest(tiny_bench.root)
    assert json.loads((micro_model / RUN_DATA).read_text())["data_digest"] == [record["data_digest"]]


def test_resume_on_another_dataset_is_refused(tiny_bench, tmp_path):
    cfg = load_tim3_config(MICRO)
    out = tmp_path / "run"
    claim_run_folder(out, "train tim3")
    (out / "run_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    other = "sha256:" + "0" * 64
    (out / RUN_DATA).write_text(json.dumps({"data": ["elsewhere"], "data_digest": [other]}))
    with pytest.raises(MicroforgeError, match=f"started on another dataset \\({other}\\).*resume with the same --data"):
        train_tim3(tiny_bench.root, out, cfg, resume=True, progress=False)
    assert not (out / "config.json").exists()


def test_an_unreadable_run_data_record_is_named(tiny_bench, tmp_path):
    cfg = load_tim3_config(MICRO)
    out = tmp_path / "run"
    claim_run_folder(out, "train tim3")
    (out / "run_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    (out / RUN_DATA).write_text("{not json")
    with pytest.raises(MicroforgeError, match=f"{RUN_DATA}: unreadable"):
        train_tim3(tiny_bench.root, out, cfg, resume=True, progress=False)


def test_the_regressor_records_its_data_and_refuses_a_resume_on_another(tiny_bench, bench_copy, tmp_path, monkeypatch):
    from .conftest import interrupted_at_step

    out = tmp_path / "reg"
    with interrupted_at_step(monkeypatch, 5), pytest.raises(KeyboardInterrupt):
        train_regressor(tiny_bench.root, out, TINY_REGRESSOR, progress=False)
    tile = _first_tile(bench_copy)
    pixels = np.asarray(Image.open(tile)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(tile)
    with pytest.raises(MicroforgeError, match="started on another dataset"):
        train_regressor(bench_copy, out, TINY_REGRESSOR, resume=True, progress=False)
    metrics = train_regressor(tiny_bench.root, out, TINY_REGRESSOR, resume=True, progress=False)
    assert metrics["data_digest"] == dataset_digest(tiny_bench.root)
