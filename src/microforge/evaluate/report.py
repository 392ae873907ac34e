"""The evaluation report: figures and one self-contained HTML page (images as files beside it)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..characterize.figures import compare_figure  # noqa: E402
from ..characterize.topology import PI_RANGE  # noqa: E402
from ..data.contact_sheet import image_grid  # noqa: E402
from ..data.phase_map import to_pseudo_rgb  # noqa: E402
from ..data.outdir import read_owner  # noqa: E402
from ..errors import MicroforgeError  # noqa: E402
from ..io import read_json_file, write_text_atomic  # noqa: E402
from .batches import load_arrays  # noqa: E402
from .scores import ScoreRow  # noqa: E402

# The paper's Table 1 columns, in order; FID and KID are lower-is-better.
TABLE_COLUMNS = (
    ("acc_0.1", "Acc<sub>0.1</sub> ↑"),
    ("acc_0.2", "Acc<sub>0.2</sub> ↑"),
    ("acc_0.3", "Acc<sub>0.3</sub> ↑"),
    ("mAcc", "mAcc ↑"),
    ("oracle_mAcc", "Oracle mAcc ↑"),
    ("fid", "FID ↓"),
    ("kid_mean", "KID ↓"),
    ("precision", "Precision ↑"),
    ("recall", "Recall ↑"),
    ("domain_frechet", "Domain FD ↓"),
    ("fingerprint_frechet", "Fingerprint FD ↓"),
    ("s2_discrepancy_pct", "S2 discr. % ↓"),
    ("lineal_path_discrepancy_pct", "Lineal-path discr. % ↓"),
    ("copy_mse_median", "Copy MSE (median)"),
)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def grid_figure(report: Path, metrics: dict[str, Any], two_stage: bool) -> Path:
    """Rows: a held-out specimen's real tile, then generated samples (and their maps)."""
    real = np.load(report / "grid_real.npy")
    gen = load_arrays(report / "grid", ["images"] + (["maps"] if two_stage else []))
    k = metrics["grid"]["samples_per_vector"]
    cells, titles = [], []
    names = list(metrics["grid"]["targets"][0])[:3]  # the first three properties label each row
    for r, (spec, target) in enumerate(zip(metrics["grid"]["specimens"], metrics["grid"]["targets"])):
        cells.append(real[r])
        titles.append(
            f"{spec} real\n"
            + ", ".join(f"{n} {target[n]:.4g}" for n in names[:2])
            + "".join(f"\n{n} {target[n]:.4g}" for n in names[2:])
        )
        for j in range(k):
            cells.append(gen["images"][r * k + j])
            titles.append(f"generated {j + 1}")
        if two_stage:
            for j in range(k):
                cells.append(to_pseudo_rgb(gen["maps"][r * k + j]))
                titles.append(f"stage-1 map {j + 1}")
    out = report / "figures" / "samples_vs_ground_truth.png"
    image_grid(cells, titles, 1 + k * (2 if two_stage else 1), out, cell_inches=1.8)
    return out


