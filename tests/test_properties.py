import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microforge.errors import MicroforgeError
from microforge.properties import (
    TITANIUM_PROPERTIES,
    PropertySet,
    PropertySpec,
    category_name,
    check_target_range,
    parse_property_assignments,
    parse_property_mapping,
)

TI = PropertySet(list(TITANIUM_PROPERTIES))


def test_normalise_maps_range_to_unit_interval_and_back():
    assert TI.normalise(TI.mins) == pytest.approx(-np.ones(7))
    assert TI.normalise(TI.maxs) == pytest.approx(np.ones(7))
    mid = (TI.mins + TI.maxs) / 2
    assert TI.normalise(mid) == pytest.approx(np.zeros(7))
    x = np.random.default_rng(0).uniform(TI.mins, TI.maxs, (5, 7))
    assert TI.denormalise(TI.normalise(x)) == pytest.approx(x)
    flat = PropertySet([PropertySpec("A", "", 3.0, 3.0)])
    assert flat.normalise(np.array([3.0])).tolist() == [0.0]


def test_wrong_width_lists_expected_names():
    with pytest.raises(MicroforgeError, match=r"expected 7: YS \[MPa\], TS \[MPa\], EF \[%\]"):
        TI.normalise(np.zeros(3))


def test_json_round_trip(tmp_path):
    props = PropertySet(
        [*TITANIUM_PROPERTIES[:2], PropertySpec("cooling", "", 0, 1, categories=("AC", "WQ"))], ["m"], {"a": 1}
    )
    props.save(tmp_path / "p.json")
    back = PropertySet.load(tmp_path / "p.json")
    assert back == props
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MicroforgeError, match="bad.json"):
        PropertySet.load(tmp_path / "bad.json")
    with pytest.raises(MicroforgeError, match="not found"):
        PropertySet.load(tmp_path / "missing.json")


def test_spec_validation():
    with pytest.raises(MicroforgeError):
        PropertySpec("A", "", 2.0, 1.0)
    with pytest.raises(MicroforgeError):
        PropertySpec("A", "", float("nan"), 1.0)
    with pytest.raises(MicroforgeError):
        PropertySet([PropertySpec("A", "", 0, 1), PropertySpec("A", "", 0, 1)])


GOOD = ["YS=1050", "TS=1120", "EF=9", "RH=38", "IT=30", "DCS=1500", "CFS=0.15"]


def test_parse_assignments():
    assert parse_property_assignments(GOOD, TI).tolist() == [1050, 1120, 9, 38, 30, 1500, 0.15]
    assert parse_property_assignments(list(reversed(GOOD)), TI).tolist() == [1050, 1120, 9, 38, 30, 1500, 0.15]


@pytest.mark.parametrize(
    "items,match",
    [
        (GOOD[:-1], r"missing properties: CFS"),
        (GOOD + ["XX=1"], r"unknown property 'XX'; expected YS \[MPa\]"),
        (GOOD + ["YS=3"], "given twice"),
        (["YS=abc"] + GOOD[1:], "not a number"),
        (["YS=nan"] + GOOD[1:], "finite"),
        (["YS=inf"] + GOOD[1:], "finite"),
        (["YS"] + GOOD[1:], "NAME=VALUE"),
    ],
)
def test_parse_assignment_errors(items, match):
    with pytest.raises(MicroforgeError, match=match):
        parse_property_assignments(items, TI)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=9))
def test_parser_never_fails_untidily(items):
    """Whatever the user types, the parser returns a finite vector or raises MicroforgeError."""
    try:
        out = parse_property_assignments(items, TI)
    except MicroforgeError:
        return
    assert out.shape == (7,) and all(math.isfinite(v) for v in out)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=7, max_size=7))
def test_parser_reads_back_every_finite_float(values):
    items = [f"{n}={v!r}" for n, v in zip(TI.names, values)]
    assert parse_property_assignments(items, TI).tolist() == values


def test_categorical_properties_accept_their_names():
    props = PropertySet(
        [PropertySpec("YS", "MPa", 800, 1400), PropertySpec("cooling", "", 0, 1, categories=("AC", "WQ"))]
    )
    assert parse_property_assignments(["YS=900", "cooling=WQ"], props).tolist() == [900, 1]
    assert parse_property_assignments(["YS=900", "cooling= AC "], props).tolist() == [900, 0]
    assert parse_property_assignments(["YS=900", "cooling=1"], props).tolist() == [900, 1]  # the code still works
    assert parse_property_mapping({"YS": 900, "cooling": "WQ"}, props).tolist() == [900, 1]
    for bad in ("FC", "2", "0.5"):
        with pytest.raises(MicroforgeError, match="expected one of AC, WQ"):
            parse_property_assignments(["YS=900", f"cooling={bad}"], props)
    assert category_name(props.specs[1], 1.0) == "WQ" and category_name(props.specs[0], 900.0) == 900.0


def test_range_check_names_the_property_and_the_way_out():
    with pytest.raises(
        MicroforgeError, match=r"YS \[MPa\]: 50000 is outside the model's range .* --allow-extrapolation"
    ):
        check_target_range(TI, np.array([50000, 1000, 10, 35, 30, 1500, 0.2]))
    with pytest.raises(MicroforgeError, match="outside the model's range"):
        check_target_range(TI, np.array([-5, 1000, 10, 35, 30, 1500, 0.2]))
    check_target_range(TI, np.array([50000, 1000, 10, 35, 30, 1500, 0.2]), allow_extrapolation=True)
    with pytest.raises(MicroforgeError, match="True is not a number"):
        parse_property_mapping({**dict(zip(TI.names, [1000, 1000, 10, 35, 30, 1500, 0.2])), "YS": True}, TI)
