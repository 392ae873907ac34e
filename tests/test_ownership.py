"""No user file is ever lost: microforge writes only into folders it created or empty ones, and
--overwrite removes only what it wrote. Each case is run on real folders in a temporary directory."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from microforge.cli import cli
from microforge.data.outdir import OWNER_FILE, check_output_file, prepare_output_dir, read_owner, record_outputs
from microforge.errors import MicroforgeError
from microforge.serve.explorer import KEPT_RUNS, Explorer

TARGET = [
    "--prop",
    "YS=1000",
    "--prop",
    "TS=1080",
    "--prop",
    "EF=12",
    "--prop",
    "RH=37",
    "--prop",
    "IT=30",
    "--prop",
    "DCS=1450",
    "--prop",
    "CFS=0.2",
]


def run(args: list[str]):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def one_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


def user_project(root):
    """A folder of a user's own work: an image folder and notes."""
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(root / "images" / "real.tif")
    (root / "NOTES.md").write_text("my notes")
    return root


def untouched(root) -> None:
    assert (root / "NOTES.md").read_text() == "my notes"
    assert sorted(p.name for p in (root / "images").iterdir()) == ["real.tif"]


def test_generate_refuses_a_users_folder_with_and_without_overwrite(micro_model, tmp_path):
    proj = user_project(tmp_path / "proj")
    one_error(
        run(["generate", "--model", micro_model, *TARGET, "-n", "1", "--out", proj]), "was not written by microforge"
    )
    one_error(
        run(["generate", "--model", micro_model, *TARGET, "-n", "1", "--out", proj, "--overwrite"]),
        "was not written by microforge",
    )
    untouched(proj)
    assert not (proj / OWNER_FILE).exists()


def test_overwrite_removes_only_what_generate_wrote(micro_model, tmp_path):
    out = tmp_path / "g"
    assert run(["generate", "--model", micro_model, *TARGET, "-n", "2", "--steps", "2", "--out", out]).exit_code == 0
    assert read_owner(out)["written"] == ["contact_sheet.png", "images", "maps", "run.json"]
    (out / "NOTES.md").write_text("my notes")  # the user adds a file beside the results
    one_error(
        run(["generate", "--model", micro_model, *TARGET, "-n", "1", "--out", out]),
        "already holds results; pass --overwrite",
    )
    assert (
        run(
            ["generate", "--model", micro_model, *TARGET, "-n", "1", "--steps", "2", "--out", out, "--overwrite"]
        ).exit_code
        == 0
    )
    assert (out / "NOTES.md").read_text() == "my notes"
    assert len(list((out / "images").iterdir())) == 1  # the earlier two samples are gone, the new one written
    assert "NOTES.md" not in read_owner(out)["written"]
    assert (
        run(
            ["generate", "--model", micro_model, *TARGET, "-n", "1", "--steps", "2", "--out", out, "--overwrite"]
        ).exit_code
        == 0
    )
    assert (out / "NOTES.md").read_text() == "my notes"  # still not listed, still kept


def _table(root, n=2):
    img = root / "imgs"
    img.mkdir()
    rows = ["image,specimen,YS,TS,EF,RH,IT,DCS,CFS"]
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 80), dtype=np.uint8)).save(img / f"m{i}.png")
        rows.append(
            f"m{i}.png,S{i},{900 + 50 * i},{1000 + 40 * i},{12 + i},{37 + i},{30 + i},"
            f"{1450 + 20 * i},{0.2 + 0.01 * i:.2f}"
        )
    (root / "props.csv").write_text("\n".join(rows) + "\n")
    return img, root / "props.csv"


def test_import_never_replaces_a_users_properties_json(tmp_path):
    img, table = _table(tmp_path)
    proj = user_project(tmp_path / "userproj")
    (proj / "properties.json").write_text('{"mine": true}')
    for extra in ([], ["--overwrite"]):
        one_error(
            run(
                [
                    "data",
                    "import",
                    "--images",
                    img,
                    "--table",
                    table,
                    "--out",
                    proj,
                    "--tile-size",
                    "32",
                    "--specimen-column",
                    "specimen",
                    *extra,
                ]
            ),
            "was not written by microforge",
        )
    untouched(proj)
    assert (proj / "properties.json").read_text() == '{"mine": true}'


def test_failed_import_leaves_nothing_behind(tmp_path):
    img, table = _table(tmp_path)
    (img / "m1.png").write_bytes(b"")  # a zero-byte image, found only when the import reaches it
    out = tmp_path / "out"
    result = run(
        [
            "data",
            "import",
            "--images",
            img,
            "--table",
            table,
            "--out",
            out,
            "--tile-size",
            "32",
            "--specimen-column",
            "specimen",
        ]
    )
    assert result.exit_code == 1 and "m1.png" in result.output
    assert not out.exists()


