import pandas as pd
import pytest

from microforge.data.manifest import read_dataset, write_manifest
from microforge.errors import MicroforgeError
from microforge.properties import PropertySet, PropertySpec


@pytest.fixture
def folder(tmp_path):
    """A valid two-tile dataset with one property."""
    (tmp_path / "t").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "t" / name).write_bytes(b"x")
    table = pd.DataFrame({"tile": ["t/a.png", "t/b.png"], "specimen": ["s1", "s2"], "modality": ["OM", "SEM"],
                          "mask": ["", ""], "YS": [900.0, 1000.0], "note": ["x", "y"]})
    write_manifest(tmp_path, table, PropertySet([PropertySpec("YS", "MPa", 900, 1000)], ["note"]))
    return tmp_path


def _edit(folder, fn):
    path = folder / "manifest.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def test_valid_dataset_reads(folder):
    ds = read_dataset(folder)
    assert len(ds) == 2 and ds.property_values().tolist() == [[900.0], [1000.0]]


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda ls: [ls[0]], "empty"),
        (lambda ls: [ls[0], ls[1].replace("900.0", "nan"), ls[2]], r"line 2 \(t/a.png\): property YS is 'nan'"),
        (lambda ls: [ls[0], ls[1], ls[2].replace("1000.0", "hard")], r"line 3 \(t/b.png\): property YS = 'hard' is not a number"),
        (lambda ls: [ls[0], ls[1].replace("900.0", "inf"), ls[2]], "finite"),
        (lambda ls: [ls[0] + ",extra", ls[1] + ",1", ls[2] + ",2"], "unknown column"),
        (lambda ls: [ls[0].replace("YS", "YX"), *ls[1:]], "missing column"),
        (lambda ls: [ls[0], ls[1].replace(",OM,", ",XRD,"), ls[2]], "modality 'XRD'"),
        (lambda ls: [ls[0], ls[1].replace("t/a.png", "t/zz.png"), ls[2]], "zz.png not found"),
    ],
)
def test_bad_manifests_name_the_line(folder, edit, match):
    _edit(folder, edit)
    with pytest.raises(MicroforgeError, match=match):
        read_dataset(folder)


def test_missing_pieces(tmp_path):
    with pytest.raises(MicroforgeError, match="not found"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(MicroforgeError, match="manifest not found"):
        read_dataset(tmp_path)
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(MicroforgeError, match="properties.json not found"):
        read_dataset(tmp_path)
