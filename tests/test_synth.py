"""The synthetic titanium benchmark: determinism, phase fractions, property relations, resume."""

import hashlib
import os

import numpy as np
import pytest

from microforge.config import load_config
from microforge.data.synth.config import SynthConfig
from microforge.data.images import read_image
from microforge.data.manifest import read_dataset
from microforge.data.phase_map import phase_fractions
from microforge.data.synth.benchmark import build_benchmark, make_specimen, morphology_schedule
from microforge.data.synth.morphology import generate_microstructure
from microforge.data.synth.params import MORPHOLOGIES, sample_params
from microforge.data.synth.relations import noiseless_properties, specimen_properties
from microforge.errors import MicroforgeError

from .conftest import REPO, TINY

SMALL = SynthConfig(n_specimens=4, field_px=192, tile_size=64)


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and ".parts" not in p.parts and p.suffix in (".png", ".csv", ".json")
    ):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_specimens_are_deterministic():
    a, b = make_specimen(TINY, 2), make_specimen(TINY, 2)
    assert a.params == b.params and a.properties == b.properties
    assert (a.structure.phase_map == b.structure.phase_map).all()
    for m in ("OM", "SEM"):
        assert (a.images[m] == b.images[m]).all()
    c = make_specimen(SynthConfig(n_specimens=4, field_px=256, tile_size=64, seed=1), 2)
    assert c.params != a.params


def test_build_is_identical_for_any_worker_count(tmp_path):
    build_benchmark(tmp_path / "one", SMALL, workers=1, progress=False)
    build_benchmark(tmp_path / "two", SMALL, workers=2, progress=False)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def test_schedule_covers_every_morphology_in_proportion():
    assert sorted(morphology_schedule(SynthConfig(n_specimens=4))) == sorted(MORPHOLOGIES)
    sched = morphology_schedule(SynthConfig(n_specimens=10, morphology_weights={"lamellar": 3.0, "equiaxed": 1.0}))
    # quotas 2.5 / 7.5: the tied remainder goes to the morphology listed first (equiaxed)
    assert sched.count("equiaxed") == 3 and sched.count("lamellar") == 7