def test_serve_prunes_only_its_own_runs(micro_model, tmp_path):
    runs = tmp_path / "my-results"
    for i in range(22):  # the user's own folders, one holding a folder
        (runs / f"mine{i:02d}").mkdir(parents=True)
        (runs / f"mine{i:02d}" / "data.txt").write_text(str(i))
    (runs / "mine00" / "nested").mkdir()
    explorer = Explorer(str(micro_model), runs)
    target = {"YS": 1000, "TS": 1080, "EF": 12, "RH": 37, "IT": 30, "DCS": 1450, "CFS": 0.2}
    made = [explorer.generate({"target": target, "n": 1, "seed": i})["run"] for i in range(KEPT_RUNS + 2)]
    for i in range(22):
        assert (runs / f"mine{i:02d}" / "data.txt").read_text() == str(i)
    assert (runs / "mine00" / "nested").is_dir()
    kept = [m for m in made if (runs / m).exists()]
    assert len(kept) == KEPT_RUNS and set(kept) == set(made[2:])  # the two oldest runs pruned
    (runs / "file").write_text("x")
    with pytest.raises(MicroforgeError, match="is a file"):
        Explorer(str(micro_model), runs / "file")


def test_data_sheet_refuses_to_replace_files_and_folders(tiny_bench, tmp_path):
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"precious")
    one_error(run(["data", "sheet", tiny_bench.root, "--out", precious]), "already exists; pass --overwrite")
    assert precious.read_bytes() == b"precious"
    (tmp_path / "existing_dir").mkdir()
    one_error(run(["data", "sheet", tiny_bench.root, "--out", tmp_path / "existing_dir"]), "is a folder")
    assert not (tmp_path / "existing_dir.png").exists()
    one_error(run(["data", "sheet", tiny_bench.root, "--out", tmp_path / "x.csv"]), "unsupported file type .csv")
    for bad in ("0", "-2"):
        one_error(
            run(["data", "sheet", tiny_bench.root, "--out", tmp_path / "s.png", "--per-morphology", bad]),
            f"'--per-morphology': {bad} is not in the range",
        )
    assert run(["data", "sheet", tiny_bench.root, "--out", precious, "--overwrite"]).exit_code == 0
    assert precious.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--guidance", "nan", "'--guidance': 'nan' is not a finite number"),
        ("--guidance", "inf", "'--guidance': 'inf' is not a finite number"),
        ("--seed", "-1", "'--seed': -1 is not in the range"),
        ("--brightness", "0.2", "--brightness: this model was not trained with a brightness condition"),
        ("--batch-size", "0", "'--batch-size': 0 is not in the range"),
    ],
)
def test_generate_rejects_bad_options_before_writing(micro_model, tmp_path, option, value, message):
    out = tmp_path / "g"
    one_error(run(["generate", "--model", micro_model, *TARGET, "-n", "1", "--out", out, option, value]), message)
    assert not out.exists()


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_rejects_a_bad_port(micro_model, port):
    one_error(
        run(["serve", "--model", micro_model, "--port", port]), f"'--port': {port} is not in the range 0<=x<=65535"
    )


def test_serve_rejects_a_file_as_runs_dir(micro_model, tmp_path):
    (tmp_path / "f").write_text("x")
    one_error(run(["serve", "--model", micro_model, "--runs-dir", tmp_path / "f"]), "is a file, expected a folder")


def test_a_file_given_as_a_folder_is_named_so(tiny_bench, tmp_path):
    (tmp_path / "f").write_text("x")
    one_error(run(["data", "info", tmp_path / "f"]), "is a file, expected a dataset folder")
    one_error(
        run(["evaluate", "--data", tmp_path / "f", "--report", tmp_path / "r"]), "is a file, expected a dataset folder"
    )


def test_ownership_record_and_single_file_rules(tmp_path):
    out = tmp_path / "o"
    assert prepare_output_dir(out, False, "done.txt", "test", outputs=("a",)) is False
    (out / "a").write_text("1")
    (out / "b").mkdir()
    (out / "done.txt").write_text("ok")
    record_outputs(out)
    assert read_owner(out) == {"command": "test", "written": ["a", "b", "done.txt"], "foreign": []}
    (out / "user.txt").write_text("mine")
    prepare_output_dir(out, True, "done.txt", "test")
    assert sorted(p.name for p in out.iterdir()) == [OWNER_FILE, "user.txt"]
    assert read_owner(out)["foreign"] == ["user.txt"]
    (out / OWNER_FILE).write_text(json.dumps({"command": "x", "written": ["../outside", "/etc", "user.txt/.."]}))
    (tmp_path / "outside").write_text("keep")
    prepare_output_dir(out, True, "done.txt", "test")  # names that leave the folder are ignored
    assert (tmp_path / "outside").read_text() == "keep" and (out / "user.txt").exists()
    f = tmp_path / "x.png"
    assert check_output_file(f, False, (".png",)) == f
    f.write_text("old")
    with pytest.raises(MicroforgeError, match="already exists"):
        check_output_file(f, False, (".png",))
    assert os.path.exists(f)


