"""Does an independent morphology classifier recognise a model's samples as often as real tiles?

    python benchmarks/morphology_recognition.py DATA [LABEL=]MODEL [[LABEL=]MODEL ...] [--n 160]
        [--train-tiles 1000] [--out JSON]

The classifier is independent of every model: an RBF SVM (scikit-learn, C = 10, standardised
features, as ``fingerprint explore`` uses) on the Inception-v3 pool3 features (the FID network,
shipped offline) of ``--train-tiles`` seeded real tiles of the model's training specimens, at the
model's resolution, labelled with the dataset's ``morphology`` column. It then reads ``--n``
seeded tiles of the held-out specimens (the model's validation and test splits) and, for every
MODEL, one sample drawn at each of those tiles' properties (the same seeds for every model).
Recognised means: the predicted morphology is the held-out tile's own. A model whose samples
draw the microstructure their targets imply is recognised about as often as the real tiles.
With ``--stages``, each two-stage MODEL also gets two rows that locate its fault: stage 2 drawing
from the held-out tiles' true maps, and from those maps passed through the model's map
autoencoder (the best stage 1 could draw in its latent); ``--figure PNG`` draws, for the first
MODEL and three held-out tiles of each morphology, the true map, its autoencoded copy, a stage-1
map drawn at the tile's properties and the sample drawn from it.
Writes benchmarks/results/morphology_recognition.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _held_out import (
    add_model_arguments,
    held_out_items,
    held_out_tiles,
    load_models,
    reconstructed_maps,
    samples_at,
    save_figure,
    stage2_from,
)
from _record import write_record
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from microforge.data.phase_map import to_pseudo_rgb
from microforge.fingerprint.crossval import SVM_C
from microforge.models.inception import InceptionFeatures, extract


def recognition(pred: np.ndarray, truth: list[str], classes: list[str]) -> dict:
    """Share of ``pred`` equal to ``truth``, per true class and pooled, and the confusion matrix
    (rows: true, columns: predicted, in the order of ``classes``)."""
    truth_a = np.asarray(truth)
    confusion = [[int(np.sum((truth_a == t) & (pred == p))) for p in classes] for t in classes]
    per_class = {c: round(float(np.mean(pred[truth_a == c] == c)), 3) for c in classes if np.any(truth_a == c)}
    return {"recognised": round(float(np.mean(pred == truth_a)), 3), "per_class": per_class, "confusion": confusion}


def stages_figure(
    pipe, raw: np.ndarray, masks: torch.Tensor, truth: list[str], classes: list[str], seed: int, out: Path
) -> None:
    """Columns: the first three held-out tiles of each class; rows: the true map (as the model reads
    it), its autoencoded copy, a stage-1 map drawn at the tile's properties, the sample from it."""
    pick = [i for c in classes for i in [j for j, t in enumerate(truth) if t == c][:3]]
    true = pipe.model_maps(masks[pick])
    auto = reconstructed_maps(pipe, masks[pick])
    drawn = pipe(raw[pick], batch_size=len(pick), seed=seed)
    as_index = lambda m: (m.argmax(0) if m.dim() == 3 else m).numpy()  # noqa: E731
    rows = {
        "true map": [to_pseudo_rgb(as_index(m)) for m in true],
        "autoencoded": [to_pseudo_rgb(as_index(m)) for m in auto],
        "stage-1 map": [to_pseudo_rgb(m) for m in drawn.maps],
        "sample": list(drawn.images),
    }
    fig, axes = plt.subplots(len(rows), len(pick), figsize=(1.6 * len(pick), 1.7 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for j, image in enumerate(images):
            axes[r, j].imshow(image, cmap="gray", vmin=0, vmax=1)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
        axes[r, 0].set_ylabel(label)
    for j, k in enumerate(pick):
        axes[0, j].set_title(truth[k], fontsize=8)
    save_figure(fig, out, dpi=70)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap, n_default=160)
    ap.add_argument("--train-tiles", type=int, default=1000, help="real training tiles the classifier learns from")
    ap.add_argument("--stages", action="store_true", help="also score stage 2 from true and autoencoded maps")
    ap.add_argument("--figure", type=Path, help="PNG of true, autoencoded and stage-1 maps (needs --stages)")
    args = ap.parse_args()
    if args.figure and not args.stages:
        raise SystemExit("Error: --figure draws the stage rows: give --stages too")
    pipes = load_models(args.models)
    first = next(iter(pipes.values()))
    inception = InceptionFeatures()
    train_images, _, train_labels = held_out_tiles(first, args.data, ("train",), args.train_tiles, args.seed)
    if not all(train_labels):
        raise SystemExit(f"Error: {args.data}: the manifest has no morphology column")
    svm = make_pipeline(StandardScaler(), SVC(C=SVM_C))
    svm.fit(extract(inception, train_images, progress=True), train_labels)
    held = held_out_items(first, args.data, ("val", "test"), args.n, args.seed)
    images, raw, truth = held.images, held.props, held.morphology
    classes = sorted(set(train_labels) | set(truth))  # a class the classifier never saw is never recognised
    rows = {"real held-out tiles": recognition(svm.predict(extract(inception, images)), truth, classes)}
    masks = held.masks if args.stages else None
    for name, pipe in pipes.items():
        drawn = {name: samples_at(pipe, raw, args.batch_size, args.seed)}
        if masks is not None and pipe.cfg.two_stage:
            drawn[f"{name}: stage 2 from true maps"] = stage2_from(
                pipe, raw, pipe.model_maps(masks), args.batch_size, args.seed
            )
            drawn[f"{name}: stage 2 from autoencoded true maps"] = stage2_from(
                pipe, raw, reconstructed_maps(pipe, masks), args.batch_size, args.seed
            )
        for label, images in drawn.items():
            rows[label] = recognition(svm.predict(extract(inception, images)), truth, classes)
            real = rows["real held-out tiles"]["recognised"]
            print(f"{label}: recognised {rows[label]['recognised']:.3f} (real tiles {real:.3f})")
    if args.figure and masks is not None and first.cfg.two_stage:
        stages_figure(first, raw, masks, truth, classes, args.seed, args.figure)
    record = {
        "benchmark": "morphology_recognition",
        "command": f"python benchmarks/morphology_recognition.py {args.data} {' '.join(args.models)} --n {args.n}"
        f" --train-tiles {args.train_tiles}"
        + (" --stages" if args.stages else "")
        + (f" --figure {args.figure}" if args.figure else ""),
        "classifier": f"RBF SVM (C {SVM_C}) on Inception-v3 pool3 features of {len(train_labels)} real training tiles",
        "classes": classes,
        "held_out_tiles": len(truth),
        "held_out_per_class": {c: truth.count(c) for c in classes},
        "rows": rows,
    }
    write_record(record, args.out or Path(__file__).parent / "results" / "morphology_recognition.json")


if __name__ == "__main__":
    main()
