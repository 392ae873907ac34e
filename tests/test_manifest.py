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
    table = pd.DataFrame(
        {
            "tile": ["t/a.png", "t/b.png"],
            "specimen": ["s1", "s2"],
            "modality": ["OM", "SEM"],
            "mask": ["", ""],
            "YS": [900.0, 1000.0],
            "note": ["x", "y"],
        }
    )
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
        (
            lambda ls: [ls[0], ls[1], ls[2].replace("1000.0", "hard")],
            r"line 3 \(t/b.png\): property YS = 'hard' is not a number",
        ),
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


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELL = st.one_of(
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["OM", "SEM", "", "t/a.png"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELL, CELL, CELL, CELL), min_size=0, max_size=4), extra=st.booleans())
def test_manifest_reader_never_fails_untidily(folder, rows, extra):
    """Whatever the manifest holds, reading it gives a valid table or a MicroforgeError."""
    import csv

    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["tile", "specimen", "modality", "YS"] + (["stray"] if extra else []))
        for r in rows:
            writer.writerow(list(r) + (["x"] if extra else []))
    try:
        ds = read_dataset(folder)
    except MicroforgeError:
        return
    assert len(ds) >= 1 and ds.table["YS"].map(lambda v: v == v and abs(v) != float("inf")).all()
    assert set(ds.table["modality"]) <= {"OM", "SEM"}
