"""Property accuracy (TiM3 eqs. 9-11): Acc_gamma, mAcc and the per-property table."""

import numpy as np
import pytest

from microforge.accuracy import acc_gamma, accuracy_table, mean_accuracy
from microforge.errors import MicroforgeError


def test_acc_gamma_on_hand_made_predictions():
    target = np.array([[100.0, 10.0], [100.0, 10.0], [100.0, 10.0], [200.0, -4.0]])
    pred = np.array(
        [
            [105.0, 10.5],  # 5 %, 5 %: inside 0.1
            [115.0, 10.0],  # 15 %: inside 0.2 only
            [100.0, 12.5],  # 25 % on the second property: inside 0.3 only
            [200.0, -5.0],
        ]
    )  # |-5 - -4| = 1 = 25 % of |-4|: inside 0.3 only
    assert acc_gamma(pred, target, 0.1) == 0.25
    assert acc_gamma(pred, target, 0.2) == 0.5
    assert acc_gamma(pred, target, 0.3) == 1.0
    assert mean_accuracy(pred, target) == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    table = accuracy_table(pred, target, ["A", "B"])
    assert table["per_property"]["A"]["mae"] == pytest.approx(5.0)
    assert table["per_property"]["B"]["mae"] == pytest.approx((0.5 + 0 + 2.5 + 1.0) / 4)
    # signed errors A: 5, 15, 0, 0; B: 0.5, 0, 2.5, -1; A's targets have mean 125 and std sqrt(1875)
    assert table["per_property"]["A"]["bias"] == pytest.approx(5.0)
    assert table["per_property"]["A"]["bias_sd"] == pytest.approx(5.0 / np.sqrt(1875.0))
    assert table["per_property"]["B"]["bias"] == pytest.approx(0.5)
    # A's predictions 105, 115, 100, 200 (mean 130) on targets 100, 100, 100, 200 (mean 125):
    # cov ((-25)(-25) + (-25)(-15) + (-25)(-30) + (75)(70)) / 4 = 1 750, var 1 875, slope 14/15
    assert table["per_property"]["A"]["slope"] == pytest.approx(14.0 / 15.0)
    halved = accuracy_table(125.0 + 0.5 * (target - 125.0) + 7.0, target, ["A", "B"])
    assert halved["per_property"]["A"]["slope"] == pytest.approx(0.5)  # range halved: slope 0.5
    assert halved["per_property"]["A"]["bias"] == pytest.approx(7.0)  # about A's mean, shifted by 7
    flat = accuracy_table(pred, np.column_stack([np.full(4, 100.0), target[:, 1]]), ["A", "B"])
    assert flat["per_property"]["A"]["bias_sd"] is None and flat["per_property"]["A"]["r2"] is None
    assert flat["per_property"]["A"]["slope"] is None
    with pytest.raises(MicroforgeError, match="differ in shape"):
        acc_gamma(pred[:, :1], target, 0.1)
