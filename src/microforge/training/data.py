"""The properties.json of a trained model: the dataset's properties plus the points of its
training hull. (A split's tiles in memory: :func:`microforge.data.dataset.load_split`.)"""

from __future__ import annotations

import numpy as np

from ..properties import PropertySet, PropertySpec


def properties_with_hull(
    props: PropertySet, specimens: list[str], raw: np.ndarray, extra: list[PropertySpec] = ()
) -> PropertySet:
    """``props`` (plus ``extra`` condition specs) with ``info.hull_points``: one normalised
    property vector per training specimen, the points whose convex hull bounds the targets a
    model can be trusted with."""
    by_specimen: dict[str, np.ndarray] = {}
    for s, row in zip(specimens, np.asarray(raw)):
        by_specimen.setdefault(s, row)
    hull = props.normalise(np.array(list(by_specimen.values())))
    info = {
        **props.info,
        "hull_points": np.round(hull, 6).tolist(),
        "hull_space": "normalised [-1, 1], dataset properties only",
    }
    return PropertySet([*props.specs, *extra], [], info)
