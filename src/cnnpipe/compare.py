"""One readable table of DVC experiments (``cnnpipe compare [MODEL ...]``).

The data comes from ``dvc exp show --json``: one entry per baseline (the workspace, then each
commit) with its ``experiments``, each holding the params files and metrics files DVC read for
it, as parsed JSON, path by path. That keeps params (``params.yaml``) apart from metrics and one
model's ``metrics/<model>.json`` apart from another's and from the training curves under
``dvclive/``, with numbers unrounded. (``dvc.api.exp_show()`` returns the rows of DVC's own
table instead: values turned into strings and back, and column names that are bare or
``path:name`` depending on what else the repository holds.)

The table (:func:`build_table`) has a row per experiment, named as ``dvc exp show`` names it:

* ``Experiment``: ``workspace``, the baseline's branch or tag name, or the experiment's name;
* ``rev``: the commit's short SHA (empty for the workspace);
* ``State``: only when some experiment is queued, running or failed;
* the params of ``params.yaml`` whose values are not all equal between the rows, as dotted
  paths (``models.mnist_cnn.arch.dropout``); list values are one param, as DVC shows them.
  When models are chosen, only those under ``models.<MODEL>.`` and the settings shared by
  every model's stages — ``run.``, ``data.``, ``evaluate.``, and the model's own dataset:
  ``datasets.<dataset>.`` or, for a subset, ``subsets.<dataset>.`` and ``datasets.<source>.``
  — so another model's params or another dataset's settings never widen the table;
* the headline test metrics of ``metrics/<model>.json``: ``accuracy``, ``loss``, ``macro_f1``,
  and ``roc_auc`` where some row has it (binary models), named ``<model>.<metric>``, or just
  ``<metric>`` when one model is chosen (:func:`caption` then names it). Without models,
  every model with a metrics file in some row, ``accuracy`` only.

Rows come in DVC's order (workspace, baseline, its experiments newest first; ``--rev`` and
``--all`` add baselines; ``--exp NAME`` keeps only the experiments of those names, in the order
given). ``--sort-by COLUMN`` orders every row, baselines included: metrics best
first (by name, as the metric gate decides: higher accuracy, lower loss), params ascending, rows
without a value last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cnnpipe.dvccli import dvc_json
from cnnpipe.errors import CnnpipeError
from cnnpipe.gate import metric_direction

#: Headline metrics of ``metrics/<model>.json``, in column order.
HEADLINE = ("accuracy", "loss", "macro_f1", "roc_auc")
#: Shown for a chosen model even while no row has them yet; roc_auc only where present.
ALWAYS = ("accuracy", "loss", "macro_f1")
#: Params sections every model's stages share (see dvc.yaml).
SHARED = ("run", "data", "evaluate")
MISSING = "-"

_METRICS_FILE = re.compile(r"^metrics[/\\](?P<model>[^/\\]+)\.json$")


@dataclass
class Row:
    """One row of ``dvc exp show``: a baseline (or the workspace) or an experiment."""

    name: str  # "workspace", the baseline's branch/tag name, or the experiment's name
    rev: str  # short SHA; "" for the workspace
    kind: str  # "workspace", "baseline" or "experiment"
    state: str = ""  # "", or the executor state of a queued/running/failed experiment
    params: dict[str, Any] | None = None  # params.yaml flattened; None when DVC has no data
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → metrics file
    sha: str = ""  # the full revision (a queued experiment's is its stash commit)


def exp_show(revs: Sequence[str] = (), all_commits: bool = False, cwd: str | None = None) -> list[dict]:
    """Run ``dvc exp show --json`` and return its parsed output (a list of baseline states)."""
    args = ["exp", "show", "--json"]
    args += ["--all-commits"] if all_commits else [arg for rev in revs for arg in ("--rev", rev)]
    return dvc_json(args, cwd=cwd, empty=[])


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → ``{"a.b.c": value}`` (lists stay values), as DVC names params."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def _row(state: dict, kind: str, executor: dict | None = None) -> Row:
    rev = state.get("rev") or ""
    if kind == "workspace":
        name, short = "workspace", ""
    else:
        short = rev[:7] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev
        name = state.get("name") or ("" if kind == "experiment" else short)
    status = (executor or {}).get("state") or ""
    row = Row(name=name, rev=short, kind=kind, state="" if status == "success" else status, sha=rev)
    data = state.get("data")
    if data and not state.get("error"):
        row.params = flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
        for path, result in (data.get("metrics") or {}).items():
            match = _METRICS_FILE.match(path)
            if match and isinstance(result.get("data"), dict):
                row.metrics[match["model"]] = result["data"]
    return row


def rows_from_exp_show(states: Iterable[dict]) -> list[Row]:
    """Flatten ``dvc exp show --json`` output into rows, in DVC's order."""
    rows = []
    for baseline in states:
        rows.append(_row(baseline, "workspace" if baseline.get("rev") == "workspace" else "baseline"))
        for exp_range in baseline.get("experiments") or []:
            for state in (exp_range.get("revs") or [])[:1]:  # the tip, as dvc exp show does
                rows.append(_row(state, "experiment", exp_range.get("executor")))
    return rows


