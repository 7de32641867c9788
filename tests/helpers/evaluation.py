"""Shared by the evaluate tests: the figures evaluate writes, and the stage's wiring of params."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnpipe.config.evaluate import parse_evaluate
from cnnpipe.config.run import parse_run
from cnnpipe.config.train import parse_dataset_name
from cnnpipe.evaluate.stage import evaluate_model

#: plots/<model>/figures/ of every evaluated model with a learning history and convolutions.
FIGURES = (
    "confusion_matrix.png",
    "learning_curves.png",
    "predictions.png",
    "errors.png",
    "before_after.png",
    "filters.png",
    "feature_maps.png",
)
BINARY_FIGURES = ("positive_class.png",)  # single-logit models only


def evaluate_params(name: str, params: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """:func:`evaluate_model` as ``stages/evaluate.py`` calls it, with the sections parsed from ``params``."""
    return evaluate_model(
        name,
        parse_evaluate(params),
        dataset=parse_dataset_name(params, name),
        device=parse_run(params).device,
        **kwargs,
    )
