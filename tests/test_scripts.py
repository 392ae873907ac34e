"""The measurement helpers of scripts/ (target response, model metrics summary) on known cases."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from microforge.characterize.lamellae import stripes
from microforge.models.tim3 import load_tim3_config

from .conftest import MICRO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from model_metrics import summary  # noqa: E402
from target_response import map_measures, variance_shares  # noqa: E402


def test_variance_shares_of_an_additive_table():
    # target effects (0, 1) plus noise effects (0, 2), nothing else: SS 5 = 1 (targets) + 4 (noise)
    shares = variance_shares(np.array([[0.0, 2.0], [1.0, 3.0]]))
    assert (
        shares["target"] == pytest.approx(0.2)
        and shares["noise"] == pytest.approx(0.8)
        and shares["rest"] == pytest.approx(0.0, abs=1e-12)
    )
    only_target = variance_shares(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    assert only_target["target"] == pytest.approx(1.0) and only_target["noise"] == 0.0


def test_map_measures_of_drawn_phases():
    m = np.full((40, 40), 1, np.uint8)  # beta
    m[10:20, 10:20] = 0  # a 10 x 10 primary-alpha square: fraction 1/16, every chord 10 px
    fraction, chord, width = map_measures(m)
    assert fraction == pytest.approx(100 / 1600) and chord == pytest.approx(10.0) and np.isnan(width)  # no laths
    laths = np.where(stripes((64, 64), 30.0, 3.0, 9.0), 2, 1).astype(
        np.uint8
    )  # secondary-alpha laths 3 px wide in beta
    fraction, chord, width = map_measures(laths)
    assert fraction == 0.0 and np.isnan(chord) and width == pytest.approx(3.0, rel=0.1)


def test_bundled_metrics_summarise_the_example_report():
    """The bundled SEM model's metrics.json is the summary of the committed example report, drawn at
    the guidance the model samples at (11 since candidate s, 2026-12-06)."""
    report = json.loads((REPO / "docs" / "example-report" / "metrics.json").read_text())
    folder = REPO / "src" / "microforge" / "checkpoints" / "ti-sem-tiny"
    carried = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())["config"]
    guidance = config["guidance_scale"]
    again = summary(
        report, carried["command"], carried["report"], guidance, "SEM tiles at 64 px", config["stage2_guidance_scale"]
    )
    assert again == carried and guidance == 11.0 and "stage2_guidance_scale" not in again
    assert again["table1"]["mAcc"] == pytest.approx(
        np.mean([again["table1"][f"acc_{g}"] for g in ("0.1", "0.2", "0.3")])
    )


def test_metrics_record_stage2_guidance_only_where_the_model_sampled_with_it():
    report = json.loads((REPO / "docs" / "example-report-om" / "metrics.json").read_text())
    assert report["options"]["guidance_scale"] is None  # the model's default
    own = summary(report, "c", "r", 8.0, "SEM tiles at 64 px", 11.0)
    assert own["guidance_scale"] == 8.0 and own["stage2_guidance_scale"] == 11.0
    assert "stage2_guidance_scale" not in summary(report, "c", "r", 8.0)
    # DDIM's eta is the model's: recorded where not 0, stage 2's where it differs from stage 1's
    assert "ddim_eta" not in own and "stage2_ddim_eta" not in own
    stochastic = summary(report, "c", "r", 11.0, etas=(0.0, 1.0))
    assert stochastic["stage2_ddim_eta"] == 1.0 and "ddim_eta" not in stochastic
    both = summary(report, "c", "r", 11.0, etas=(0.5, 0.5))
    assert both["ddim_eta"] == 0.5 and "stage2_ddim_eta" not in both
    forced = {**report, "options": {**report["options"], "guidance_scale": 6.0}}  # --guidance 6: both stages
    again = summary(forced, "c", "r", 8.0, "SEM tiles at 64 px", 11.0)
    assert again["guidance_scale"] == 6.0 and "stage2_guidance_scale" not in again


def test_om_metrics_summarise_its_report():
    """The OM model's metrics.json summarises its committed report, read by its own OM-trained
    property regressor; a report made without a regressor leaves the accuracy fields empty and
    keeps every realism, oracle and microstructure number."""
    report = json.loads((REPO / "docs" / "example-report-om" / "metrics.json").read_text())
    carried = json.loads((REPO / "src" / "microforge" / "checkpoints" / "ti-om-tiny" / "metrics.json").read_text())
    model = json.loads((REPO / "src" / "microforge" / "checkpoints" / "ti-om-tiny" / "config.json").read_text())
    etas = (model["config"].get("ddim_eta", 0.0), model["config"]["stage2_ddim_eta"])  # (0, 1): stage 2 stochastic
    again = summary(report, carried["command"], carried["report"], 11.0, "OM tiles at 64 px", etas=etas)
    assert again == carried and again["stage2_ddim_eta"] == 1.0
    assert again["table1"]["mAcc"] == report["main"]["accuracy"]["mAcc"] and set(again["per_property"]) == {
        *("YS", "TS", "EF", "RH", "IT", "DCS", "CFS")
    }
    assert again["guidance_scale"] == 11.0 and again["data"].endswith("OM tiles at 64 px")
    assert set(again["oracle_mAcc"]) == {
        "segmented_generated",
        "ceiling_segmented_real",
        "ceiling_true_maps",
        "stage1_maps",
    }
    bare = summary({**report, "main": {**report["main"], "accuracy": None}}, "c", "r", 4.0)
    assert bare["per_property"] is None and bare["table1"]["mAcc"] is None
    assert bare["table1"]["fid"] == report["main"]["fid"]


def test_model_metrics_names_a_missing_model_folder_in_one_line(tmp_path):
    import subprocess

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "metrics.json").write_text("{}")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "model_metrics.py"), str(tmp_path / "report"), str(tmp_path / "m")]
        + ["--command", "microforge evaluate"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    missing = tmp_path / "m" / "config.json"
    assert (
        done.stderr.strip() == f"Error: {missing}: not found (MODEL is a TiM3 model folder, REPORT an evaluate report)"
    )


def test_store_model_writes_float16_weights_into_a_new_folder_only(micro_model, tmp_path):
    import subprocess

    script = [sys.executable, str(REPO / "scripts" / "store_model.py"), str(micro_model)]
    done = subprocess.run(script + [str(tmp_path / "half")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "half" / "config.json").read_text())["weights_dtype"] == "float16"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = subprocess.run(script + [str(tmp_path / "busy")], capture_output=True, text=True)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"Error: {tmp_path / 'busy'}: exists and is not an empty folder; choose a new one"
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_seed_script_runs_as_a_process(micro_model, tmp_path):
    """The suite's seeded runs call scripts/seed_run_from_model.py in-process (conftest); here it
    runs as a user runs it: a process that seeds a folder, then one that refuses a used folder."""
    config = tmp_path / "same.yaml"
    config.write_text(yaml.safe_dump(load_tim3_config(MICRO).to_dict()))
    seed = [sys.executable, str(REPO / "scripts" / "seed_run_from_model.py"), str(micro_model), str(config)]
    done = subprocess.run([*seed, str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("to train: nothing"), done.stderr
    refused = subprocess.run([*seed, str(micro_model)], capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
