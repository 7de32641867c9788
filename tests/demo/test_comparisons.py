"""End to end: `make compare-<name>` runs on the sample mirror and prints its table.

Two comparisons run here, one of a single model's variants (mnist) and one of two models
(cifar2): every comparison goes through the same queue, run and table code, and the variants'
own settings are checked in-process, each with one training step, in tests/test_seeds.py.

One workspace for the whole module, with the sample data prepared once: the repository
`make demo` ran in when `.ci/run` provides it (``CNNPIPE_DEMO_REPO``, see tests/helpers/demo.py),
otherwise a fresh copy that prepares only the two datasets these comparisons train on. Its state
is committed, as the queued experiments start from a commit. Each comparison then runs as
documented (`SAMPLE=1`, the demo's params), with one epoch per variant.
"""

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from cnnpipe.seeds import COMPARISONS
from tests.helpers.worktree import (
    clone_env,
    commit_copy,
    copy_demo_repo,
    copy_worktree,
    link_outputs_from_cache,
    run,
)

pytestmark = pytest.mark.demo

END_TO_END = ["mnist", "cifar2"]  # a comparison of one model's variants and one of two models
DATASETS = ["mnist", "cifar10"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    repo = tmp_path_factory.mktemp("comparisons")
    env = clone_env(repo)
    done = os.environ.get("CNNPIPE_DEMO_REPO")
    if done:
        copy_demo_repo(Path(done), repo)
        mirror = yaml.safe_load((repo / "params.yaml").read_text())["data"]["mirror"]
        assert mirror, "the demo's workspace params.yaml names no data.mirror"
    else:
        copy_worktree(repo)
        commit_copy(repo, env)
        mirror = tmp_path_factory.mktemp("mirror") / "sample_mirror"
        run(["cnnpipe", "sample", mirror, *[a for d in DATASETS for a in ("--only", d)]], repo, env)
        sets = [
            f"data.mirror={mirror}",
            *(f"datasets.{d}.valid_first=200" for d in ("mnist", "cifar10")),
        ]
        stats = [f"stats@{d}" for d in ("mnist", "cifar2")]
        run(["dvc", "exp", "run", *[a for s in sets for a in ("-S", s)], *stats], repo, env)
    link_outputs_from_cache(repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "prepared sample data", "--allow-empty"], repo, env)
    venv = Path(sys.executable).parent.parent
    make = ["make", f"VENV={venv}", "NO_INSTALL=1", "SAMPLE=1", f"SAMPLE_MIRROR={mirror}", "DEMO_EPOCHS=1"]
    return repo, env, make


def _table(output: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The header and the rows (by experiment name) of the markdown table in ``output``."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert len(lines) >= 3, output[-3000:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header = cells[0]
    rows = [dict(zip(header, row, strict=True)) for row in cells[2:]]
    names = [row["Experiment"] for row in rows]
    assert len(names) == len(set(names)), names
    return header, {row["Experiment"]: row for row in rows}


def _number(cell: str) -> float:
    assert re.fullmatch(r"-?\d+\.\d{4}", cell), cell
    return float(cell)


@pytest.mark.slow
@pytest.mark.parametrize("name", END_TO_END)
def test_each_comparison_prints_one_row_per_variant_with_metrics(workspace, name):
    repo, env, make = workspace
    comparison = COMPARISONS[name]
    output = run([*make, f"compare-{name}"], repo, env)
    assert comparison.title in output and f"source: {comparison.reference}" in output
    header, rows = _table(output)
    assert list(rows) == [v.name for v in comparison.variants]  # one row each, in variant order
    for variant in comparison.variants:
        row = rows[variant.name]
        assert 0 <= _number(row["accuracy"]) <= 1 and _number(row["loss"]) >= 0, row
        _number(row["macro_f1"])
        assert re.fullmatch(r"[0-9a-f]{7}", row["rev"]) and "State" not in row, row
    if len(comparison.models) > 1:
        assert [rows[v.name]["model"] for v in comparison.variants] == [v.model for v in comparison.variants]
        assert not [h for h in header if h.startswith("models.")], header
    else:
        (model,) = comparison.models
        changed = {o.split("=")[0] for v in comparison.variants for o in v.overrides}
        assert changed <= set(header), header  # the settings the variants differ in are columns
        assert not [h for h in header if h.startswith("models.") and not h.startswith(f"models.{model}.")]


@pytest.mark.slow
def test_a_second_run_replaces_the_experiments_of_the_same_names(workspace):
    """DVC refuses a second experiment of one name on one commit: a rerun replaces the first.

    Runs after the comparisons above, so the first rerun replaces finished experiments and the
    second the queued ones.
    """
    repo, env, make = workspace
    variants = [v.name for v in COMPARISONS["mnist"].variants]
    finished = run([*make, "compare-mnist", "COMPARE_ARGS=--queue-only"], repo, env)
    assert f"replacing this commit's earlier experiment(s) {', '.join(variants)}" in finished
    names = run(["dvc", "exp", "list", "--name-only"], repo, env).split()
    assert not [n for n in names if n in variants]  # the finished ones are gone
    queued = run([*make, "compare-mnist", "COMPARE_ARGS=--queue-only"], repo, env)
    assert f"replacing this commit's earlier experiment(s) {', '.join(variants)}" in queued
    assert "queued mnist-dropout, mnist-no-dropout" in queued
    status = run(["dvc", "queue", "status"], repo, env)
    queued_names = [line.split()[1] for line in status.splitlines() if line.rstrip().endswith("Queued")]
    assert sorted(queued_names) == sorted(variants), status  # the first queue-only pair is gone
    run(["dvc", "queue", "remove", "--queued"], repo, env)
    assert " Queued" not in run(["dvc", "queue", "status"], repo, env)
