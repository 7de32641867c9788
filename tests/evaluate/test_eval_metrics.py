"""Metric computations against scikit-learn, numpy and torch computed independently."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support, roc_auc_score

from cnnpipe.evaluate.dvcplots import roc_points, write_per_class_csv, write_predictions_csv, write_roc_csv
from cnnpipe.evaluate.metrics import (
    compute_metrics,
    mean_loss,
    per_class_scores,
    predicted_classes,
    probabilities,
)
from cnnpipe.evaluate.predictions import most_confident_errors, spread_indices

CLASSES = ["a", "b", "c", "d"]


def _random(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * 2, rng.integers(0, k, size=n)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multiclass_metrics_match_sklearn():
    logits, labels = _random(200, 4)
    probs = probabilities(logits)
    m = compute_metrics(labels, probs, CLASSES, loss=mean_loss(logits, labels))
    pred = logits.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-6)
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"), abs=1e-6)
    expected_loss = F.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    assert m["loss"] == pytest.approx(expected_loss, abs=1e-6)
    assert set(m) == {"accuracy", "loss", "macro_f1"}  # no ROC-AUC for a multiclass model
    assert all(isinstance(v, (int, float)) for v in m.values())  # numbers only
    p, r, f, s = precision_recall_fscore_support(labels, pred)
    per_class = per_class_scores(labels, probs, CLASSES)
    for i, name in enumerate(CLASSES):
        assert per_class[name] == {
            "precision": pytest.approx(p[i], abs=1e-6),
            "recall": pytest.approx(r[i], abs=1e-6),
            "f1": pytest.approx(f[i], abs=1e-6),
            "support": int(s[i]),
        }
    # the loss from probabilities alone is the log loss
    assert compute_metrics(labels, probs, CLASSES)["loss"] == pytest.approx(log_loss(labels, probs), abs=1e-6)


def test_log_probabilities_give_their_exp_and_nll():
    logits, labels = _random(50, 4, seed=3)
    log_probs = torch.log_softmax(torch.tensor(logits), dim=1).numpy()
    probs = probabilities(log_probs, log_probs=True)
    assert probs == pytest.approx(np.exp(log_probs), abs=1e-12)
    assert probs == pytest.approx(probabilities(logits), abs=1e-12)
    assert probs.sum(axis=1) == pytest.approx(np.ones(50))
    nll = -log_probs[np.arange(50), labels].mean()
    assert mean_loss(log_probs, labels, log_probs=True) == pytest.approx(nll, abs=1e-12)
    assert mean_loss(log_probs, labels, log_probs=True) == pytest.approx(mean_loss(logits, labels), abs=1e-9)
    with pytest.raises(ValueError, match="N×K"):
        probabilities(log_probs[:, 0], log_probs=True)


def test_binary_metrics_match_sklearn_and_bce():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=150) * 3
    labels = rng.integers(0, 2, size=150)
    probs = probabilities(logits)
    m = compute_metrics(labels, probs, ["no", "yes"], loss=mean_loss(logits, labels))
    pred = (logits > 0).astype(int)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-6)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, probs), abs=1e-6)
    bce = F.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(labels, dtype=torch.float64))
    assert m["loss"] == pytest.approx(bce.item(), abs=1e-6)
    assert per_class_scores(labels, probs, ["no", "yes"])["yes"]["support"] == int(labels.sum())
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"), abs=1e-6)


def test_absent_class_scores_zero_and_counts_in_macro():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = compute_metrics(labels, probs, ["x", "y", "z"])
    assert per_class_scores(labels, probs, ["x", "y", "z"])["z"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }
    expected = f1_score(labels, probs.argmax(1), labels=[0, 1, 2], average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(expected, abs=1e-6)


def test_single_class_binary_split_has_no_auc():
    m = compute_metrics([1, 1, 1], np.array([0.2, 0.7, 0.9]), ["no", "yes"])
    assert "roc_auc" not in m and m["accuracy"] == pytest.approx(2 / 3, abs=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="labels range"):
        compute_metrics([0, 3], np.full((2, 3), 1 / 3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="columns"):
        compute_metrics([0, 1], np.full((2, 2), 0.5), ["a", "b", "c"])
    with pytest.raises(ValueError, match="no predictions"):
        compute_metrics([], np.zeros((0, 3)), ["a", "b", "c"])


def test_predicted_classes_ties_and_binary_confidence():
    pred, conf = predicted_classes(np.array([[0.4, 0.4, 0.2], [0.1, 0.2, 0.7]]))
    assert pred.tolist() == [0, 2] and conf.tolist() == pytest.approx([0.4, 0.7])
    pred, conf = predicted_classes(np.array([0.5, 0.9, 0.2]))
    assert pred.tolist() == [0, 1, 0] and conf.tolist() == pytest.approx([0.5, 0.9, 0.8])


def test_roc_points_monotone_and_written(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=100)
    scores = np.clip(labels * 0.3 + rng.random(100) * 0.7, 0, 1)
    points = roc_points(labels, scores)
    assert np.all(np.diff(points[:, 0]) >= 0) and np.all(np.diff(points[:, 1]) >= 0)
    assert points[0, :2].tolist() == [0.0, 0.0] and points[-1, :2].tolist() == [1.0, 1.0]
    assert np.all(np.isfinite(points)) and points[:, 2].max() <= 1.0
    write_roc_csv(tmp_path / "roc.csv", labels, scores)
    rows = _rows(tmp_path / "roc.csv")
    assert list(rows[0]) == ["fpr", "tpr", "threshold"] and len(rows) == len(points)


def test_per_class_csv_rows_in_class_order(tmp_path):
    labels = np.array([0, 0, 1, 2])
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    write_per_class_csv(tmp_path / "per_class.csv", per_class_scores(labels, probs, ["x", "y, z", "w"]))
    rows = _rows(tmp_path / "per_class.csv")
    assert [r["class"] for r in rows] == ["x", "y, z", "w"]
    assert rows[1] == {"class": "y, z", "precision": "0.333333", "recall": "1.0", "f1": "0.5", "support": "1"}


def test_predictions_csv_quotes_names(tmp_path):
    write_predictions_csv(tmp_path / "p.csv", [0, 1], [1, 1], [0.25, 0.5], ["a, b", "c"])
    rows = _rows(tmp_path / "p.csv")
    assert rows == [
        {"actual": "a, b", "predicted": "c", "probability": "0.25"},
        {"actual": "c", "predicted": "c", "probability": "0.5"},
    ]


def test_index_helpers():
    assert spread_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert spread_indices(3, 10).tolist() == [0, 1, 2]
    assert spread_indices(0, 4).tolist() == []
    confidence = np.array([0.6, 1, 0.9, 0.6, 0.3])
    wrong = most_confident_errors([0, 1, 2, 0, 1], np.array([1, 1, 0, 2, 0]), confidence, 3)
    assert wrong.tolist() == [2, 0, 3]
