"""One row of the evaluation table (the paper's Table 1 layout), typed.

A :class:`ScoreRow` is what metrics.json's ``table`` holds for the model and for every ablation
row, and what the HTML report and the benchmarks' tables read. Its JSON keys are the report's
column keys (``acc_0.1``, ``mAcc``, ``fid``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.phase_map import CLASS_NAMES

# field name -> JSON key, where the key is no Python name
_JSON_KEYS = {"acc_01": "acc_0.1", "acc_02": "acc_0.2", "acc_03": "acc_0.3"}


@dataclass(frozen=True)
class ScoreRow:
    """The scores of one model on one evaluation; None where a score was not measured."""

    name: str
    fid: float | None = None  # Fréchet Inception distance, lower is better
    kid_mean: float | None = None  # unbiased MMD² on Inception features
    precision: float | None = None  # Kynkäänniemi et al., k = 3
    recall: float | None = None
    acc_01: float | None = None  # share of samples with every property within 10 % (regressor)
    acc_02: float | None = None
    acc_03: float | None = None
    mAcc: float | None = None  # mean of the three
    oracle_mAcc: float | None = None  # the benchmark's relations applied to the segmented samples
    domain_frechet: float | None = None  # Fréchet distance on the regressor's features
    fingerprint_frechet: float | None = None  # Fréchet distance on the fingerprint VAE's codes
    s2_discrepancy_pct: float | None = None  # mean over the three phases, percent
    lineal_path_discrepancy_pct: float | None = None
    copy_mse_median: float | None = None  # median pixel MSE to the nearest training tile
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. an ablation row's model and encoder

    @classmethod
    def from_scores(cls, name: str, scores: dict[str, Any], **extra: Any) -> ScoreRow:
        """The row of one ``scores`` block (``metrics["main"]`` or an ablation model's scores)."""
        acc = scores.get("accuracy") or {}
        by_gamma = acc.get("acc", {})
        return cls(
            name=name,
            fid=scores.get("fid"),
            kid_mean=scores.get("kid_mean"),
            precision=scores.get("precision"),
            recall=scores.get("recall"),
            acc_01=by_gamma.get("0.1"),
            acc_02=by_gamma.get("0.2"),
            acc_03=by_gamma.get("0.3"),
            mAcc=acc.get("mAcc"),
            oracle_mAcc=scores.get("oracle_mAcc"),
            domain_frechet=scores.get("domain_frechet"),
            fingerprint_frechet=scores.get("fingerprint_frechet"),
            s2_discrepancy_pct=scores.get("s2_discrepancy_pct"),
            lineal_path_discrepancy_pct=scores.get("lineal_path_discrepancy_pct"),
            copy_mse_median=scores.get("copy_mse_median"),
            extra=extra,
        )

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ScoreRow:
        """Inverse of :meth:`to_dict` (keys not of the row go to ``extra``)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        by_key = {_JSON_KEYS.get(n, n): n for n in names}
        return cls(
            **{by_key[k]: v for k, v in row.items() if k in by_key},
            extra={k: v for k, v in row.items() if k not in by_key},
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as metrics.json writes it: ``name``, ``extra``'s keys, then the scores."""
        out: dict[str, Any] = {"name": self.name, **self.extra}
        for f in dataclasses.fields(self):
            if f.name not in ("name", "extra"):
                out[_JSON_KEYS.get(f.name, f.name)] = getattr(self, f.name)
        return out


def discrepancy_summary(compared: dict[str, Any]) -> dict[str, float | None]:
    """The mean over phases of the S2 and lineal-path discrepancies (percent) of one
    :func:`~microforge.characterize.descriptors.compare_sets` result; None where no phase has a
    curve to compare."""
    out: dict[str, float | None] = {}
    for key in ("s2", "lineal_path"):
        values = [
            compared[key][name]["discrepancy_pct"]
            for name in CLASS_NAMES
            if compared[key][name]["discrepancy_pct"] is not None
        ]
        out[f"{key}_discrepancy_pct"] = float(np.mean(values)) if values else None
    return out
