"""`cnnpipe check-metrics --baseline REV`: metrics compared with a git revision through DVC.

Each test builds a git + DVC repository holding the project's own dvc.yaml and params.yaml (so
the metrics files are the ones the evaluate stages declare), commits metrics files as the
baseline, changes them in the workspace and runs the command as CI does, in a subprocess.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnpipe.errors import ParamError
from cnnpipe.gate import BaselineCheck, metric_direction, parse_tolerances

ROOT = Path(__file__).resolve().parents[1]


def _metrics(accuracy, loss, macro_f1, model="mnist_cnn"):
    """A metrics file as the evaluate stage writes it (top-level scores and per-class values)."""
    return {
        "model": model,
        "dataset": "mnist",
        "split": "test",
        "accuracy": accuracy,
        "loss": loss,
        "macro_f1": macro_f1,
        "n_test": 300,
        "per_class": {
            "0 - zero": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 30},
            "1 - one": {"precision": 0.97, "recall": 0.9, "f1": 0.93, "support": 30},
        },
    }


def _git(repo, env, *args):
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture
def env():
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }


@pytest.fixture
def repo(tmp_path, env):
    """A repository whose HEAD commits mnist_cnn and cifar_net metrics (the baseline)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, env=env)
    write(repo, "mnist_cnn", _metrics(0.90, 0.30, 0.89))
    write(repo, "cifar_net", _metrics(0.55, 1.30, 0.52, model="cifar_net"))
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-qm", "baseline")
    return repo


def write(repo, model, metrics):
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics" / f"{model}.json").write_text(json.dumps(metrics, indent=2))


