"""The top-level ``plots:`` of dvc.yaml: each model's learning curves, train vs validation.

DVC draws a stage's plot files one chart per file, so dvclive's ``train/loss.tsv`` and
``val/loss.tsv`` would land on separate charts. A top-level plot with a ``y`` mapping over
both files puts them on one; top-level plots have no ``foreach``, so dvc.yaml lists two per
model of params.yaml, ``plots/<model>/loss`` and ``plots/<model>/accuracy``, written by this
module. Their ids sit beside the model's other plots, so the regular expression
``dvc plots show 'plots/<model>/.*'`` selects one model's charts and figures, and no other's:

    cnnpipe plot-defs --write     # after adding a model to params.yaml

``tests/test_plotdefs.py`` fails while dvc.yaml's block and params.yaml's models disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cnnpipe import paths

#: The line that starts the generated block; everything after it is rewritten.
MARKER = "# Learning curves per model, train vs validation"

_CURVES = (("loss", "loss", "loss"), ("accuracy", "acc", "accuracy"))


def learning_curve_plots(models: Iterable[str]) -> list[dict[str, Any]]:
    """The top-level plot definitions for ``models``: loss and accuracy per epoch, train vs validation."""
    plots = []
    for model in models:
        base = paths.live_curves_dir(model).as_posix()
        for name, field, label in _CURVES:
            plots.append(
                {
                    (paths.plots_dir(model) / name).as_posix(): {
                        "template": "linear",
                        "x": "step",
                        "y": {f"{base}/train/{field}.tsv": field, f"{base}/val/{field}.tsv": field},
                        "title": f"{model}: {label}, train vs validation",
                        "x_label": "epoch",
                        "y_label": label,
                    }
                }
            )
    return plots


def plots_block(models: Iterable[str]) -> str:
    """The text of dvc.yaml's generated top-level ``plots:`` block, marker line first."""
    body = yaml.safe_dump({"plots": learning_curve_plots(models)}, sort_keys=False, width=120)
    return (
        f"{MARKER} (plots/<model>/loss, plots/<model>/accuracy),\n# one pair per"
        " entry of `models:` in params.yaml. Generated: `cnnpipe plot-defs --write` rewrites it.\n" + body
    )


def write_plots_block(dvc_yaml: Path, models: Iterable[str]) -> bool:
    """Rewrite the generated block at the end of ``dvc_yaml``; True when the file changed."""
    text = Path(dvc_yaml).read_text()
    head = text.split(MARKER, 1)[0].rstrip("\n") + "\n\n"
    new = head + plots_block(models)
    if new == text:
        return False
    Path(dvc_yaml).write_text(new)
    return True
