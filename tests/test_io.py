"""The shared helpers of microforge.io: atomic writes, JSON/YAML reading, 8-bit quantising, resizing."""

import json

import numpy as np
import pytest
import torch

from microforge.errors import MicroforgeError
from microforge.io import (
    atomic_path,
    read_json_file,
    read_yaml_mapping,
    resize_batch,
    to_uint8,
    write_json_atomic,
    write_text_atomic,
)


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    write_json_atomic(path, {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]} and path.read_text().endswith("\n")
    assert write_text_atomic(tmp_path / "b.txt", "hi").read_text() == "hi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.txt"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_readers_name_the_file_at_fault(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(MicroforgeError, match="bad.json: not valid JSON"):
        read_json_file(bad, "a model")
    bad.write_text("[1]")
    with pytest.raises(MicroforgeError, match="bad.json: expected a JSON object"):
        read_json_file(bad, "a model")
    with pytest.raises(MicroforgeError, match="none.json: not found; is .* a model"):
        read_json_file(tmp_path / "none.json", "a model")
    y = tmp_path / "c.yaml"
    y.write_text("- a\n- b\n")
    with pytest.raises(MicroforgeError, match="c.yaml: expected a mapping"):
        read_yaml_mapping(y)
    y.write_text("steps: 3\n")
    assert read_yaml_mapping(y) == {"steps": 3}


def test_to_uint8_rounds_to_nearest_and_clips():
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.2, -0.1, 0.502])).tolist() == [0, 128, 255, 255, 0, 128]


def test_resize_batch_area_averages_and_checks_shape():
    x = np.zeros((1, 4, 4), np.float32)
    x[0, :2, :2] = 1.0
    out = resize_batch(x, 2)
    assert out.shape == (1, 1, 2, 2) and torch.equal(out[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(MicroforgeError, match="greyscale"):
        resize_batch(np.zeros((1, 3, 4, 4)), 2)


def test_checkpoints_round_trip_and_an_older_format_is_a_named_error(tmp_path):
    """A checkpoint restores weights and optimiser state exactly; a step folder in the format
    TiM3 runs wrote through accelerate (no optimizer.pt) is refused with the folder to delete."""
    from microforge.training.checkpoints import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", 7, {"net": net}, {"opt": opt})
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    assert load_checkpoint(tmp_path / "ck", {"net": fresh}, {"opt": fresh_opt}) == 7
    assert torch.equal(fresh.weight, net.weight)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    old = tmp_path / "old" / "step_0000250"
    old.mkdir(parents=True)
    (old / "step.json").write_text(json.dumps({"step": 250}))
    (old / "model.safetensors").write_bytes(b"")
    with pytest.raises(MicroforgeError, match="older format .* delete"):
        load_checkpoint(tmp_path / "old", {"net": fresh}, {"opt": fresh_opt})
