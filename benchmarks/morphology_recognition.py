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
autoencoder (the best stage 1 could draw in its latent).
Writes benchmarks/results/morphology_recognition.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _held_out import (
    add_model_arguments,
    held_out_masks,
    held_out_tiles,
    load_models,
    reconstructed_maps,
    samples_at,
    stage2_from,
)
from _record import write_record
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from microforge.fingerprint.crossval import SVM_C
from microforge.models.inception import InceptionFeatures, extract


def recognition(pred: np.ndarray, truth: list[str], classes: list[str]) -> dict:
    """Share of ``pred`` equal to ``truth``, per true class and pooled, and the confusion matrix
    (rows: true, columns: predicted, in the order of ``classes``)."""
    truth_a = np.asarray(truth)
    confusion = [[int(np.sum((truth_a == t) & (pred == p))) for p in classes] for t in classes]
    per_class = {c: round(float(np.mean(pred[truth_a == c] == c)), 3) for c in classes if np.any(truth_a == c)}
    return {"recognised": round(float(np.mean(pred == truth_a)), 3), "per_class": per_class, "confusion": confusion}


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap, n_default=160)
    ap.add_argument("--train-tiles", type=int, default=1000, help="real training tiles the classifier learns from")
    ap.add_argument("--stages", action="store_true", help="also score stage 2 from true and autoencoded maps")
    args = ap.parse_args()
    pipes = load_models(args.models)
    first = next(iter(pipes.values()))
    inception = InceptionFeatures()
    train_images, _, train_labels = held_out_tiles(first, args.data, ("train",), args.train_tiles, args.seed)
    if not all(train_labels):
        raise SystemExit(f"Error: {args.data}: the manifest has no morphology column")
    svm = make_pipeline(StandardScaler(), SVC(C=SVM_C))
    svm.fit(extract(inception, train_images, progress=True), train_labels)
    images, raw, truth = held_out_tiles(first, args.data, ("val", "test"), args.n, args.seed)
    classes = sorted(set(train_labels) | set(truth))  # a class the classifier never saw is never recognised
    rows = {"real held-out tiles": recognition(svm.predict(extract(inception, images)), truth, classes)}
    masks = held_out_masks(first, args.data, ("val", "test"), args.n, args.seed) if args.stages else None
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
    record = {
        "benchmark": "morphology_recognition",
        "command": f"python benchmarks/morphology_recognition.py {args.data} {' '.join(args.models)} --n {args.n}"
        f" --train-tiles {args.train_tiles}" + (" --stages" if args.stages else ""),
        "classifier": f"RBF SVM (C {SVM_C}) on Inception-v3 pool3 features of {len(train_labels)} real training tiles",
        "classes": classes,
        "held_out_tiles": len(truth),
        "held_out_per_class": {c: truth.count(c) for c in classes},
        "rows": rows,
    }
    write_record(record, args.out or Path(__file__).parent / "results" / "morphology_recognition.json")


if __name__ == "__main__":
    main()
