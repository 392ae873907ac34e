"""Cross-validated reading of labels and descriptors from fingerprints (White et al. section 3):
an SVM for categorical labels, an SVR for continuous ones, on random 90/10 splits.

The splits are drawn by group (the specimen) with scikit-learn's GroupShuffleSplit, so tiles of
one specimen never sit on both sides: with random tile splits a model could recognise the
specimen and look better than it is. Features are standardised inside each split (fitted on its
training side only). The SVR's target is standardised the
same way: its epsilon-insensitive tube (0.1) would otherwise swallow targets whose range is
below 1, such as an area fraction or a fracture strain, and predict their mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from ..errors import MicroforgeError

CV_SPLITS = 10  # random 90/10 splits (White et al.)
TEST_SIZE = 0.1
SVM_C = 10.0  # scikit-learn's RBF SVC / SVR with C = 10 and gamma = "scale"


def _splits(n: int, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(np.unique(groups)) < 2:
        raise MicroforgeError(f"cross-validation by specimen needs at least 2 specimens, got {len(np.unique(groups))}")
    return list(
        GroupShuffleSplit(n_splits=CV_SPLITS, test_size=TEST_SIZE, random_state=seed).split(np.zeros(n), groups=groups)
    )


def classify_cv(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """SVM accuracy of ``labels`` ``(N,)`` (any hashable values) from ``features`` ``(N, D)``.

    Returns ``accuracy_mean`` and ``accuracy_std`` over the splits, ``chance`` (the share of the
    most common label), ``classes`` and the pooled confusion matrix (rows: true, columns: predicted,
    in the order of ``classes``).
    """
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels).astype(str)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise MicroforgeError(f"a categorical label needs at least two classes, got {classes}")
    acc, confusion = [], np.zeros((len(classes), len(classes)), dtype=int)
    index = {c: i for i, c in enumerate(classes)}
    for tr, te in _splits(len(labels), np.asarray(groups), seed):
        if len(set(labels[tr])) < 2:  # a split whose training side holds one class cannot fit an SVM
            continue
        pred = make_pipeline(StandardScaler(), SVC(C=SVM_C)).fit(features[tr], labels[tr]).predict(features[te])
        acc.append(float(np.mean(pred == labels[te])))
        for t, p in zip(labels[te], pred):
            confusion[index[t], index[p]] += 1
    if not acc:
        raise MicroforgeError(
            "no split had two classes on its training side; the label is too unbalanced to cross-validate"
        )
    counts = np.array([np.sum(labels == c) for c in classes])
    return {
        "accuracy_mean": float(np.mean(acc)),
        "accuracy_std": float(np.std(acc)),
        "splits": len(acc),
        "chance": float(counts.max() / counts.sum()),
        "classes": classes,
        "confusion": confusion.tolist(),
    }


def regress_cv(features: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """SVR reading of a continuous ``y`` ``(N,)`` from ``features`` ``(N, D)``.

    Returns ``r2`` (pooled over the held-out predictions of all splits), the mean absolute error
    and White et al.'s mean percentage error ``100 * mean(|pred - y| / |y|)`` (mean and std over
    the splits; ``None`` when some ``y`` is 0, where it is undefined).
    """
    features, y = np.asarray(features, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise MicroforgeError("a continuous label has missing or non-finite values")
    pred, true, mae, mpe = [], [], [], []
    for tr, te in _splits(len(y), np.asarray(groups), seed):
        svr = TransformedTargetRegressor(SVR(C=SVM_C), transformer=StandardScaler())
        p = make_pipeline(StandardScaler(), svr).fit(features[tr], y[tr]).predict(features[te])
        pred.append(p)
        true.append(y[te])
        mae.append(float(np.mean(np.abs(p - y[te]))))
        if np.all(y[te] != 0):
            mpe.append(float(100.0 * np.mean(np.abs(p - y[te]) / np.abs(y[te]))))
    p_all, y_all = np.concatenate(pred), np.concatenate(true)
    r2 = 1.0 - float(np.mean((p_all - y_all) ** 2)) / max(float(np.var(y_all)), 1e-12)
    whole = len(mpe) == len(mae)
    return {
        "r2": r2,
        "mae_mean": float(np.mean(mae)),
        "mae_std": float(np.std(mae)),
        "mpe_pct_mean": float(np.mean(mpe)) if whole else None,
        "mpe_pct_std": float(np.std(mpe)) if whole else None,
    }
