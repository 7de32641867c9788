"""Evaluation of a trained model: metrics, DVC plot data and figures (re-exports only).

:mod:`.stage` is the ``evaluate@<model>`` stage; :mod:`.metrics`, :mod:`.dvcplots`,
:mod:`.figures` and :mod:`.predictions` hold its parts. The names below are loaded on first
use, so importing :mod:`.predictions` alone (as ``cnnpipe predict`` does) leaves matplotlib
and scikit-learn unloaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compute_metrics": "cnnpipe.evaluate.metrics",
    "mean_loss": "cnnpipe.evaluate.metrics",
    "probabilities": "cnnpipe.evaluate.metrics",
    "predict_split": "cnnpipe.evaluate.predictions",
    "resolve_device": "cnnpipe.evaluate.predictions",
    "evaluate_model": "cnnpipe.evaluate.stage",
    "write_figures": "cnnpipe.evaluate.stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported ``name``, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