def known_models(rows: Iterable[Row]) -> list[str]:
    """Models named under ``models:`` in some row's params.yaml or with a metrics file."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row.params or {}:
            if key.startswith("models."):
                names[key.split(".")[1]] = None
        names.update(dict.fromkeys(row.metrics))
    return list(names)


def _model_prefixes(model: str, rows: Sequence[Row]) -> tuple[str, ...]:
    """Param paths relevant to ``model``: its own, the shared sections, its dataset's."""
    prefixes = [f"models.{model}", *SHARED]
    for row in rows:
        params = row.params or {}
        dataset = params.get(f"models.{model}.dataset")
        if isinstance(dataset, str):
            prefixes += [f"datasets.{dataset}", f"subsets.{dataset}"]
            source = params.get(f"subsets.{dataset}.source")
            if isinstance(source, str):
                prefixes.append(f"datasets.{source}")
    return tuple(prefixes)


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing_params(rows: Sequence[Row], models: Sequence[str] = ()) -> list[str]:
    """Params whose values are not all equal between the rows with data (a missing key differs).

    With ``models``, only the params relevant to one of them (see the module docstring).
    """
    with_data = [row.params for row in rows if row.params is not None]
    keys = list(dict.fromkeys(key for params in with_data for key in params))
    prefixes = tuple(p for model in models for p in _model_prefixes(model, rows))
    if prefixes:
        keys = [k for k in keys if any(k == p or k.startswith(p + ".") for p in prefixes)]
    return [key for key in keys if len({_key(p[key]) if key in p else None for p in with_data}) > 1]


