"""Property accuracy of generated micrographs: Acc_gamma, mAcc and per-property errors
(TiM3 eqs. 9-11; docs/evaluation.md)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import MicroforgeError

GAMMAS = (0.1, 0.2, 0.3)  # relative tolerances of TiM3's Table 1


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = (
        np.atleast_2d(np.asarray(pred, dtype=np.float64)),
        np.atleast_2d(np.asarray(target, dtype=np.float64)),
    )
    if pred.shape != target.shape:
        raise MicroforgeError(f"predictions {pred.shape} and targets {target.shape} differ in shape")
    if pred.size == 0:
        raise MicroforgeError("no predictions to score")
    return pred, target


def acc_gamma(pred: np.ndarray, target: np.ndarray, gamma: float) -> float:
    """Fraction of samples whose every property lies within ``gamma`` relative error.

    ``pred`` and ``target`` are ``(N, K)`` in physical units; sample ``i`` counts when
    ``|pred[i, j] - target[i, j]| <= gamma * |target[i, j]|`` for all ``j``.
    """
    pred, target = _pair(pred, target)
    ok = np.abs(pred - target) <= gamma * np.abs(target)
    return float(ok.all(axis=1).mean())


def mean_accuracy(pred: np.ndarray, target: np.ndarray, gammas: Sequence[float] = GAMMAS) -> float:
    """mAcc: the mean of :func:`acc_gamma` over ``gammas`` (default 0.1, 0.2, 0.3)."""
    return float(np.mean([acc_gamma(pred, target, g) for g in gammas]))


def accuracy_table(pred: np.ndarray, target: np.ndarray, names: Sequence[str]) -> dict:
    """Every accuracy number of one prediction set, JSON-ready.

    Returns ``acc`` (Acc_gamma per gamma, keys ``"0.1"`` ...), ``mAcc``, and per property
    (by ``names``): ``mae`` (unit of the property), ``mape_pct``, ``r2``, ``within_10pct`` (the
    fraction of samples within 10 % on that property alone), ``bias`` (the mean signed error
    pred - target, unit of the property) and ``bias_sd`` (the bias in standard deviations of the
    targets; None where they do not vary) and ``slope`` (the least-squares slope of the
    predictions on the targets, cov(target, pred) / var(target); None where the targets do not
    vary). A large ``bias_sd`` says the predictions are shifted as a whole, and a ``slope`` below 1
    that they span less than the targets' range (weak targets read too strong and strong ones too
    weak); either lowers R² even where the predictions follow the targets.
    """
    pred, target = _pair(pred, target)
    if len(names) != pred.shape[1]:
        raise MicroforgeError(f"{len(names)} property names for {pred.shape[1]} columns")
    err = pred - target
    per = {}
    for j, name in enumerate(names):
        var = float(np.var(target[:, j]))
        per[name] = {
            "mae": float(np.abs(err[:, j]).mean()),
            "mape_pct": float(100.0 * np.mean(np.abs(err[:, j]) / np.maximum(np.abs(target[:, j]), 1e-12))),
            "r2": float(1.0 - np.mean(err[:, j] ** 2) / var) if var > 0 else None,
            "within_10pct": float((np.abs(err[:, j]) <= 0.1 * np.abs(target[:, j])).mean()),
            "bias": float(err[:, j].mean()),
            "bias_sd": float(err[:, j].mean() / np.sqrt(var)) if var > 0 else None,
            "slope": float(np.cov(target[:, j], pred[:, j], bias=True)[0, 1] / var) if var > 0 else None,
        }
    return {
        "n": int(len(pred)),
        "acc": {str(g): acc_gamma(pred, target, g) for g in GAMMAS},
        "mAcc": mean_accuracy(pred, target),
        "per_property": per,
    }
