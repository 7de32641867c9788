"""Test-split metrics from model outputs: accuracy, loss, macro F1, ROC-AUC, per-class scores.

Conventions shared by evaluation, the DVC plot files and the figures:

* a multiclass model gives an ``N×K`` array of class probabilities (softmax of the logits, or
  ``exp`` of the log-probabilities of a network ending in LogSoftmax);
* a binary model (one logit, sigmoid + BCE) gives a length-``N`` vector: the probability of
  ``classes[1]``. It predicts ``classes[1]`` when that probability is above 0.5 (logit > 0),
  else ``classes[0]``;
* ties between equal probabilities go to the lowest class index, so results are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

DECIMALS = 6


def _round(value: float) -> float:
    return round(float(value), DECIMALS)


def is_binary(probs: np.ndarray) -> bool:
    """True when ``probs`` is a vector of positive-class probabilities (a single-logit model)."""
    return np.asarray(probs).ndim == 1


def probabilities(outputs: torch.Tensor | np.ndarray, *, log_probs: bool = False) -> np.ndarray:
    """Model outputs → float64 probabilities of the same shape.

    ``outputs`` are logits (``N×K``, or ``N`` for a single-logit model: sigmoid, else softmax),
    or with ``log_probs`` the ``N×K`` log-probabilities of a network ending in LogSoftmax
    (``arch.log_softmax``): their ``exp``.
    """
    outputs = torch.as_tensor(outputs).to(torch.float64)
    if log_probs:
        if outputs.ndim != 2:
            raise ValueError(f"log-probabilities must be N×K, got shape {tuple(outputs.shape)}")
        return outputs.exp().numpy()
    if outputs.ndim == 1:
        return torch.sigmoid(outputs).numpy()
    return torch.softmax(outputs, dim=1).numpy()


def mean_loss(outputs: torch.Tensor | np.ndarray, labels: np.ndarray, *, log_probs: bool = False) -> float:
    """Mean cross-entropy of ``N×K`` logits, or binary cross-entropy of ``N`` single logits.

    With ``log_probs`` the outputs are log-probabilities and this is their mean NLL (the same
    cross-entropy). Computed in float64 from the outputs (not the rounded-off probabilities),
    as the training loss is, so a very confident wrong prediction costs what it should.
    """
    outputs = torch.as_tensor(outputs).to(torch.float64)
    target = torch.from_numpy(np.array(labels, dtype=np.int64))
    if log_probs:
        return float(F.nll_loss(outputs, target))
    if outputs.ndim == 1:
        return float(F.binary_cross_entropy_with_logits(outputs, target.to(torch.float64)))
    return float(F.cross_entropy(outputs, target))


def predicted_classes(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class index and the probability given to it, for each row of ``probs``."""
    probs = np.asarray(probs, dtype=np.float64)
    if is_binary(probs):
        predicted = (probs > 0.5).astype(np.int64)
        return predicted, np.where(predicted == 1, probs, 1.0 - probs)
    predicted = probs.argmax(axis=1).astype(np.int64)  # first maximum on ties
    return predicted, probs[np.arange(len(probs)), predicted]


def positive_scores(probs: np.ndarray) -> np.ndarray:
    """The probability of ``classes[1]`` per image: the score ROC curves of a binary model rank by."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs if is_binary(probs) else probs[:, 1]


def _check_predictions(labels: np.ndarray, probs: np.ndarray, k: int) -> None:
    binary = is_binary(probs)
    if len(probs) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(probs)} predictions")
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    if binary and k != 2:
        raise ValueError(f"binary probabilities need 2 class names, got {k}")
    if not binary and probs.shape[1] != k:
        raise ValueError(f"{probs.shape[1]} probability columns for {k} classes")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels range {labels.min()}..{labels.max()} but there are {k} classes")


def compute_metrics(
    labels: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    loss: float | None = None,
) -> dict[str, float | int]:
    """The headline metrics of predictions ``probs`` (see the module docstring) against ``labels``.

    Returns numbers only, the columns a comparison of runs reads: ``accuracy``, ``loss``,
    ``macro_f1`` (every class counts, even one absent from the split), ``roc_auc`` (binary
    models only: scikit-learn's ``roc_auc_score`` on the positive-class probability; left out
    when the split holds a single class). ``loss`` defaults to the mean
    negative log-probability of the true class (clipped at 1e-15); pass the logit-based value
    from :func:`mean_loss` when the logits are at hand. Floats are rounded to 6 decimals.
    Per-class scores are :func:`per_class_scores`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    _check_predictions(labels, probs, k)
    binary = is_binary(probs)
    predicted, _ = predicted_classes(probs)
    if loss is None:
        if binary:
            p_true = np.where(labels == 1, probs, 1.0 - probs)
        else:
            p_true = probs[np.arange(len(labels)), labels]
        loss = float(-np.log(np.clip(p_true, 1e-15, 1.0)).mean())

    ids = list(range(k))
    metrics: dict[str, float | int] = {
        "accuracy": _round(np.mean(predicted == labels)),
        "loss": _round(loss),
        "macro_f1": _round(f1_score(labels, predicted, labels=ids, average="macro", zero_division=0)),
    }
    if binary and len(np.unique(labels)) == 2:
        metrics["roc_auc"] = _round(roc_auc_score(labels, probs))
    return metrics


def per_class_scores(
    labels: Sequence[int] | np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """Class name → ``{"precision", "recall", "f1", "support"}`` (scikit-learn, ``zero_division=0``).

    Floats are rounded to 6 decimals; a class absent from the split scores 0 with support 0.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    _check_predictions(labels, probs, len(classes))
    predicted, _ = predicted_classes(probs)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(len(classes))), zero_division=0
    )
    return {
        name: {
            "precision": _round(precision[i]),
            "recall": _round(recall[i]),
            "f1": _round(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
