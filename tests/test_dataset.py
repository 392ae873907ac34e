import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader


from microforge.data.dataset import IGNORE_INDEX, MicrographDataset, d4_batch, d4_transform, split_specimens
from microforge.errors import MicroforgeError


def test_split_is_by_specimen_disjoint_and_deterministic():
    names = [f"s{i}" for i in range(10)]
    s = split_specimens(names, seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(names)
    assert split_specimens(list(reversed(names)) * 3, seed=3) == s  # order and repeats do not matter
    assert split_specimens(names, seed=4) != s
    assert [len(v) for v in split_specimens([f"s{i}" for i in range(9)]).values()] == [7, 1, 1]
    assert [len(v) for v in split_specimens(["a", "b", "c"]).values()] == [1, 1, 1]
    with pytest.raises(MicroforgeError):
        split_specimens(["a", "b"], fractions=(0.0, 0.5, 0.5))  # nothing left to train on
    with pytest.raises(MicroforgeError):
        split_specimens(names, fractions=(0.5, 0.5, 0.5))


def test_d4_is_the_eight_symmetries_of_the_square():
    a = np.arange(16).reshape(4, 4)
    images = {d4_transform(a, k).tobytes() for k in range(8)}
    assert len(images) == 8
    assert (d4_transform(a, 0) == a).all()
    assert (d4_transform(a, 1) == np.rot90(a)).all()
    assert (d4_transform(a, 4) == a[:, ::-1]).all()


def test_items_have_documented_shapes(tiny_bench):
    ds = MicrographDataset(tiny_bench.root, split=None, augment=False)
    item = ds[0]
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["mask"].shape == (64, 64) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) <= {0, 1, 2}
    assert item["props"].shape == (7,) and item["props"].abs().max() <= 1.0 + 1e-6
    raw = torch.from_numpy(tiny_bench.properties.normalise(item["props_raw"].numpy()[None])[0]).float()
    assert torch.allclose(raw, item["props"], atol=1e-5)
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch["image"].shape == (5, 1, 64, 64) and batch["props"].shape == (5, 7)


def test_splits_do_not_share_specimens(tiny_bench):
    parts = {
        s: MicrographDataset(tiny_bench.root, split=s, fractions=(0.5, 0.25, 0.25)) for s in ("train", "val", "test")
    }
    specimen_sets = [set(p.specimens) for p in parts.values()]
    assert sum(len(s) for s in specimen_sets) == 4 and len(set.union(*specimen_sets)) == 4
    assert sum(len(p) for p in parts.values()) == len(tiny_bench)
    assert parts["train"].augment and not parts["val"].augment
    assert len(MicrographDataset(tiny_bench.root, split=None, modality="OM")) == len(tiny_bench) // 2


def test_augmentation_moves_image_and_mask_together(tiny_bench):
    plain = MicrographDataset(tiny_bench.root, split=None, augment=False)
    aug = MicrographDataset(tiny_bench.root, split=None, augment=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(24):
        a, p = aug[5], plain[5]
        ks = [k for k in range(8) if np.array_equal(d4_transform(p["image"].numpy()[0], k), a["image"].numpy()[0])]
        assert ks, "augmented image is not a symmetry of the original"
        assert any(np.array_equal(d4_transform(p["mask"].numpy(), k), a["mask"].numpy()) for k in ks)
        seen.update(ks)
    assert len(seen) >= 4


def test_tiles_without_masks_are_ignored(tmp_path, tiny_bench):
    import shutil

    from microforge.data.manifest import read_dataset, write_manifest

    root = tmp_path / "copy"
    shutil.copytree(tiny_bench.root, root)
    ds = read_dataset(root)
    ds.table["mask"] = ""
    write_manifest(root, ds.table, ds.properties)
    item = MicrographDataset(root, split=None)[0]
    assert (item["mask"] == IGNORE_INDEX).all()


def test_unknown_split_and_modality(tiny_bench):
    with pytest.raises(MicroforgeError):
        MicrographDataset(tiny_bench.root, split="holdout")


def test_d4_batch_applies_each_samples_own_symmetry():
    x = torch.arange(8 * 2 * 3 * 3, dtype=torch.float32).view(8, 2, 3, 3)
    ks = torch.tensor([3, 0, 7, 4, 1, 1, 6, 2])
    out = d4_batch(x, ks)
    for i, k in enumerate(ks.tolist()):
        assert np.array_equal(out[i].numpy(), d4_transform(x[i].numpy(), k))