def metric_columns(rows: Sequence[Row], models: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(column, model, metric)`` for the headline metrics of the chosen models (see module)."""
    if not models:
        with_metrics = dict.fromkeys(m for row in rows for m in row.metrics)
        return [(f"{m}.accuracy", m, "accuracy") for m in with_metrics]
    columns = []
    for model in models:
        present = {k for row in rows for k in row.metrics.get(model, {})}
        for metric in HEADLINE:
            if metric in ALWAYS or metric in present:
                name = metric if len(models) == 1 else f"{model}.{metric}"
                columns.append((name, model, metric))
    return columns


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _param_cell(params: dict[str, Any] | None, key: str) -> Any:
    """A param's value; ``None`` where the row has no such key, ``"null"`` for a YAML null."""
    if params is None or key not in params:
        return None
    return "null" if params[key] is None else params[key]


def build_table(rows: Sequence[Row], models: Sequence[str] = (), sort_by: str | None = None) -> pd.DataFrame:
    """The comparison table as a DataFrame of raw values (``None`` where a row has none).

    Raises :class:`CnnpipeError` for an unknown model, no experiment rows, or an unknown
    ``sort_by`` column. ``sort_by`` names a column (or ``<model>.<metric>``): metrics sort best
    first (by their name: higher accuracy, lower loss), params ascending, missing values last.
    """
    known = known_models(rows)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise CnnpipeError(
            f"unknown model {', '.join(map(repr, unknown))}: the experiments know "
            + (", ".join(known) if known else "no models (no models: in params.yaml)")
        )
    if not any(row.kind == "experiment" for row in rows):
        raise CnnpipeError(
            "no experiments to compare: run some first (`dvc exp run -S models.<model>.<param>=VALUE`), "
            "or pass --all (experiments of every commit) or --rev REV"
        )
    models = list(dict.fromkeys(models))
    params = differing_params(rows, models)
    metrics = metric_columns(rows, models)
    table: dict[str, list[Any]] = {"Experiment": [r.name for r in rows], "rev": [r.rev for r in rows]}
    if any(r.state for r in rows):
        table["State"] = [r.state.capitalize() for r in rows]
    for key in params:
        table[key] = [_param_cell(r.params, key) for r in rows]
    for column, model, metric in metrics:
        table[column] = [_number(r.metrics.get(model, {}).get(metric)) for r in rows]
    df = pd.DataFrame(table, dtype=object)
    df.attrs["metrics"] = [c for c, _, _ in metrics]
    if sort_by:
        df = _sort(df, sort_by, metrics)
    return df


def _sort(df: pd.DataFrame, sort_by: str, metrics: list[tuple[str, str, str]]) -> pd.DataFrame:
    aliases = {f"{model}.{metric}": column for column, model, metric in metrics}
    column = aliases.get(sort_by, sort_by)
    if column not in df.columns or column in ("Experiment", "rev", "State"):
        shown = [c for c in df.columns if c not in ("Experiment", "rev", "State")]
        raise CnnpipeError(f"--sort-by {sort_by!r} is not a column of this table: {', '.join(shown)}")
    metric = column.rsplit(".", 1)[-1]
    descending = column in df.attrs["metrics"] and metric_direction(metric) > 0

    def key(i: int) -> tuple:
        value = df[column].iloc[i]
        number = _number(value)
        if value is None or (number is not None and number != number):  # missing or NaN: last
            return (2, 0.0, "")
        if number is not None:
            return (0, -number if descending else number, "")
        return (1, 0.0, _key(value))

    ordered = df.iloc[sorted(range(len(df)), key=key)].reset_index(drop=True)
    ordered.attrs = dict(df.attrs)
    return ordered


def _format(value: Any, metric: bool) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if metric:
        return f"{value:.4f}"
    return value if isinstance(value, str) else json.dumps(value)


def to_markdown(df: pd.DataFrame) -> str:
    """The table in GitHub markdown: metrics to 4 decimals and right-aligned, ``-`` for none."""
    metrics = set(df.attrs.get("metrics", []))
    cells = pd.DataFrame({c: [_format(v, c in metrics) for v in df[c]] for c in df.columns})
    align = ["right" if c in metrics else "left" for c in df.columns]
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align)


def caption(df: pd.DataFrame, models: Sequence[str]) -> str:
    """The line above the table: whose metrics the columns are, and a note when no param differs."""
    models = list(dict.fromkeys(models))
    if len(models) == 1:
        text = f"{models[0]}: test metrics from metrics/{models[0]}.json"
    elif models:
        text = "test metrics from metrics/<model>.json"
    else:
        text = "test accuracy of every model with metrics (name models for all their metrics)"
    metrics = set(df.attrs.get("metrics", []))
    if not [c for c in df.columns if c not in metrics and c not in ("Experiment", "rev", "State")]:
        text += "; no params differ between these rows"
    return text


