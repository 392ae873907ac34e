"""The CLI: one-line errors, honest stubs, and the data commands end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from microforge.cli import EXIT_NOT_BUILT, cli

from .conftest import REPO


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("command", ["segment", "train", "generate", "evaluate", "characterize", "fingerprint", "serve"])
def test_unbuilt_commands_say_so_and_fail(command):
    result = run(command, "--prop", "YS=1")
    assert result.exit_code == EXIT_NOT_BUILT
    assert f"microforge {command} is not built yet" in result.output
    assert "Traceback" not in result.output


def test_synth_then_info_then_sheet(tmp_path):
    out = tmp_path / "ti"
    r = run("data", "synth", "--out", out, "--specimens", 4, "--field-px", 128, "--tile-size", 64, "--workers", 1, "--quiet")
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
        (["data", "synth", "--out", "{tmp}/a", "--specimens", "-3"], "--specimens must be positive"),
        (["data", "synth", "--out", "{tmp}/a", "--workers", "0"], "--workers must be at least 1"),
        (["data", "synth", "--out", "{tmp}/a", "--config", "{tmp}/none.yaml"], "config file not found"),
        (["data", "info", "{tmp}/missing"], "dataset folder not found"),
        (["data", "import", "--images", "{tmp}", "--table", "{tmp}/none.csv", "--out", "{tmp}/o"], "property table not found"),
        (["data", "import", "--images", "{tmp}/nodir", "--table", "{tmp}/t.csv", "--out", "{tmp}/o"], "images folder not found"),
        (["data", "import", "--images", "{tmp}", "--table", "{tmp}/t.csv", "--out", "{tmp}/o", "--crop", "1,2"], "--crop"),
        (["data", "import", "--images", "{tmp}", "--table", "{tmp}/t.csv", "--out", "{tmp}/o", "--unit", "YS"], "NAME=VALUE"),
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
    r = run("data", "import", "--images", ti_ab, "--table", ti_ab / "labels.csv", "--out", tmp_path / "ti",
            "--key", "micrograph", "--specimen-column", "condition", "--properties", "temperature_C,time_h,cooling",
            "--categorical", "cooling", "--unit", "temperature_C=C", "--unit", "time_h=h",
            "--meta-columns", "alpha_vol_pct,beta_vol_pct,secondary_alpha_vol_pct", "--mask-column", "mask",
            "--mask-type-column", "mask_type", "--crop", "0,24,0,0", "--scale", "0.25", "--quiet")
    assert r.exit_code == 0, r.output
    assert "of 9 specimens" in r.output


def test_installed_entry_point_and_module():
    script = Path(sys.executable).parent / "microforge"  # the console script of this environment
    for cmd in ([str(script if script.exists() else "microforge"), "--version"], [sys.executable, "-m", "microforge", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
        assert "microforge, version" in out.stdout
