"""The ``evaluate@<model>`` stage: a trained model on its dataset's test split → metrics, plot data, figures.

:func:`evaluate_model` is the stage. For model ``<model>`` it loads
``models/<model>/model.pt``, runs it on ``data/prepared/<dataset>/test.*`` through the
bundle's eval transform and normalization, and writes (each file atomically)::

    metrics/<model>.json                       DVC metrics: the headline numbers (see below)
    metrics/<model>.info.json                  what was measured (see below); not a DVC metric
    plots/<model>/predictions.csv              actual,predicted,probability — one row per image
    plots/<model>/roc.csv                      fpr,tpr,threshold — binary models: positive class;
                                               others: micro-averaged one-vs-rest
    plots/<model>/per_class.csv                class,precision,recall,f1,support
    plots/<model>/figures/confusion_matrix.png
    plots/<model>/figures/learning_curves.png  when dvclive/<model>/plots/metrics/ has a history
    plots/<model>/figures/predictions.png      a grid of evaluate.grid_images test images
    plots/<model>/figures/before_after.png     up to 8 of them, predicted before training (the train
                                               stage's initial weights, rebuilt under its seed) and after
    plots/<model>/figures/positive_class.png   binary models: the grid's images with "GT: <class>" and
                                               "Pr(<positive class>)=…%"
    plots/<model>/figures/errors.png           the evaluate.worst_images most confidently wrong
    plots/<model>/figures/filters.png          first-layer conv filters (models with convolutions)
    plots/<model>/figures/feature_maps.png     first conv block activations of one test image

The figures directory is replaced as a whole, so figures of an earlier run never linger.

The metrics file holds numbers only, the columns `dvc exp show` compares: the test split's
``accuracy``, ``loss`` (mean cross-entropy, or binary cross-entropy for a single-logit model),
``macro_f1`` and ``roc_auc`` (binary models only; left out when the split holds one class),
rounded to 6 decimals, then the last training epoch's ``train`` and ``val`` ``loss`` and
``acc`` from dvclive's ``dvclive/<model>/metrics.json`` (when it exists; rounded alike), so over-fitting
shows beside the test numbers in one row. The info file names what was measured:
``model``, ``dataset``, ``split``, ``n_test`` (images evaluated), ``classes`` and, for
transfer models, ``backbone_weights`` (the torchvision weights the backbone started from,
or ``none (random init)``). ``split`` is ``test``, except for datasets published without a
test split (horse_or_human): there the validation split is evaluated instead, ``split``
says ``valid``, and a log line says so.

Images are processed in split order in fixed-size batches, so the results are reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnpipe import paths
from cnnpipe.config.evaluate import EvaluateSettings
from cnnpipe.data.arrays import load_meta, load_split
from cnnpipe.errors import DataFormatError
from cnnpipe.evaluate import figures
from cnnpipe.evaluate.dvcplots import write_per_class_csv, write_predictions_csv, write_roc_csv
from cnnpipe.evaluate.metrics import (
    DECIMALS,
    compute_metrics,
    mean_loss,
    per_class_scores,
    positive_scores,
    predicted_classes,
    probabilities,
)
from cnnpipe.evaluate.predictions import (
    display_images,
    eval_pipeline,
    initial_model,
    most_confident_errors,
    predict_split,
    resolve_device,
    spread_indices,
)
from cnnpipe.fileio import atomic_dir, atomic_write_json
from cnnpipe.models.trained import TrainedModel, load_trained

Log = Callable[[str], None]

BEFORE_AFTER_IMAGES = 8


def _load_eval_split(
    data_dir: Path, trained: TrainedModel, dataset: str, log: Log
) -> tuple[str, np.ndarray, np.ndarray]:
    """(split name, uint8 images, int64 labels) to evaluate on, checked against the bundle."""
    meta = load_meta(data_dir)
    if meta.get("label_type", "class") != "class":
        raise DataFormatError(
            f"{data_dir}: has attribute labels, not classes; evaluate a model of a class subset of it"
        )
    if list(meta["classes"]) != list(trained.classes):
        raise DataFormatError(
            f"{paths.model_file(trained.name)} was trained on classes {trained.classes} but {data_dir} "
            f"has {meta['classes']}; retrain the model (`dvc repro`)"
        )
    split = "test"
    data = load_split(data_dir, split)
    if len(data.labels) == 0:
        split = "valid"
        data = load_split(data_dir, split)
        log(f"{dataset} has no test split: evaluating {trained.name} on its validation split")
        if len(data.labels) == 0:
            raise DataFormatError(f"{data_dir}: no test or validation images to evaluate on")
    shape = list(data.images.shape[1:])
    if shape != list(trained.input_shape):
        raise DataFormatError(
            f"{paths.model_file(trained.name)} expects prepared images of {trained.input_shape} but "
            f"{data_dir}/{split} holds {shape}; retrain the model (`dvc repro`)"
        )
    return split, data.images, np.array(data.labels, dtype=np.int64)


def _last_epoch(summary_file: Path) -> dict[str, dict[str, float]]:
    """``{"train": {"loss", "acc"}, "val": {...}}`` of the training summary dvclive wrote, if any."""
    if not summary_file.is_file():
        return {}
    summary = json.loads(summary_file.read_text())
    return {
        split: {name: round(float(value), DECIMALS) for name, value in summary[split].items()}
        for split in ("train", "val")
        if isinstance(summary.get(split), dict)
    }


def _before_after(
    out_dir: Path,
    trained: TrainedModel,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    grid_images: int,
    device: torch.device | str,
) -> Path:
    """The untrained model's predictions next to the trained one's on the same test images."""
    shown = spread_indices(len(labels), min(grid_images, BEFORE_AFTER_IMAGES))
    initial, note = initial_model(trained)
    batch = np.array(images[shown])
    before = probabilities(
        predict_split(initial, batch, max(1, len(batch)), device), log_probs=initial.log_probs
    )
    return figures.before_after_figure(
        display_images(trained, batch),
        labels[shown],
        [
            ("before training", *predicted_classes(before)),
            ("after training", *predicted_classes(probs[shown])),
        ],
        trained.classes,
        out_dir / "before_after.png",
        title=f"{trained.name}: test predictions before training ({note}) and after",
    )


def write_figures(
    out_dir: Path,
    trained: TrainedModel,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    curves_dir: Path,
    grid_images: int,
    worst_images: int,
    device: torch.device | str = "cpu",
    log: Log = print,
) -> list[Path]:
    """Write the figures of an evaluation into ``out_dir``; returns the files written.

    ``images`` are the split's uint8 ``N×C×H×W`` images, ``labels`` their classes and
    ``probs`` the model's probabilities (see :mod:`cnnpipe.evaluate.metrics`).
    """
    out_dir = Path(out_dir)
    classes, name = trained.classes, trained.name
    predicted, confidence = predicted_classes(probs)
    written = [
        figures.confusion_matrix_figure(
            labels, predicted, classes, out_dir / "confusion_matrix.png", title=name
        )
    ]
    if figures.learning_curves_figure(curves_dir, out_dir / "learning_curves.png", title=name, log=log):
        written.append(out_dir / "learning_curves.png")

    shown = spread_indices(len(labels), grid_images)
    written.append(
        figures.prediction_grid_figure(
            display_images(trained, images[shown]),
            labels[shown],
            predicted[shown],
            confidence[shown],
            classes,
            out_dir / "predictions.png",
            title=f"{name}: test predictions",
        )
    )
    if trained.binary:
        written.append(
            figures.positive_class_figure(
                display_images(trained, images[shown]),
                labels[shown],
                positive_scores(probs)[shown],
                classes,
                out_dir / "positive_class.png",
                title=f"{name}: ground truth and Pr({classes[1]})",
            )
        )
    written.append(_before_after(out_dir, trained, images, labels, probs, grid_images, device))

    worst = most_confident_errors(labels, predicted, confidence, worst_images)
    written.append(
        figures.prediction_grid_figure(
            display_images(trained, images[worst]),
            labels[worst],
            predicted[worst],
            confidence[worst],
            classes,
            out_dir / "errors.png",
            title=f"{name}: most confident errors",
            empty_message="no misclassified test images",
        )
    )

    if figures.filters_figure(trained.model, out_dir / "filters.png", title=name, log=log):
        written.append(out_dir / "filters.png")
    with torch.inference_mode():
        model_input = eval_pipeline(trained)(torch.from_numpy(np.array(images[:1])).to(device))
    if figures.feature_maps_figure(
        trained.model,
        display_images(trained, images[:1])[0],
        model_input,
        out_dir / "feature_maps.png",
        title=f"{name}: {classes[int(labels[0])]}",
        log=log,
    ):
        written.append(out_dir / "feature_maps.png")
    return written


def evaluate_model(
    name: str,
    settings: EvaluateSettings,
    *,
    dataset: str,
    device: str = "auto",
    root: str | Path = Path("."),
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate model ``name`` (trained on ``dataset``) and write its metrics, plot data and figures.

    ``settings`` is the parsed ``evaluate`` section, ``dataset`` is ``models.<name>.dataset``
    and ``device`` is ``run.device``; files are read and written under ``root``. Returns
    ``{"metrics": …, "info": …, "per_class": …}``: what ``metrics/<name>.json``,
    ``metrics/<name>.info.json`` and ``plots/<name>/per_class.csv`` hold (see the module
    docstring for every output).
    """
    root = Path(root)
    batch_size, grid_images, worst_images = settings.batch_size, settings.grid_images, settings.worst_images
    run_device = resolve_device(device)

    trained = load_trained(paths.model_file(name, root), device=run_device)
    data_dir = paths.prepared_dir(dataset, root)
    split, images, labels = _load_eval_split(data_dir, trained, dataset, log)

    logits = predict_split(trained, images, batch_size, run_device, progress=len(labels) > 4 * batch_size)
    probs = probabilities(logits, log_probs=trained.log_probs)
    info: dict[str, Any] = {"model": name, "dataset": dataset, "split": split, "n_test": len(labels)}
    if "weights" in trained.extra:  # transfer models: say whether the backbone was pretrained
        info["backbone_weights"] = trained.extra["weights"]
    if "device_warning" in trained.extra:  # the train stage fell back to the CPU: say so beside the metrics
        info["device_warning"] = trained.extra["device_warning"]
    info["classes"] = list(trained.classes)
    metrics: dict[str, Any] = compute_metrics(
        labels, probs, trained.classes, loss=mean_loss(logits, labels, log_probs=trained.log_probs)
    )
    metrics.update(_last_epoch(paths.live_summary_file(name, root)))
    per_class = per_class_scores(labels, probs, trained.classes)
    predicted, confidence = predicted_classes(probs)

    plots_dir = paths.plots_dir(name, root)
    with atomic_dir(paths.figures_dir(name, root)) as tmp:
        write_figures(
            tmp,
            trained,
            images,
            labels,
            probs,
            curves_dir=paths.live_curves_dir(name, root),
            grid_images=grid_images,
            worst_images=worst_images,
            device=run_device,
            log=log,
        )
    write_predictions_csv(plots_dir / paths.PREDICTIONS_CSV, labels, predicted, confidence, trained.classes)
    write_per_class_csv(plots_dir / paths.PER_CLASS_CSV, per_class)
    roc_file = plots_dir / paths.ROC_CSV
    if trained.binary:
        write_roc_csv(roc_file, labels, positive_scores(probs))
    else:  # micro-averaged one-vs-rest: every (image, class) pair is one binary decision
        onehot = np.eye(len(trained.classes), dtype=np.int64)[np.asarray(labels)]
        write_roc_csv(roc_file, onehot.ravel(), np.asarray(probs, dtype=np.float64).ravel())
    atomic_write_json(paths.info_file(name, root), info)
    atomic_write_json(paths.metrics_file(name, root), metrics)

    auc = f", ROC-AUC {metrics['roc_auc']}" if metrics.get("roc_auc") is not None else ""
    log(
        f"{name}: {split} accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, "
        f"macro F1 {metrics['macro_f1']:.4f}{auc} on {info['n_test']} {dataset} images"
    )
    return {"metrics": metrics, "info": info, "per_class": per_class}