def scatter_figure(report: Path, folder: str, names: list[str], units: list[str]) -> Path:
    """Target against regressor prediction, one panel per property, with the 10 % band."""
    d = load_arrays(report / folder, ["targets", "pred"])
    k = len(names)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), squeeze=False)
    for j, ax in enumerate(axes[0]):
        t, p = d["targets"][:, j], d["pred"][:, j]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        xs = np.linspace(lo, hi, 2)
        ax.fill_between(xs, 0.9 * xs, 1.1 * xs, color="0.85", label="±10 %")
        ax.plot(xs, xs, "k-", lw=0.8)
        ax.scatter(t, p, s=5, alpha=0.6)
        ax.set_title(f"{names[j]} [{units[j]}]" if units[j] else names[j], fontsize=9)
        ax.set_xlabel("target", fontsize=8)
        if j == 0:
            ax.set_ylabel("regressor prediction", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    out = report / "figures" / "property_scatter.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def mean_pi_figure(a: np.ndarray, b: np.ndarray, names: tuple[str, str], out: Path) -> Path:
    """Two mean 10 x 10 persistence images ``a`` and ``b`` and their difference."""
    a, b = np.asarray(a), np.asarray(b)
    vmax = float(max(a.max(), b.max(), 1e-12))
    fig, ax = plt.subplots(1, 3, figsize=(10, 3))
    for axis, img, title in ((ax[0], a, names[0]), (ax[1], b, names[1])):
        im = axis.imshow(img, origin="lower", extent=PI_RANGE, cmap="magma", vmin=0, vmax=vmax, aspect="auto")
        axis.set_title(f"mean H1 persistence image: {title}", fontsize=8)
        axis.set_xlabel("birth")
        axis.set_ylabel("persistence")
    fig.colorbar(im, ax=ax[1], fraction=0.046)
    diff = b - a
    lim = float(np.abs(diff).max()) or 1.0
    im = ax[2].imshow(diff, origin="lower", extent=PI_RANGE, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax[2].set_title(f"{names[1]} − {names[0]}", fontsize=8)
    fig.colorbar(im, ax=ax[2], fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def copying_figure(report: Path, train_images: np.ndarray, n_pairs: int = 8) -> Path:
    """The generated samples closest to a training image, each beside that image."""
    d = load_arrays(report / "main", ["copy_mse", "copy_index"])
    order = np.argsort(d["copy_mse"])[:n_pairs]
    gen = load_arrays(report / "main", ["images"])["images"]  # uint8; bounded by --n
    cells, titles = [], []
    for i in order:
        cells += [gen[i], train_images[d["copy_index"][i]]]
        titles += [f"generated #{i}", f"train #{d['copy_index'][i]}, MSE {d['copy_mse'][i]:.4f}"]
    out = report / "figures" / "data_copying.png"
    image_grid(cells, titles, 4, out)
    return out


def sweep_figure(sweeps: dict[str, Any], out_dir: Path) -> list[Path]:
    paths = []
    if sweeps.get("steps"):
        rows = sweeps["steps"]
        fig, ax = plt.subplots(1, 2, figsize=(8, 3))
        s = [r["steps"] for r in rows]
        ax[0].plot(s, [r["mAcc"] if r["mAcc"] is not None else np.nan for r in rows], "o-")
        ax[0].set_xlabel("DDIM steps")
        ax[0].set_ylabel("mAcc")
        ax[1].plot(s, [r["fid"] for r in rows], "o-", color="C1")
        ax[1].set_xlabel("DDIM steps")
        ax[1].set_ylabel("FID")
        fig.tight_layout()
        paths.append(out_dir / "steps_sweep.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    b = sweeps.get("brightness")
    if b and "levels" in b:
        fig, ax = plt.subplots(figsize=(4, 3.4))
        ax.plot(b["levels"], b["measured"], "o-")
        ax.plot([-1, 1], [-1, 1], "k--", lw=0.8)
        ax.set_xlabel("target brightness")
        ax.set_ylabel("measured brightness")
        ax.set_title(f"r = {b['pearson_r']:.3f}, mean |Δ| = {b['mean_abs_difference']:.3f}", fontsize=9)
        fig.tight_layout()
        paths.append(out_dir / "brightness.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def _table(rows: list[dict[str, Any]], first: str = "name") -> str:
    head = f"<tr><th>{first}</th>" + "".join(f"<th>{label}</th>" for _, label in TABLE_COLUMNS) + "</tr>"
    body = "".join(
        "<tr><td>"
        + _fmt(r[first])
        + "</td>"
        + "".join(f"<td>{_fmt(r.get(k))}</td>" for k, _ in TABLE_COLUMNS)
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def _accuracy_rows(block: dict[str, Any] | None) -> str:
    if not block:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_fmt(v['mae'])}</td><td>{_fmt(v['mape_pct'], 1)}</td>"
        f"<td>{_fmt(v['r2'])}</td>"
        f"<td>{_fmt(v['within_10pct'])}</td><td>{_fmt(v.get('bias_sd'))}</td>"
        f"<td>{_fmt(v.get('slope'))}</td></tr>"
        for n, v in block["per_property"].items()
    )
    head = (
        "<th>property</th><th>MAE</th><th>MAPE %</th><th>R²</th><th>within 10 %</th><th>bias (σ of targets)</th>"
        "<th>slope (1: the targets' whole range)</th>"
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def draw_figures(report: Path, metrics: dict[str, Any], train_images: np.ndarray, two_stage: bool) -> list[Path]:
    """Draw every figure of the report into ``report/figures`` from the saved batches and
    ``metrics``; ``train_images`` (uint8 ``(N, R, R)``) are the training tiles that the
    data-copying figure pairs with their nearest samples. Returns the paths written."""
    figs = report / "figures"
    figs.mkdir(exist_ok=True)
    names = [p["name"] for p in metrics["properties"]]
    units = [p["unit"] for p in metrics["properties"]]
    paths = [grid_figure(report, metrics, two_stage)]
    if metrics["main"].get("accuracy"):
        paths.append(scatter_figure(report, "main", names, units))
    for key in ("microstructure", "microstructure_maps"):
        if metrics.get(key):
            compare_figure(metrics[key], figs / f"{key}.png")
            paths.append(figs / f"{key}.png")
    if metrics.get("microstructure"):
        pi = metrics["persistence_mean"]
        paths.append(mean_pi_figure(pi["real"], pi["generated"], ("real", "generated"), figs / "persistence.png"))
    paths.append(copying_figure(report, train_images))
    return paths + sweep_figure(metrics["sweeps"], figs)


def _figure(report: Path, name: str) -> str:
    """An <img> of ``figures/NAME`` where that figure was drawn, else nothing."""
    return f"<img src='figures/{name}'>" if (report / "figures" / name).is_file() else ""


def table_rows(metrics: dict[str, Any]) -> list[ScoreRow]:
    """The Table-1 rows of a metrics.json: ``table`` where it has one (else the model's row
    rebuilt from ``main``, for reports written before rows were typed), then the ablation rows."""
    if "table" in metrics:
        return [ScoreRow.from_dict(r) for r in metrics["table"]]
    return [ScoreRow.from_scores("this model", metrics["main"])] + [
        ScoreRow.from_dict(r) for r in metrics["sweeps"].get("ablation", [])
    ]


def write_report(report: Path, metrics: dict[str, Any]) -> Path:
    """Write ``report/index.html`` from ``metrics`` (the dict of metrics.json) and the figures
    already in ``report/figures`` (:func:`draw_figures`); needs no model and no data."""
    parts = [
        f"<h1>microforge evaluation: {html.escape(metrics['model'])}</h1>",
        f"<p>Data: <code>{html.escape(metrics['data'])}</code> "
        f"(<code>{html.escape(metrics.get('data_digest', 'no digest recorded'))}</code>). "
        f"{metrics['main']['n']} samples at targets drawn uniformly inside the "
        f"training hull (Algorithm 1), against {metrics['options']['n_reference']} real tiles. Every number is also in "
        f"<a href='metrics.json'>metrics.json</a>.</p>",
    ]
    for note in metrics.get("notes", []):
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts += ["<h2>Table 1 layout</h2>", _table([r.to_dict() for r in table_rows(metrics)])]
    m = metrics["main"]
    parts.append(
        f"<p>KID is the unbiased MMD² (mean ± std {_fmt(m['kid_mean'], 4)} ± {_fmt(m['kid_std'], 4)}); "
        "precision/recall: "
        "Kynkäänniemi et al., k = 3, on Inception features; domain FD: Fréchet distance on the property "
        "regressor's features; "
        "fingerprint FD: on the ResNet18-VAE fingerprints (with --fingerprint); oracle mAcc: the benchmark's relations "
        "applied to the segmented samples; S2 and lineal-path discrepancies: mean over the three phases, the "
        "same classical "
        "segmenter on real and generated tiles; copy MSE: median pixel MSE to the nearest training tile "
        "(held-out real tiles: " + _fmt(m.get("copy_mse_median_heldout_real"), 4) + ").</p>"
    )
    parts += ["<h2>Samples beside the ground truth</h2>", _figure(report, "samples_vs_ground_truth.png")]
    if m.get("accuracy"):
        parts += [
            "<h2>Property accuracy (regressor)</h2>",
            _figure(report, "property_scatter.png"),
            _accuracy_rows(m["accuracy"]),
        ]
        held, ref = metrics.get("regressor_on_held_out"), metrics.get("regressor_on_reference")
        if held:
            parts.append(
                f"<p>The regressor on the real tiles of the {len(held.get('specimens', []))} held-out specimens "
                "(its own error, "
                f"the ceiling): mAcc {_fmt(held['mAcc'])}.</p>"
            )
        if ref:
            parts.append(f"<p>On the real reference tiles, training specimens included: mAcc {_fmt(ref['mAcc'])}.</p>")
    if metrics.get("oracle"):
        o = metrics["oracle"]
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['acc']['0.1'])}</td><td>{_fmt(v['acc']['0.2'])}</td>"
            f"<td>{_fmt(v['acc']['0.3'])}</td><td>{_fmt(v['mAcc'])}</td></tr>"
            for k, v in o.items()
        )
        parts += [
            "<h2>Oracle accuracy (synthetic benchmark)</h2>",
            "<p>Properties computed from the measured microstructure through the benchmark's own relations. "
            "The ceilings apply the same oracle to real tiles.</p>",
            f"<table><tr><th>source</th><th>Acc<sub>0.1</sub></th><th>Acc<sub>0.2</sub></th><th>Acc<sub>0.3</sub></th><th>mAcc</th></tr>{rows}</table>",
        ]
    if metrics.get("microstructure"):
        c = metrics["microstructure"]
        eps = "".join(
            f"<tr><td>{k}</td>"
            + "".join(f"<td>{_fmt(c[key][k]['discrepancy_pct'], 1)}</td>" for key in ("s2", "lineal_path"))
            + "</tr>"
            for k in ("primary_alpha", "beta", "secondary_alpha")
        )
        parts += [
            "<h2>Microstructure statistics</h2>",
            "<p>Both sets segmented by the same classical segmenter. ε: area between the mean curves over the "
            "area under the real "
            "curve, %.</p>",
            f"<table><tr><th>class</th><th>ε S2 %</th><th>ε L %</th></tr>{eps}</table>",
            _figure(report, "microstructure.png"),
        ]
        if metrics.get("microstructure_maps"):
            parts += ["<h3>Stage-1 maps against the true phase maps</h3>", _figure(report, "microstructure_maps.png")]
        parts += ["<h3>Persistence images (sublevel-set H1)</h3>", _figure(report, "persistence.png")]
    parts += [
        "<h2>Data copying</h2>",
        f"<p>Minimum pixel MSE to the training set: smallest {_fmt(m['copy_mse_min'], 5)}, median "
        f"{_fmt(m['copy_mse_median'], 5)}; "
        f"held-out real tiles have median {_fmt(m.get('copy_mse_median_heldout_real'), 5)}. A generator that "
        "copies sits far "
        "below the held-out value.</p>",
        _figure(report, "data_copying.png"),
    ]
    sweeps = metrics["sweeps"]
    if sweeps.get("steps"):
        parts += ["<h2>DDIM steps</h2>", _figure(report, "steps_sweep.png")]
        parts.append(
            "<table><tr><th>steps</th><th>mAcc</th><th>FID</th><th>KID</th></tr>"
            + "".join(
                f"<tr><td>{r['steps']}</td><td>{_fmt(r['mAcc'])}</td><td>{_fmt(r['fid'])}</td>"
                f"<td>{_fmt(r['kid_mean'], 4)}</td></tr>"
                for r in sweeps["steps"]
            )
            + "</table>"
        )
    if isinstance(sweeps.get("brightness"), dict) and "levels" in sweeps["brightness"]:
        parts += ["<h2>Brightness control</h2>", _figure(report, "brightness.png")]
    if isinstance(sweeps.get("brightness"), dict) and "skipped" in sweeps["brightness"]:
        parts.append(f"<h2>Brightness control</h2><p>Skipped: {html.escape(sweeps['brightness']['skipped'])}</p>")
    parts.append(f"<p class='note'>Evaluation took {metrics['seconds']} s.</p>")
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}img{max-width:100%}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "td:first-child{text-align:left}.note{color:#666}"
    )
    head = f"<head><meta charset='utf-8'><title>microforge evaluation</title><style>{style}</style></head>"
    page = f"<!doctype html><html>{head}<body>{''.join(parts)}</body></html>"
    out = report / "index.html"
    write_text_atomic(out, page)
    return out


def rerender_report(folder: str | Path) -> Path:
    """Write ``folder/index.html`` anew from ``folder/metrics.json`` and the figures in
    ``folder/figures``: a report of ``microforge evaluate``, re-rendered without model or data."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MicroforgeError(
            f"{folder}: not found, or not a folder; expected the --report folder of microforge evaluate"
        )
    owner = read_owner(folder)
    if owner is None or owner.get("command") != "evaluate":
        raise MicroforgeError(
            f"{folder}: not a report written by microforge evaluate (no ownership record naming evaluate)"
        )
    metrics = read_json_file(folder / "metrics.json", "a finished evaluation report (microforge evaluate --report)")
    missing = [k for k in ("model", "data", "options", "main", "sweeps", "seconds") if k not in metrics]
    if missing:
        raise MicroforgeError(f"{folder / 'metrics.json'}: not an evaluation's metrics (lacks {', '.join(missing)})")
    return write_report(folder, metrics)