def select_experiments(rows: Sequence[Row], names: Sequence[str]) -> list[Row]:
    """The experiment rows named in ``names``, in that order (a name may match several rows)."""
    order = {name: i for i, name in enumerate(dict.fromkeys(names))}
    chosen = [row for row in rows if row.kind == "experiment" and row.name in order]
    missing = [name for name in order if name not in {row.name for row in chosen}]
    if missing:
        raise CnnpipeError(
            f"no experiment named {', '.join(map(repr, missing))} on the compared commit(s): "
            "`dvc exp list` lists them"
        )
    return sorted(chosen, key=lambda row: order[row.name])


def _own_params(row: Row, model: str) -> dict[str, Any] | None:
    """A row's params as its model sees them: ``models.<model>.`` left out, plus the shared ones."""
    if row.params is None:
        return None
    own = f"models.{model}."
    shared = [p for p in _model_prefixes(model, [row]) if p != f"models.{model}"]
    view = {k.removeprefix(own): v for k, v in row.params.items() if k.startswith(own)}
    view.update({k: v for k, v in row.params.items() if any(k == p or k.startswith(p + ".") for p in shared)})
    return view


def variants_table(rows: Sequence[Row], variants: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The experiments of ``variants`` (``(experiment name, model)`` pairs), one row each, in order.

    When every variant is of one model this is :func:`build_table` for that model on those rows
    (``cnnpipe compare MODEL --exp NAME ...``). When they are of several models each row shows
    its own: a ``model`` column, the params that differ between the rows as each row's model
    sees them (``arch.hidden`` for ``models.<model>.arch.hidden``, shared sections in full) and
    the headline metrics of that model's metrics file.
    """
    model_of = dict(variants)
    chosen = select_experiments(rows, list(model_of))
    models = list(dict.fromkeys(model_of.values()))
    if len(models) == 1:
        return build_table(chosen, models)
    views = [_own_params(row, model_of[row.name]) for row in chosen]
    with_data = [v for v in views if v is not None]
    keys = list(dict.fromkeys(k for v in with_data for k in v))
    keys = [k for k in keys if len({_key(v[k]) if k in v else None for v in with_data}) > 1]
    own = [row.metrics.get(model_of[row.name], {}) for row in chosen]
    metrics = [m for m in HEADLINE if m in ALWAYS or any(m in o for o in own)]
    table: dict[str, list[Any]] = {"Experiment": [r.name for r in chosen], "rev": [r.rev for r in chosen]}
    if any(r.state for r in chosen):
        table["State"] = [r.state.capitalize() for r in chosen]
    table["model"] = [model_of[r.name] for r in chosen]
    for key in keys:
        table[key] = [_param_cell(v, key) for v in views]
    for metric in metrics:
        table[metric] = [_number(o.get(metric)) for o in own]
    df = pd.DataFrame(table, dtype=object)
    df.attrs["metrics"] = metrics
    return df


def caption_variants(df: pd.DataFrame, variants: Sequence[tuple[str, str]]) -> str:
    """The line above a :func:`variants_table`."""
    models = list(dict.fromkeys(model for _, model in variants))
    if len(models) == 1:
        return caption(df, models)
    return (
        "one model per row: its params without the models.<model>. prefix, "
        "its test metrics from metrics/<model>.json"
    )


def compare(
    models: Sequence[str] = (),
    *,
    revs: Sequence[str] = (),
    all_commits: bool = False,
    sort_by: str | None = None,
    experiments: Sequence[str] = (),
    cwd: str | None = None,
) -> str:
    """The caption and markdown table of ``cnnpipe compare`` for the repository at ``cwd``.

    ``experiments`` keeps only the experiment rows of those names, in that order.
    """
    rows = rows_from_exp_show(exp_show(revs, all_commits, cwd=cwd))
    if experiments:
        rows = select_experiments(rows, experiments)
    df = build_table(rows, models, sort_by)
    return f"{caption(df, models)}\n\n{to_markdown(df)}"
