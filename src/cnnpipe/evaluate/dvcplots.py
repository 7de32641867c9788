"""Data files for DVC's plot templates, written atomically.

* ``predictions.csv`` — one row per test image, in split order: ``actual,predicted,probability``
  (class names, and the probability given to the predicted class), for the ``confusion``
  template with ``x: predicted``, ``y: actual``;
* ``roc.csv`` — ``fpr,tpr,threshold`` from scikit-learn's ``roc_curve`` on the positive-class
  probability (multiclass models: micro-averaged one-vs-rest), for the ``simple``/``linear``
  template with ``x: fpr``, ``y: tpr``. scikit-learn's first threshold is +inf (no image
  predicted positive); it is written as 1.0, so every value is a plain number;
* ``per_class.csv`` — ``class,precision,recall,f1,support``, one row per class in class
  order, for the project's ``per_class`` template (``.dvc/plots/per_class.json``: grouped
  horizontal bars) with ``y: class``.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_curve

from cnnpipe.evaluate.metrics import DECIMALS
from cnnpipe.fileio import atomic_file


def _num(value: float) -> str:
    return repr(round(float(value), DECIMALS))


def write_predictions_csv(
    path: str | os.PathLike,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    confidence: Sequence[float] | np.ndarray,
    classes: Sequence[str],
) -> None:
    """Write ``actual,predicted,probability`` rows (class names; probability of the predicted class)."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["actual", "predicted", "probability"])
        for actual, guess, prob in zip(labels, predicted, confidence, strict=True):
            writer.writerow([classes[int(actual)], classes[int(guess)], _num(prob)])


def roc_points(labels: Sequence[int] | np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``M×3`` array of (fpr, tpr, threshold), thresholds decreasing, fpr and tpr non-decreasing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one class only: NaN rates
        fpr, tpr, thresholds = roc_curve(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    return np.stack([fpr, tpr, np.minimum(thresholds, 1.0)], axis=1)


def write_roc_csv(path: str | os.PathLike, labels: Sequence[int] | np.ndarray, scores: np.ndarray) -> None:
    """Write the ROC curve of positive-class ``scores`` against 0/1 ``labels`` as ``fpr,tpr,threshold``.

    A split holding one class only has no ROC curve: its undefined rates are written as ``nan``.
    """
    points = roc_points(labels, scores)
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["fpr", "tpr", "threshold"])
        for row in points:
            writer.writerow([_num(v) for v in row])


def write_per_class_csv(path: str | os.PathLike, scores: Mapping[str, Mapping[str, float | int]]) -> None:
    """Write ``class,precision,recall,f1,support`` rows, as :func:`.metrics.per_class_scores` gives them."""
    columns = ("precision", "recall", "f1", "support")
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["class", *columns])
        for name, row in scores.items():
            writer.writerow([name, *(row[c] for c in columns)])
