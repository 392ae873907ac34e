"""The CLI: one-line errors, honest stubs, and the data commands end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from microforge.cli import cli

from .conftest import REPO


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_synth_then_info_then_sheet(tmp_path):
    out = tmp_path / "ti"
    r = run(
        "data", "synth", "--out", out, "--specimens", 4, "--field-px", 128, "--tile-size", 64, "--workers", 1, "--quiet"
    )
    assert r.exit_code == 0, r.output
    assert "wrote 32 tiles of 4 specimens" in r.output
    r = run("data", "info", out)
    assert r.exit_code == 0 and "32 tiles, 4 specimens" in r.output and "YS [MPa]" in r.output
    r = run("data", "sheet", out, "--out", tmp_path / "s.png")
    assert r.exit_code == 0 and (tmp_path / "s.png").stat().st_size > 1000
    r = run("data", "synth", "--out", out, "--specimens", 4, "--field-px", 128, "--tile-size", 64, "--quiet")
    assert r.exit_code == 1 and "already holds results; pass --overwrite" in r.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["data", "synth", "--out", "{tmp}/a", "--specimens", "-3"], "'--specimens': -3 is not in the range"),
        (["data", "synth", "--out", "{tmp}/a", "--workers", "0"], "'--workers': 0 is not in the range"),
        (["data", "synth", "--out", "{tmp}/a", "--config", "{tmp}/none.yaml"], "config file not found"),
        (["data", "info", "{tmp}/missing"], "dataset folder not found"),
        (
            ["data", "import", "--images", "{tmp}", "--table", "{tmp}/none.csv", "--out", "{tmp}/o"],
            "property table not found",
        ),
        (
            ["data", "import", "--images", "{tmp}/nodir", "--table", "{tmp}/t.csv", "--out", "{tmp}/o"],
            "images folder not found",
        ),
        (
            ["data", "import", "--images", "{tmp}", "--table", "{tmp}/t.csv", "--out", "{tmp}/o", "--crop", "1,2"],
            "--crop",
        ),
        (
            ["data", "import", "--images", "{tmp}", "--table", "{tmp}/t.csv", "--out", "{tmp}/o", "--unit", "YS"],
            "NAME=VALUE",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    (tmp_path / "t.csv").write_text("file,YS\n")
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_import_real_set_from_the_command_line(ti_ab, tmp_path):
    r = run(
        "data",
        "import",
        "--images",
        ti_ab,
        "--table",
        ti_ab / "labels.csv",
        "--out",
        tmp_path / "ti",
        "--key",
        "micrograph",
        "--specimen-column",
        "condition",
        "--properties",
        "temperature_C,time_h,cooling",
        "--categorical",
        "cooling",
        "--unit",
        "temperature_C=C",
        "--unit",
        "time_h=h",
        "--meta-columns",
        "alpha_vol_pct,beta_vol_pct,secondary_alpha_vol_pct",
        "--mask-column",
        "mask",
        "--mask-type-column",
        "mask_type",
        "--crop",
        "0,24,0,0",
        "--scale",
        "0.25",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert "of 9 specimens" in r.output


def test_installed_entry_point_and_module():
    script = Path(sys.executable).parent / "microforge"  # the console script of this environment
    for cmd in (
        [str(script if script.exists() else "microforge"), "--version"],
        [sys.executable, "-m", "microforge", "--version"],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
        assert "microforge, version" in out.stdout


def test_characterize_images_and_compare_folders(tmp_path, tiny_bench):
    import json

    from PIL import Image

    from microforge.data.synth.benchmark import make_specimen
    from microforge.data.synth.config import SynthConfig

    for folder, morph in (("eq", "equiaxed"), ("la", "lamellar")):
        (tmp_path / folder).mkdir()
        for i in range(2):
            sp = make_specimen(SynthConfig(field_px=128), i, morph)
            Image.fromarray((sp.images["SEM"] * 255).astype("uint8")).save(tmp_path / folder / f"{i}.png")
    r = run("characterize", tmp_path / "eq" / "0.png", "--out", tmp_path / "one", "--pixel-size", "0.25", "--quiet")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "one" / "descriptors.json").read_text())
    assert report["images"][0]["phase_map"].startswith("classical")
    assert (tmp_path / "one" / "figures" / "0.png").exists()
    r = run("characterize", tmp_path / "eq", tmp_path / "la", "--out", tmp_path / "cmp", "--quiet")
    assert r.exit_code == 0, r.output and "s2 discrepancy (la vs eq)" in r.output
    assert (tmp_path / "cmp" / "compare.png").exists() and (tmp_path / "cmp" / "figures" / "eq_0.png").exists()
    r = run("characterize", tmp_path / "eq", "--out", tmp_path / "cmp", "--quiet")
    assert r.exit_code == 1 and "--overwrite" in r.output
    r = run("characterize", tiny_bench.root, "--out", tmp_path / "ds", "--figures", "0", "--quiet")
    assert (
        r.exit_code == 0
        and json.loads((tmp_path / "ds" / "descriptors.json").read_text())["images"][0]["phase_map"] == "mask"
    )
    r = run("characterize", tmp_path / "nothing.png", "--out", tmp_path / "x")
    assert r.exit_code == 1 and "no such file or folder" in r.output


def test_segment_run_writes_maps_and_fractions(tmp_path, tiny_bench):
    r = run("segment", "run", tiny_bench.root / "tiles" / "S0000", "--out", tmp_path / "maps", "--quiet")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "maps" / "fractions.csv").read_text().startswith("image,map,primary_alpha,beta,secondary_alpha")


@pytest.fixture(scope="module")
def cli_segmenter(tiny_bench, tmp_path_factory):
    """A 3-step attention U-Net trained through `microforge segment train` (result, folder)."""
    out = tmp_path_factory.mktemp("segmenter") / "unet"
    return run("segment", "train", "--data", tiny_bench.root, "--out", out, "--steps", 3, "--crop", 32, "--quiet"), out


def test_segment_train_writes_a_segmenter(cli_segmenter):
    assert cli_segmenter[0].exit_code == 0, cli_segmenter[0].output


def test_segment_evaluate_scores_a_trained_segmenter_per_specimen(cli_segmenter, tiny_bench, tmp_path):
    args = ("--model", cli_segmenter[1], "--split", "all", "--json", tmp_path / "s.json")
    r = run("segment", "evaluate", "--data", tiny_bench.root, *args)
    assert r.exit_code == 0 and "S0000" in r.output and (tmp_path / "s.json").exists()


def test_segment_run_names_a_missing_model(tmp_path, tiny_bench):
    r = run("segment", "run", tiny_bench.root / "tiles" / "S0000", "--out", tmp_path / "m2", "--model", tmp_path / "x")
    assert r.exit_code == 1 and "not found" in r.output


def test_segment_train_refuses_a_bad_crop_and_a_finished_folder(cli_segmenter, tiny_bench):
    base = ("segment", "train", "--data", tiny_bench.root, "--out", cli_segmenter[1], "--steps", 3)
    r = run(*base, "--crop", 30)
    assert r.exit_code == 1 and "crop must be a multiple of 8" in r.output
    r = run(*base, "--crop", 32)
    assert r.exit_code == 1 and "already holds a trained segmenter" in r.output


def test_segment_train_overwrite_retrains_its_own_folder(tiny_bench, tmp_path):
    base = ("segment", "train", "--data", tiny_bench.root, "--out", tmp_path / "unet", "--steps", 3, "--crop", 32)
    assert run(*base, "--quiet").exit_code == 0
    r = run(*base, "--overwrite", "--quiet")
    assert r.exit_code == 0, r.output