def test_import_names_reserved_columns_before_writing(tmp_path):
    img, table = _table(tmp_path)
    text = table.read_text().splitlines()
    table.write_text("\n".join([text[0] + ",mask"] + [line + ",x" for line in text[1:]]) + "\n")
    out = tmp_path / "out"
    one_error(
        run(
            [
                "data",
                "import",
                "--images",
                img,
                "--table",
                table,
                "--out",
                out,
                "--tile-size",
                "32",
                "--specimen-column",
                "specimen",
                "--meta-columns",
                "mask",
            ]
        ),
        "column(s) mask clash with the manifest's own columns",
    )
    assert not out.exists()


def test_import_warns_on_duplicates_uniform_images_and_constant_properties(tmp_path):
    img, table = _table(tmp_path)
    Image.fromarray(np.zeros((80, 80), np.uint8)).save(img / "m1.png")  # all black
    lines = [line.replace(",1040,", ",1000,") for line in table.read_text().splitlines()]  # TS is 1000 on every row
    table.write_text("\n".join([*lines, lines[1]]) + "\n")  # m0 listed twice
    result = CliRunner().invoke(
        cli,
        [
            "data",
            "import",
            "--images",
            str(img),
            "--table",
            str(table),
            "--out",
            str(tmp_path / "o"),
            "--tile-size",
            "32",
            "--specimen-column",
            "specimen",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "line 4: image m0.png is listed again (first on line 2)" in result.stderr
    assert "m1.png): the image is uniform (every pixel 0)" in result.stderr
    assert "property TS has the same value (1000) on every row" in result.stderr


def test_generate_refuses_out_of_range_targets_unless_asked(micro_model, tmp_path):
    far = [a if not a.startswith("YS=") else "YS=50000" for a in TARGET]
    one_error(
        run(["generate", "--model", micro_model, *far, "-n", "1", "--out", tmp_path / "g"]), "--allow-extrapolation"
    )
    assert not (tmp_path / "g").exists()
    neg = [a if not a.startswith("EF=") else "EF=-3" for a in TARGET]
    one_error(
        run(["generate", "--model", micro_model, *neg, "-n", "1", "--out", tmp_path / "g"]), "outside the model's range"
    )
    result = run(
        [
            "generate",
            "--model",
            micro_model,
            *far,
            "-n",
            "1",
            "--steps",
            "2",
            "--out",
            tmp_path / "g",
            "--allow-extrapolation",
        ]
    )
    assert result.exit_code == 0 and "outside the convex hull" in result.output
    assert json.loads((tmp_path / "g" / "run.json").read_text())["targets"][0]["YS"] == 50000.0


def test_categorical_names_work_in_the_cli_the_api_and_run_json(micro_model, tmp_path):
    """A model whose last property is categorical (its properties.json says so): the name is
    accepted everywhere and recorded in run.json; the page gets the names for a choice."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(micro_model, model)
    props = json.loads((model / "properties.json").read_text())
    props["properties"][-1].update(name="CFS", min=0.0, max=1.0, categories=["AC", "WQ"])
    (model / "properties.json").write_text(json.dumps(props))
    args = [
        "generate",
        "--model",
        model,
        *TARGET[:-2],
        "--prop",
        "CFS=WQ",
        "-n",
        "1",
        "--steps",
        "2",
        "--out",
        tmp_path / "g",
    ]
    assert run(args).exit_code == 0
    assert json.loads((tmp_path / "g" / "run.json").read_text())["targets"][0]["CFS"] == "WQ"
    one_error(
        run(["generate", "--model", model, *TARGET[:-2], "--prop", "CFS=FC", "-n", "1", "--out", tmp_path / "g2"]),
        "expected one of AC, WQ",
    )
    explorer = Explorer(str(model), tmp_path / "runs")
    assert explorer.describe_model()["properties"][-1]["categories"] == ["AC", "WQ"]
    target = {"YS": 1000, "TS": 1080, "EF": 12, "RH": 37, "IT": 30, "DCS": 1450, "CFS": "AC"}
    assert explorer.generate({"target": target, "n": 1, "seed": 0})["target"]["CFS"] == "AC"


@pytest.mark.parametrize(
    "command", [["train", "tim3"], ["train", "regressor"], ["train", "ccdm"], ["fingerprint", "train"]]
)
def test_training_never_writes_into_a_users_folder(tiny_bench, tmp_path, command):
    proj = user_project(tmp_path / "proj")
    (proj / "checkpoints").mkdir()  # a trainer deletes its own checkpoints/ at the end
    (proj / "checkpoints" / "mine.txt").write_text("x")
    for extra in ([], ["--resume"]):
        one_error(run([*command, "--data", tiny_bench.root, "--out", proj, *extra]), "was not written by microforge")
    untouched(proj)
    assert (proj / "checkpoints" / "mine.txt").exists()