@pytest.mark.parametrize("morphology", MORPHOLOGIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_field_phase_fractions_match_the_parameters(morphology, seed):
    rng = np.random.default_rng(seed)
    p = sample_params(rng, morphology)
    ms = generate_microstructure(p, (320, 320), 0.25, rng)
    measured = phase_fractions(ms.phase_map)
    assert np.abs(measured - p.target_fractions).max() < 0.02  # the 2 points
    assert np.abs(measured - p.target_fractions).max() < 1e-4  # quantile cuts make it exact
    assert set(np.unique(ms.phase_map)) <= {0, 1, 2}


def test_tile_masks_average_to_the_specimen_targets(tiny_bench):
    t = tiny_bench.table
    specimens = {r["specimen"]: r for r in __import__("csv").DictReader(open(tiny_bench.root / "specimens.csv"))}
    for sid, rows in t[t["modality"] == "SEM"].groupby("specimen"):
        sp = specimens[sid]
        f_p, r_b = float(sp["primary_alpha_fraction"]), float(sp["beta_in_transformed"])
        target = np.array([f_p, (1 - f_p) * r_b, (1 - f_p) * (1 - r_b)])
        tiles = np.mean([phase_fractions(read_image(tiny_bench.root / m)) for m in rows["mask"]], axis=0)
        assert np.abs(tiles - target).max() < 0.02, sid


def _base(morphology="bimodal"):
    return sample_params(np.random.default_rng(5), morphology)


def test_finer_laths_are_stronger_and_less_ductile():
    p = _base()
    coarse, fine = (
        noiseless_properties(p.replace(lath_thickness_um=1.5)),
        noiseless_properties(p.replace(lath_thickness_um=0.6)),
    )
    for k in ("YS", "TS", "RH", "DCS"):
        assert fine[k] > coarse[k], k
    for k in ("EF", "IT", "CFS"):
        assert fine[k] < coarse[k], k


def test_smaller_primary_alpha_is_stronger():
    p = _base()
    assert (
        noiseless_properties(p.replace(primary_alpha_size_um=4.0))["YS"]
        > noiseless_properties(p.replace(primary_alpha_size_um=10.0))["YS"]
    )


def test_hardness_is_monotone_in_strength_and_ts_exceeds_ys():
    rng = np.random.default_rng(0)
    props = [noiseless_properties(sample_params(rng, MORPHOLOGIES[i % 4])) for i in range(200)]
    ts, rh = np.array([p["TS"] for p in props]), np.array([p["RH"] for p in props])
    order = np.argsort(ts)
    assert (np.diff(rh[order]) >= 0).all()
    assert all(p["TS"] > p["YS"] for p in props)


@pytest.mark.parametrize("colony", [4.0, 10.0, 40.0])
def test_lamellar_structures_are_tougher(colony):
    p = _base("basketweave").replace(colony_size_um=colony)
    it = [
        noiseless_properties(p.replace(morphology=m))["IT"] for m in ("equiaxed", "bimodal", "basketweave", "lamellar")
    ]
    assert it == sorted(it)


def test_properties_land_in_table4_ranges():
    rng = np.random.default_rng(1)
    props = [noiseless_properties(sample_params(rng, MORPHOLOGIES[i % 4])) for i in range(400)]
    lo = {"YS": 780, "TS": 850, "EF": 1.5, "RH": 25, "IT": 4, "DCS": 1200, "CFS": 0.04}
    hi = {"YS": 1420, "TS": 1500, "EF": 20, "RH": 60, "IT": 60, "DCS": 1800, "CFS": 0.30}
    for k in lo:
        v = np.array([p[k] for p in props])
        assert lo[k] <= v.min() and v.max() <= hi[k], k


def test_specimen_noise_is_seeded_and_sized():
    p = _base()
    clean = noiseless_properties(p)
    assert specimen_properties(p, None) == clean
    draws = np.array([[specimen_properties(p, np.random.default_rng(s))["YS"]] for s in range(400)])
    assert abs(draws.std() - 15.0) < 2.0 and abs(draws.mean() - clean["YS"]) < 3.0


def test_resume_regenerates_only_missing_specimens(tmp_path):
    out = tmp_path / "b"
    build_benchmark(out, SMALL, progress=False)
    reference = _digest(out)
    kept = out / "tiles" / "S0000" / "SEM_y0000_x0000.png"
    stamp = kept.stat().st_mtime_ns
    # simulate a build killed after three specimens: no manifest, one part missing
    (out / "manifest.csv").unlink()
    (out / ".parts" / "S0003.json").unlink()
    os.utime(kept, ns=(stamp, stamp))
    build_benchmark(out, SMALL, progress=False)
    assert kept.stat().st_mtime_ns == stamp  # finished specimens are not redone
    assert _digest(out) == reference


def test_finished_output_is_refused_and_config_changes_caught(tmp_path):
    out = tmp_path / "b"
    build_benchmark(out, SMALL, progress=False)
    with pytest.raises(MicroforgeError, match="--overwrite"):
        build_benchmark(out, SMALL, progress=False)
    (out / "manifest.csv").unlink()
    with pytest.raises(MicroforgeError, match="another config"):
        build_benchmark(out, SynthConfig(n_specimens=4, field_px=192, tile_size=64, seed=9), progress=False)
    build_benchmark(out, SMALL, progress=False, overwrite=True)
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    with pytest.raises(MicroforgeError, match="was not written by microforge"):
        build_benchmark(tmp_path / "stranger", SMALL, progress=False, overwrite=True)
    assert (tmp_path / "stranger" / "notes.txt").exists()


def test_dataset_files_and_contact_sheet(tiny_bench):
    ds = read_dataset(tiny_bench.root)
    assert len(ds) == 4 * 16 * 2
    assert set(ds.table["morphology"]) == set(MORPHOLOGIES)
    assert ds.properties.names == ["YS", "TS", "EF", "RH", "IT", "DCS", "CFS"]
    tile = read_image(ds.root / ds.table["tile"].iloc[0])
    assert tile.shape == (64, 64) and tile.dtype == np.uint8
    sheet = read_image(ds.root / "contact_sheet.png")
    assert sheet.shape[0] > 300 and sheet.shape[1] > 600


def test_shipped_configs_load():
    default = load_config(SynthConfig, REPO / "configs" / "synth-default.yaml")
    assert default == SynthConfig()
    tiny = load_config(SynthConfig, REPO / "configs" / "synth-tiny.yaml")
    assert tiny.n_specimens == 12


def test_bad_config_keys_are_named(tmp_path):
    (tmp_path / "c.yaml").write_text("n_specimens: 3\nspecimen_count: 4\n")
    with pytest.raises(MicroforgeError, match="specimen_count"):
        load_config(SynthConfig, tmp_path / "c.yaml")
    with pytest.raises(MicroforgeError):
        SynthConfig(n_specimens=0)
    with pytest.raises(MicroforgeError):
        SynthConfig(morphology_weights={"martensite": 1.0})
