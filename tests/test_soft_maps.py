"""Soft phase maps (``map_representation: soft``): each class's area share per pixel, box-averaged
from the mask at its own size, in the trainer, the pipeline and the split loader."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microforge.data.dataset import class_fractions, d4_batch, load_split, onehot_map
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import TiM3Trainer, train_tim3

from .conftest import MICRO, assert_micro_samples_reproduce

SOFT = {"map_representation": "soft", "map_condition": "space_to_depth"}


def _micro(**changes) -> object:
    return tim3_config_from_dict({**load_tim3_config(MICRO).to_dict(), **changes})


def test_class_fractions_box_average_each_class():
    phase_map = torch.tensor([[[0, 1, 2, 2], [0, 0, 2, 2], [1, 1, 1, 2], [1, 1, 2, 2]]])
    shares = class_fractions(phase_map, 2)
    assert shares.shape == (1, 3, 2, 2) and shares.dtype == torch.float32
    expected = torch.tensor(
        [
            [[0.75, 0.0], [0.0, 0.0]],  # primary alpha
            [[0.25, 0.0], [1.0, 0.25]],  # beta
            [[0.0, 1.0], [0.0, 0.75]],  # secondary alpha
        ]
    )
    assert torch.equal(shares[0], expected)
    assert torch.equal(class_fractions(phase_map, 4), onehot_map(phase_map))  # same size: the one-hot map


def test_soft_maps_keep_laths_that_nearest_resizing_erases():
    """A colony of 1 px laths (beta between secondary alpha), halved: nearest sampling keeps
    every other column and the beta vanishes; the shares keep it at its true 50 %."""
    laths = torch.tensor([[1, 2] * 4] * 8)[None]  # (1, 8, 8), vertical 1 px stripes
    nearest = F.interpolate(laths[:, None].float(), size=(4, 4), mode="nearest")[:, 0].long()
    assert set(nearest.unique().tolist()) == {1}  # one class left: the colony is gone
    shares = class_fractions(laths, 4)
    assert torch.equal(shares[0, 1], torch.full((4, 4), 0.5)) and torch.equal(shares[0, 2], torch.full((4, 4), 0.5))


def test_load_split_gives_shares_of_the_native_masks(tiny_bench):
    split = load_split(tiny_bench.root, "train", (0.5, 0.25, 0.25), 0, "SEM", 32, masks=True, shares=True)
    native = load_split(tiny_bench.root, "train", (0.5, 0.25, 0.25), 0, "SEM", None, masks=True)
    assert split.shares.shape == (len(split), 3, 32, 32) and native.masks.shape[-1] == 64
    assert torch.equal(split.shares, class_fractions(native.masks, 32))
    assert torch.allclose(split.shares.sum(1), torch.ones(len(split), 32, 32))
    assert load_split(tiny_bench.root, "train", (0.5, 0.25, 0.25), 0, "SEM", 32, masks=True).shares is None


def test_unknown_map_representation_is_refused():
    with pytest.raises(MicroforgeError, match="map_representation must be one of hard, soft, got 'fuzzy'"):
        _micro(map_representation="fuzzy")


def test_trainer_shows_every_phase_the_shares(tiny_bench, tmp_path):
    soft = TiM3Trainer(tiny_bench.root, tmp_path / "unused", _micro(**SOFT), progress=False)
    hard = TiM3Trainer(tiny_bench.root, tmp_path / "unused", _micro(), progress=False)
    n = len(soft.data)
    assert soft.data.shares.shape == (n, 3, 32, 32) and hard.data.shares is None
    idx, ks = torch.tensor([0, 3, 5]), torch.tensor([0, 1, 6])
    assert torch.equal(soft._map_shares(idx, ks), d4_batch(soft.data.shares[idx], ks))
    assert torch.equal(hard._map_shares(idx, ks), onehot_map(d4_batch(hard.data.maps[idx], ks)))
    # the shares carry what the hard maps lose: fractional pixels on the phase boundaries
    fractional = ((soft.data.shares > 0) & (soft.data.shares < 1)).float().mean()
    assert 0.05 < float(fractional) < 0.9


def test_soft_map_model_trains_samples_and_reads_true_maps(tiny_bench, tmp_path):
    out = train_tim3(tiny_bench.root, tmp_path / "m", _micro(**SOFT), progress=False)
    pipe = TiM3Pipeline.from_pretrained(out)
    assert pipe.cfg.map_representation == "soft"
    assert_micro_samples_reproduce(pipe, tmp_path)
    # stage 1's decoded map: class shares summing to 1 at every pixel, whose argmax is the map shown
    zm = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    shares = pipe._decode_map(zm)
    assert shares.shape == (2, 3, 32, 32) and torch.allclose(shares.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    # true maps reach stage 2 as shares of the native mask; hard indices are still accepted
    masks = torch.tensor(np.random.default_rng(0).integers(0, 3, (2, 64, 64)))
    true = pipe.model_maps(masks)
    assert torch.equal(true, class_fractions(masks, 32))
    y = torch.zeros(2, 7)
    drawn = pipe.draw_micrographs(y, true, 3, 1.0, "ddim", torch.Generator().manual_seed(0))
    hard = pipe.draw_micrographs(y, true.argmax(1), 3, 1.0, "ddim", torch.Generator().manual_seed(0))
    assert drawn.shape == hard.shape == (2, 32, 32) and not torch.equal(drawn, hard)


def test_hard_map_model_reads_true_maps_nearest_resized(micro_model):
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    masks = torch.tensor([[[1, 2] * 32] * 64])
    maps = pipe.model_maps(masks)
    assert maps.dtype == torch.long and maps.shape == (1, 32, 32) and set(maps.unique().tolist()) == {1}