def check(repo, env, *args):
    return subprocess.run(
        [sys.executable, "-m", "cnnpipe.cli", "check-metrics", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )


def row(out, model, metric):
    """The baseline table's row of one model/metric (the last table printed), split into cells."""
    rows = [
        cells
        for cells in ([c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines())
        if cells[:2] == [model, metric]
    ]
    assert rows, f"no row for {model}.{metric} in:\n{out}"
    return rows[-1]


def test_unchanged_metrics_pass(repo, env):
    result = check(repo, env, "--baseline", "HEAD")
    assert result.returncode == 0, result.stderr
    assert "| model | metric | baseline (HEAD) | current | change | tolerance | verdict |" in result.stdout
    for model in ("mnist_cnn", "cifar_net"):
        for metric in ("accuracy", "loss", "macro_f1"):
            assert row(result.stdout, model, metric)[-1] == "ok"
    # per-class values, counts and the dvclive training curves are not gated
    assert "n_test" not in result.stdout and "per_class" not in result.stdout


def test_accuracy_drop_past_the_tolerance_fails_and_names_model_and_metric(repo, env):
    write(repo, "mnist_cnn", _metrics(0.85, 0.30, 0.885))  # accuracy -0.05, macro F1 -0.005
    result = check(repo, env, "--baseline", "HEAD", "--tolerance", "0.02")
    assert result.returncode == 1
    assert row(result.stdout, "mnist_cnn", "accuracy") == [
        "mnist_cnn", "accuracy", "0.9000", "0.8500", "-0.0500", "0.02 (higher is better)", "**regressed**",
    ]  # fmt: skip
    assert row(result.stdout, "mnist_cnn", "macro_f1")[-1] == "ok"  # within the tolerance
    assert row(result.stdout, "cifar_net", "accuracy")[-1] == "ok"
    assert result.stderr == "error: 1 metric(s) regressed against HEAD: mnist_cnn.accuracy (regressed)\n"


def test_per_metric_tolerance_and_direction(repo, env):
    # accuracy -0.05 is allowed by its own tolerance; loss going up by 0.2 is a regression,
    # macro F1 going up is an improvement
    write(repo, "mnist_cnn", _metrics(0.85, 0.50, 0.95))
    result = check(repo, env, "--baseline", "HEAD", "--tolerance", "accuracy=0.1", "--tolerance", "0.05")
    assert result.returncode == 1
    assert row(result.stdout, "mnist_cnn", "accuracy")[-2:] == ["0.1 (higher is better)", "ok"]
    loss = row(result.stdout, "mnist_cnn", "loss")
    assert loss[-3:] == ["+0.2000", "0.05 (lower is better)", "**regressed**"]
    assert row(result.stdout, "mnist_cnn", "macro_f1")[-1] == "improved"
    assert "mnist_cnn.loss (regressed)" in result.stderr and "accuracy" not in result.stderr
    # a lower loss is an improvement
    write(repo, "mnist_cnn", _metrics(0.90, 0.10, 0.89))
    result = check(repo, env, "--baseline", "HEAD")
    assert result.returncode == 0 and row(result.stdout, "mnist_cnn", "loss")[-1] == "improved"


def test_baseline_at_an_older_commit_and_floors_together(repo, env):
    write(repo, "mnist_cnn", _metrics(0.95, 0.20, 0.94))
    _git(repo, env, "commit", "-qam", "better mnist")
    (repo / "floors.yaml").write_text("mnist_cnn: {accuracy: 0.9}\ncifar_net: {accuracy: 0.5}\n")
    result = check(repo, env, "--floors", "floors.yaml", "--baseline", "HEAD~1")
    assert result.returncode == 0, result.stderr
    assert "| mnist_cnn | accuracy | 0.9500 | 0.9000 | ok |" in result.stdout  # the floors table
    assert row(result.stdout, "mnist_cnn", "accuracy")[2:5] == ["0.9000", "0.9500", "+0.0500"]
    # a drop below the floor and past the tolerance: both gates fail, in one error line
    write(repo, "mnist_cnn", _metrics(0.80, 0.20, 0.94))
    result = check(repo, env, "--floors", "floors.yaml", "--baseline", "HEAD")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "below their floor in floors.yaml: mnist_cnn.accuracy" in result.stderr
    assert "regressed against HEAD: mnist_cnn.accuracy (regressed)" in result.stderr


def test_models_missing_at_the_baseline_are_reported_not_silently_passed(repo, env):
    write(repo, "sea_cnn", _metrics(0.7, 0.8, 0.6, model="sea_cnn"))
    result = check(repo, env, "--baseline", "HEAD")
    assert result.returncode == 0, result.stderr
    assert row(result.stdout, "sea_cnn", "accuracy")[2:] == [
        "—", "0.7000", "—", "0.01 (higher is better)", "new (no baseline)",
    ]  # fmt: skip
    assert "No baseline metrics at HEAD for: sea_cnn (not compared)." in result.stdout
    # a baseline commit without any metrics: said in bold under the table
    _git(repo, env, "rm", "-q", "--cached", "metrics/mnist_cnn.json", "metrics/cifar_net.json")
    _git(repo, env, "commit", "-qm", "no metrics")
    result = check(repo, env, "--baseline", "HEAD", "--floors", ROOT / "metrics/floors.sample.yaml")
    assert "**No baseline metrics at HEAD**" in result.stdout
    assert "only the floors in" in result.stdout


def test_a_model_gone_from_the_workspace_fails(repo, env):
    (repo / "metrics" / "cifar_net.json").unlink()
    result = check(repo, env, "--baseline", "HEAD")
    assert result.returncode == 1
    assert row(result.stdout, "cifar_net", "accuracy")[2:4] == ["0.5500", "—"]
    assert row(result.stdout, "cifar_net", "accuracy")[-1] == "**missing**"
    assert "cifar_net.accuracy (missing)" in result.stderr


def test_relative_tolerance_scales_with_the_baseline_value(repo, env):
    # loss 1.30 -> 1.50 (+0.20) passes 0.05 + 20 % of 1.30 = 0.31; loss 0.30 -> 0.45 (+0.15)
    # fails 0.05 + 20 % of 0.30 = 0.11: the same setting is loose for a large loss, tight for a small one
    write(repo, "cifar_net", _metrics(0.55, 1.50, 0.52, model="cifar_net"))
    write(repo, "mnist_cnn", _metrics(0.90, 0.45, 0.89))
    result = check(repo, env, "--baseline", "HEAD", "--tolerance", "loss=0.05", "--rel-tolerance", "loss=0.2")
    assert result.returncode == 1
    assert row(result.stdout, "cifar_net", "loss")[-2:] == ["0.05 + 20 % (lower is better)", "ok"]
    assert row(result.stdout, "mnist_cnn", "loss")[-2:] == ["0.05 + 20 % (lower is better)", "**regressed**"]
    assert row(result.stdout, "mnist_cnn", "accuracy")[-2] == "0.01 (higher is better)"  # no relative part
    assert result.stderr == "error: 1 metric(s) regressed against HEAD: mnist_cnn.loss (regressed)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "no-such-branch"], "error: unknown baseline revision 'no-such-branch'"),
        (["--baseline", "HEAD", "--tolerance", "accuracy=-1"], "error: --tolerance 'accuracy=-1'"),
        (["--baseline", "HEAD", "--tolerance", "acuracy=0.1"], "'acuracy' is not a gated metric"),
        (["--baseline", "HEAD", "--rel-tolerance", "loss=-1"], "error: --rel-tolerance 'loss=-1'"),
        ([], "error: check-metrics needs --floors FILE, --baseline REV or both"),
    ],
)
def test_bad_input_is_a_one_line_error(repo, env, args, message):
    result = check(repo, env, *args)
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_metric_direction_by_name():
    assert [metric_direction(m) for m in ("accuracy", "macro_f1", "roc_auc", "top5_accuracy")] == [1] * 4
    assert [metric_direction(m) for m in ("loss", "val_loss", "top1_error")] == [-1] * 3
    assert [metric_direction(m) for m in ("n_test", "model", "support")] == [0] * 3


def test_tolerances_and_verdicts():
    assert parse_tolerances(["0.05", "loss=0.1"]) == {"*": 0.05, "loss": 0.1}
    with pytest.raises(ParamError):
        parse_tolerances(["lots"])
    # a change of exactly the tolerance passes; a hair more fails
    assert BaselineCheck("m", "accuracy", 0.9, 0.88, 0.02).verdict == "ok"
    assert BaselineCheck("m", "accuracy", 0.9, 0.8799, 0.02).verdict == "regressed"
    assert BaselineCheck("m", "loss", 0.3, 0.32, 0.02).verdict == "ok"
    assert BaselineCheck("m", "loss", 0.3, 0.3201, 0.02).verdict == "regressed"
    # a relative part adds a fraction of the baseline's size: 0.05 + 1 % of 5554 = 55.59
    assert parse_tolerances(["loss=0.01"], 0.0, flag="--rel-tolerance") == {"*": 0.0, "loss": 0.01}
    assert BaselineCheck("m", "loss", 5554.0, 5609.5, 0.05, 0.01).verdict == "ok"
    assert BaselineCheck("m", "loss", 5554.0, 5609.7, 0.05, 0.01).verdict == "regressed"
    assert BaselineCheck("m", "loss", 5554.0, 5554.1, 0.05).verdict == "regressed"
