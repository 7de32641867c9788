"""Metric gate: fail a run whose test metrics fall below floors or regress against a baseline.

Floors: a committed file maps model → metric → minimum, e.g. ``mnist_cnn: {accuracy: 0.6}``.
Every model it names must have ``metrics/<model>.json`` with that metric at or above the floor.

Baseline: ``dvc metrics diff REV`` compares each ``metrics/<model>.json`` at a git revision
(e.g. ``origin/main``) with the workspace. A gated metric regresses when it gets worse by more
than its tolerance: an absolute DELTA plus, optionally, a FRACTION of the baseline value (as
``numpy.isclose`` combines ``atol`` and ``rtol``; a relative part keeps a loss in the thousands,
whose float rounding differs between CPU models, gateable beside losses below 0.1); which way is
worse is decided by the metric's name
(:func:`metric_direction`). A model with no metrics at REV is reported as new, not failed; a
model whose metrics are gone from the workspace fails.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnpipe.dvccli import dvc_json
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


# --- baseline comparison ----------------------------------------------------------------------

#: Top-level metrics of ``metrics/<model>.json`` the baseline comparison gates, and which way is
#: better. Per-class values, counts (``n_test``) and labels are shown by ``dvc metrics diff``
#: but not gated: on small test sets they move too much to fail a build on.
HIGHER_IS_BETTER = ("accuracy", "macro_f1", "roc_auc")
LOWER_IS_BETTER = ("loss",)
DEFAULT_TOLERANCE = 0.01
_EPS = 1e-9  # a change of exactly the tolerance passes despite float rounding


def metric_direction(metric: str) -> int:
    """+1 if a higher value of ``metric`` is better, -1 if lower is better, 0 if it is not gated.

    Decided by name: ``accuracy``, ``macro_f1``, ``roc_auc`` (and any ``*_accuracy``, ``*_f1``,
    ``*_auc``) are higher-is-better; ``loss`` and any ``*_loss`` or ``*_error`` are lower-is-better.
    """
    if metric in HIGHER_IS_BETTER or metric.endswith(("_accuracy", "_f1", "_auc")):
        return 1
    if metric in LOWER_IS_BETTER or metric.endswith(("_loss", "_error")):
        return -1
    return 0


def parse_tolerances(
    specs: list[str] | None, default: float = DEFAULT_TOLERANCE, *, flag: str = "--tolerance"
) -> dict[str, float]:
    """Parse ``--tolerance`` (or ``--rel-tolerance``) values: ``0.02`` (every metric) or
    ``METRIC=0.02`` (one metric).

    Returns ``{metric: tolerance}`` with the default under the key ``"*"``. Tolerances must be
    ≥ 0; ``--tolerance`` is absolute (0.02 accuracy = two percentage points), ``--rel-tolerance``
    a fraction of the baseline value (0.01 = 1 %).
    """
    tolerances = {"*": default}
    for spec in specs or []:
        name, sep, value = spec.rpartition("=")
        name = name.strip() if sep else "*"
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if number < 0 or (sep and not name):
            raise ParamError(f"{flag} {spec!r}: expected NUMBER or METRIC=NUMBER with NUMBER ≥ 0")
        if name != "*" and not metric_direction(name):
            gated = ", ".join(HIGHER_IS_BETTER + LOWER_IS_BETTER)
            raise ParamError(f"{flag} {spec!r}: {name!r} is not a gated metric (gated: {gated})")
        tolerances[name] = number
    return tolerances


@dataclass
class BaselineCheck:
    """One model/metric compared with the baseline revision."""

    model: str
    metric: str
    old: float | None  # None: no baseline value at the revision
    new: float | None  # None: the metric is gone from the workspace
    tolerance: float  # absolute
    rel_tolerance: float = 0.0  # fraction of |old|, added to ``tolerance``

    @property
    def allowed(self) -> float:
        """How much worse than the baseline the metric may get: tolerance + rel_tolerance·|old|."""
        return self.tolerance + self.rel_tolerance * abs(self.old or 0.0)

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def verdict(self) -> str:
        """``ok``, ``improved``, ``regressed``, ``new`` (no baseline) or ``missing`` (gone now)."""
        if self.new is None:
            return "missing"
        if self.old is None:
            return "new"
        worse = -metric_direction(self.metric) * (self.new - self.old)
        if worse > self.allowed + _EPS:
            return "regressed"
        return "improved" if worse < -_EPS else "ok"

    @property
    def ok(self) -> bool:
        return self.verdict not in ("regressed", "missing")


def _git_commit(rev: str, cwd: str | Path | None) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ParamError(
            f"unknown baseline revision {rev!r}: not a commit in this repository "
            "(fetch it first, e.g. `git fetch origin main`, and give a branch, tag or commit)"
        )
    return result.stdout.strip()


def dvc_metrics_diff(rev: str, *, cwd: str | Path | None = None) -> dict[str, dict[str, dict]]:
    """``dvc metrics diff REV --all --json``: every metric at ``rev`` against the workspace.

    Returns DVC's mapping ``{file: {metric: {"old": …, "new": …, "diff": …}}}``; nested keys
    come dotted (``per_class.cat.f1``).
    """
    _git_commit(rev, cwd)
    return dvc_json(["metrics", "diff", rev, "--all", "--json"], cwd=cwd, empty={})


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_baseline(
    diff: dict[str, dict[str, dict]],
    metrics_dir: str | Path,
    tolerances: dict[str, float],
    *,
    rel_tolerances: dict[str, float] | None = None,
    cwd: str | Path | None = None,
) -> list[BaselineCheck]:
    """Turn a ``dvc metrics diff --json`` result into checks of the gated metrics.

    ``tolerances`` and ``rel_tolerances`` come from :func:`parse_tolerances` (no relative part
    when ``rel_tolerances`` is None).

    Only ``metrics_dir/<model>.json`` files are considered (training curves under dvclive/ are
    not test metrics); the model is the file name. Paths in ``diff`` are relative to ``cwd``.
    """
    base = Path(cwd or ".").resolve()
    wanted = Path(metrics_dir) if Path(metrics_dir).is_absolute() else base / metrics_dir
    rel_tolerances = rel_tolerances or {"*": 0.0}
    checks = []
    for file, metrics in sorted(diff.items()):
        path = base / file
        if path.suffix != ".json" or path.parent.resolve() != wanted.resolve():
            continue
        for metric, values in sorted(metrics.items()):
            if "." in metric or not metric_direction(metric):
                continue
            tolerance = tolerances.get(metric, tolerances["*"])
            rel = rel_tolerances.get(metric, rel_tolerances["*"])
            old, new = _number(values.get("old")), _number(values.get("new"))
            checks.append(BaselineCheck(path.stem, metric, old, new, tolerance, rel))
    return checks


def baseline_table(checks: list[BaselineCheck], rev: str) -> str:
    """A markdown table of the baseline checks: model, metric, old, new, change, tolerance, verdict."""

    def fmt(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "—"
        return f"{value:+.4f}" if signed else f"{value:.4f}"

    lines = [
        f"| model | metric | baseline ({rev}) | current | change | tolerance | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in sorted(checks, key=lambda c: (c.model, c.metric)):
        verdict = {"regressed": "**regressed**", "missing": "**missing**", "new": "new (no baseline)"}.get(
            c.verdict, c.verdict
        )
        better = "higher" if metric_direction(c.metric) > 0 else "lower"
        tolerance = f"{c.tolerance:g}" + (f" + {c.rel_tolerance * 100:g} %" if c.rel_tolerance else "")
        lines.append(
            f"| {c.model} | {c.metric} | {fmt(c.old)} | {fmt(c.new)} | {fmt(c.change, signed=True)} "
            f"| {tolerance} ({better} is better) | {verdict} |"
        )
    return "\n".join(lines)
