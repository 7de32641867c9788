"""Metric floors: fail a run whose test metrics fall below committed per-model minimums.

The floors file maps model → metric → minimum, e.g. ``mnist_cnn: {accuracy: 0.6}``. Every
model it names must have ``metrics/<model>.json`` with that metric at or above the floor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnpipe.errors import ParamError


@dataclass
class FloorCheck:
    """One model/metric comparison."""

    model: str
    metric: str
    floor: float
    value: float | None  # None: the metrics file or the metric is missing

    @property
    def ok(self) -> bool:
        return self.value is not None and self.value >= self.floor


def load_floors(path: str | Path) -> dict[str, dict[str, float]]:
    """Read and validate a floors YAML file."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path} does not exist: commit a floors file (model: {{metric: minimum}})")
    floors = yaml.safe_load(path.read_text()) or {}
    if not isinstance(floors, dict) or not all(
        isinstance(m, dict) and all(isinstance(v, (int, float)) for v in m.values()) for m in floors.values()
    ):
        raise ParamError(f"{path}: expected `model: {{metric: number}}` entries")
    return {model: {k: float(v) for k, v in metrics.items()} for model, metrics in floors.items()}


def check_floors(floors: dict[str, dict[str, float]], metrics_dir: str | Path) -> list[FloorCheck]:
    """Compare ``metrics_dir/<model>.json`` with each floor."""
    checks = []
    for model, wanted in floors.items():
        path = Path(metrics_dir) / f"{model}.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        for metric, floor in wanted.items():
            value = values.get(metric)
            checks.append(FloorCheck(model, metric, floor, float(value) if value is not None else None))
    return checks


def floors_table(checks: list[FloorCheck]) -> str:
    """A markdown table of the checks, failures marked."""
    lines = ["| model | metric | value | floor | |", "|---|---|---|---|---|"]
    for c in checks:
        value = "missing" if c.value is None else f"{c.value:.4f}"
        lines.append(
            f"| {c.model} | {c.metric} | {value} | {c.floor:.4f} | {'ok' if c.ok else '**below**'} |"
        )
    return "\n".join(lines)
