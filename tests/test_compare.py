"""`cnnpipe compare` and the README's `dvc exp show` recipes.

Unit tests build the table from records shaped as `dvc exp show --json` prints them. The DVC
tests share one repository (module fixture): a git + DVC repo whose only stage is a tiny script
writing each model's metrics from its dropout, with two experiments on mnist_cnn's dropout.
"""

import json
import re
import sys
from pathlib import Path

import pytest

from cnnpipe.cli import main
from cnnpipe.compare import Row, build_table, caption, rows_from_exp_show, to_markdown
from cnnpipe.errors import CnnpipeError
from tests.helpers.worktree import ROOT, clone_env, run

PARAMS = {
    "data": {"mirror": None},
    "datasets": {"mnist": {"valid_first": 10}, "cifar10": {"valid_first": 5}},
    "subsets": {"cifar2": {"source": "cifar10", "classes": ["airplane", "bird"]}},
    "run": {"device": "cpu", "max_epochs": 2},
    "evaluate": {"batch_size": 256},
    "models": {
        "mnist_cnn": {"dataset": "mnist", "arch": {"dropout": 0.5, "hidden": [128]}, "train": {"lr": 0.001}},
        "cifar2_fc": {"dataset": "cifar2", "arch": {"dropout": 0.2}, "train": {"lr": 0.01}},
    },
}


def _metrics(dropout: float, binary: bool = False) -> dict:
    """Test metrics as the stand-in stage writes them (numbers only)."""
    test = {"accuracy": 0.9 - dropout / 10, "loss": 0.3 + dropout, "macro_f1": 0.88 - dropout / 10}
    return {**test, "n_test": 100, **({"roc_auc": 0.95 - dropout / 10} if binary else {})}


def _state(rev: str, name: str | None, edits: dict | None = None, *, metrics: bool = True) -> dict:
    """One ExpState of `dvc exp show --json`; ``edits`` maps dotted params to new values."""
    params = json.loads(json.dumps(PARAMS))
    for path, value in (edits or {}).items():
        *parents, leaf = path.split(".")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    files = {}
    if metrics:
        for model, spec in params["models"].items():
            dropout = spec["arch"]["dropout"]
            files[f"metrics/{model}.json"] = {"data": _metrics(dropout, binary=model == "cifar2_fc")}
            files[f"dvclive/{model}/metrics.json"] = {
                "data": {"step": 1, "train": {"loss": 0.1, "acc": 0.99}, "val": {"loss": 0.2, "acc": 0.9}}
            }
    data = {"rev": rev, "timestamp": None, "params": {"params.yaml": {"data": params}}, "metrics": files}
    return {"rev": rev, "name": name, "data": {**data, "deps": {}, "outs": {}, "meta": {}}, "error": None}


def _exp(rev: str, name: str, edits: dict, *, state: str | None = None, metrics: bool = True) -> dict:
    executor = {"state": state, "name": "dvc-task", "local": None} if state else None
    return {"revs": [_state(rev, name, edits, metrics=metrics)], "executor": executor, "name": name}


BASE = "a" * 40
DROP03, DROP0 = "b" * 40, "c" * 40
DROPOUT = "models.mnist_cnn.arch.dropout"


def _show(*experiments: dict, workspace_edits: dict | None = None) -> list[dict]:
    """`dvc exp show --json`: the workspace, then the baseline ``main`` with ``experiments``."""
    workspace = {**_state("workspace", None, workspace_edits), "experiments": None}
    return [workspace, {**_state(BASE, "main"), "experiments": list(experiments)}]


def _two_dropout_experiments() -> list[Row]:
    return rows_from_exp_show(
        _show(
            _exp(DROP0, "drop0", {DROPOUT: 0.0}),
            _exp(DROP03, "drop03", {DROPOUT: 0.3}),
            workspace_edits={DROPOUT: 0.0},
        )
    )


def _cells(markdown: str) -> list[list[str]]:
    """The header and body rows of a markdown table (its separator line left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for i, line in enumerate(lines) if i != 1]


# --- the table, from records -----------------------------------------------------------------


def test_one_model_two_experiments_differing_in_dropout():
    df = build_table(_two_dropout_experiments(), ["mnist_cnn"])
    assert list(df.columns) == ["Experiment", "rev", DROPOUT, "accuracy", "loss", "macro_f1"]
    assert list(df["Experiment"]) == ["workspace", "main", "drop0", "drop03"]
    assert list(df["rev"]) == ["", "aaaaaaa", "ccccccc", "bbbbbbb"]
    assert list(df[DROPOUT]) == [0.0, 0.5, 0.0, 0.3]
    assert list(df["accuracy"]) == pytest.approx([0.9, 0.85, 0.9, 0.87])
    assert list(df["loss"]) == pytest.approx([0.3, 0.8, 0.3, 0.6])
    assert "roc_auc" not in df.columns  # mnist_cnn is not binary
    assert caption(df, ["mnist_cnn"]) == "mnist_cnn: test metrics from metrics/mnist_cnn.json"
    cells = _cells(to_markdown(df))
    assert cells[0] == list(df.columns) and len(cells[0]) <= 10
    assert cells[4] == ["drop03", "bbbbbbb", "0.3", "0.8700", "0.6000", "0.8500"]


def test_without_models_every_param_that_differs_and_each_models_accuracy():
    rows = rows_from_exp_show(_show(_exp(DROP03, "lr", {"models.cifar2_fc.train.lr": 0.1})))
    df = build_table(rows)
    assert list(df.columns) == [
        "Experiment",
        "rev",
        "models.cifar2_fc.train.lr",
        *_acc("mnist_cnn", "cifar2_fc"),
    ]
    assert caption(df, []).startswith("test accuracy of every model")


def _acc(*models: str) -> list[str]:
    return [f"{m}.accuracy" for m in models]


def test_chosen_models_keep_their_params_and_the_shared_ones_only():
    edits = {
        DROPOUT: 0.1,
        "models.cifar2_fc.train.lr": 0.1,
        "run.device": "cuda",
        "datasets.mnist.valid_first": 20,
        "datasets.cifar10.valid_first": 50,
        "subsets.cifar2.classes": ["cat", "dog"],
    }
    rows = rows_from_exp_show(_show(_exp(DROP03, "many", edits)))
    mnist = build_table(rows, ["mnist_cnn"])
    assert list(mnist.columns)[2:5] == ["datasets.mnist.valid_first", "run.device", DROPOUT]
    assert len(mnist.columns) == 8
    cifar2 = build_table(rows, ["cifar2_fc"])  # a subset: its own entry and its source's
    params = [
        "datasets.cifar10.valid_first",
        "subsets.cifar2.classes",
        "run.device",
        "models.cifar2_fc.train.lr",
    ]
    assert list(cifar2.columns) == ["Experiment", "rev", *params, "accuracy", "loss", "macro_f1", "roc_auc"]
    assert _cells(to_markdown(cifar2))[3][3] == '["cat", "dog"]'
    both = build_table(rows, ["mnist_cnn", "cifar2_fc"])
    assert {c for c in both.columns if "." in c and not c.startswith(("mnist_cnn.", "cifar2_fc."))} == set(
        edits
    )
    assert both.columns[-4:].tolist() == [
        f"cifar2_fc.{m}" for m in ("accuracy", "loss", "macro_f1", "roc_auc")
    ]


def test_a_param_missing_from_one_row_differs():
    rows = rows_from_exp_show(_show(_exp(DROP03, "new", {"models.mnist_cnn.train.momentum": 0.9})))
    df = build_table(rows, ["mnist_cnn"])
    assert list(df["models.mnist_cnn.train.momentum"]) == [None, None, 0.9]
    assert _cells(to_markdown(df))[1][2] == "-"


def test_a_null_param_is_shown_as_null():
    rows = rows_from_exp_show(_show(_exp(DROP03, "mirror", {"data.mirror": "data/sample_mirror"})))
    df = build_table(rows, ["mnist_cnn"])
    assert [r[2] for r in _cells(to_markdown(df))] == ["data.mirror", "null", "null", "data/sample_mirror"]


def test_no_param_differs_is_said_in_the_caption():
    df = build_table(rows_from_exp_show(_show(_exp(DROP03, "same", {}))), ["mnist_cnn"])
    assert list(df.columns) == ["Experiment", "rev", "accuracy", "loss", "macro_f1"]
    assert caption(df, ["mnist_cnn"]).endswith("no params differ between these rows")


def test_queued_experiment_gets_a_state_and_no_metrics():
    rows = rows_from_exp_show(
        _show(
            _exp(DROP03, "drop03", {DROPOUT: 0.3}),
            _exp(DROP0, "q", {DROPOUT: 0.1}, state="queued", metrics=False),
        )
    )
    df = build_table(rows, ["mnist_cnn"])
    assert list(df.columns[:4]) == ["Experiment", "rev", "State", DROPOUT]
    assert list(df["State"]) == ["", "", "", "Queued"]
    assert _cells(to_markdown(df))[4] == ["q", "ccccccc", "Queued", "0.1", "-", "-", "-"]


def test_a_row_dvc_could_not_read_is_shown_but_not_compared():
    show = _show(_exp(DROP03, "drop03", {DROPOUT: 0.3}))
    show[1]["experiments"].append(
        {"revs": [{"rev": DROP0, "name": "bad", "data": None, "error": {"msg": "x"}}]}
    )
    df = build_table(rows_from_exp_show(show), ["mnist_cnn"])
    assert list(df["Experiment"]) == ["workspace", "main", "drop03", "bad"]
    assert list(df.columns) == ["Experiment", "rev", DROPOUT, "accuracy", "loss", "macro_f1"]


def test_sort_by_metric_best_first_param_ascending_missing_last():
    rows = _two_dropout_experiments()
    queued = {**rows[1].params, DROPOUT: 0.2}
    rows.append(Row(name="q", rev="ddddddd", kind="experiment", state="queued", params=queued))
    by_acc = build_table(rows, ["mnist_cnn"], sort_by="accuracy")
    assert list(by_acc["Experiment"]) == ["workspace", "drop0", "drop03", "main", "q"]
    assert list(build_table(rows, ["mnist_cnn"], sort_by="mnist_cnn.loss")["Experiment"])[-2:] == [
        "main",
        "q",
    ]
    assert list(build_table(rows, ["mnist_cnn"], sort_by=DROPOUT)[DROPOUT]) == [0.0, 0.0, 0.2, 0.3, 0.5]
    with pytest.raises(CnnpipeError, match=re.escape(f"not a column of this table: {DROPOUT}, accuracy")):
        build_table(rows, ["mnist_cnn"], sort_by="val.acc")


def test_unknown_model_and_no_experiments_are_errors():
    with pytest.raises(
        CnnpipeError, match="unknown model 'lenet': the experiments know mnist_cnn, cifar2_fc"
    ):
        build_table(_two_dropout_experiments(), ["lenet"])
    with pytest.raises(CnnpipeError, match="no experiments to compare"):
        build_table(rows_from_exp_show(_show()), ["mnist_cnn"])


def test_cli_prints_the_table_and_one_error_line(monkeypatch, capsys):
    monkeypatch.setattr("cnnpipe.compare.exp_show", lambda *a, **k: _show(_exp(DROP03, "d", {DROPOUT: 0.3})))
    main(["compare", "mnist_cnn", "--sort-by", "accuracy"])
    out = capsys.readouterr().out
    assert out.startswith("mnist_cnn: test metrics") and _cells(out)[1][0] == "d"
    with pytest.raises(SystemExit) as exc:
        main(["compare", "lenet"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("error: unknown model 'lenet'") and err.count("\n") == 1


def test_outside_a_dvc_repository_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    with pytest.raises(SystemExit) as exc:
        main(["compare"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.count("\n") == 1
    assert err.startswith("error: `dvc exp show` failed: you are not inside of a DVC repository")


# --- a real DVC repository with two experiments ---------------------------------------------

WRITE_METRICS = '''\
"""Stand-in for train + evaluate: each model's metrics follow its dropout."""

import json
from pathlib import Path

import yaml

for name, model in yaml.safe_load(Path("params.yaml").read_text())["models"].items():
    d = model["arch"]["dropout"]
    test = {"accuracy": 0.9 - d / 10, "loss": 0.3 + d, "macro_f1": 0.88 - d / 10, "n_test": 100}
    if name == "cifar2_fc":
        test["roc_auc"] = 0.95 - d / 10
    live = {"step": 1, "train": {"loss": 0.2 + d, "acc": 0.95 - d / 10}, "val": {"loss": 0.25 + d}}
    for path, data in ((f"metrics/{name}.json", test), (f"dvclive/{name}/metrics.json", live)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data))
'''

DVC_YAML = """\
stages:
  train:
    cmd: python write_metrics.py
    deps: [write_metrics.py]
    params: [models, run.device]
    metrics:
"""


@pytest.fixture(scope="module")
def exp_repo(tmp_path_factory):
    """A committed baseline (dropout 0.5) and experiments drop03, then drop0 (the workspace)."""
    import yaml

    repo = tmp_path_factory.mktemp("exp_repo")
    env = clone_env(ROOT)  # this venv first on PATH, this checkout's src imported, git identity
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (repo / "write_metrics.py").write_text(WRITE_METRICS)
    files = [
        f"{d}/{m}{f}"
        for m in PARAMS["models"]
        for d, f in (("metrics", ".json"), ("dvclive", "/metrics.json"))
    ]
    (repo / "dvc.yaml").write_text(DVC_YAML + "".join(f"      - {f}: {{cache: false}}\n" for f in files))
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run([*dvc, "init", "-q"], repo, env)
    run([*dvc, "repro", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    no_experiments = run(_cnnpipe("compare", "mnist_cnn"), repo, env, check=False)
    for value, name in (("0.3", "drop03"), ("0.0", "drop0")):
        run([*dvc, "exp", "run", "-q", "-S", f"{DROPOUT}={value}", "-n", name], repo, env)
    return repo, env, no_experiments


def _cnnpipe(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("cnnpipe")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "cnnpipe.cli", *args]


def _dvc_show(exp_repo, *args: str) -> str:
    """`dvc exp show ARGS` as a user runs it (--no-pager would fit the table to 80 columns)."""
    repo, env, _ = exp_repo
    return run([sys.executable, "-m", "dvc", "exp", "show", *args], repo, env)


def test_compare_one_model_on_real_experiments(exp_repo):
    repo, env, _ = exp_repo
    out = run(_cnnpipe("compare", "mnist_cnn"), repo, env)
    header, *rows = _cells(out)
    assert out.startswith("mnist_cnn: test metrics from metrics/mnist_cnn.json\n")
    assert header == ["Experiment", "rev", DROPOUT, "accuracy", "loss", "macro_f1"]
    assert [r[0] for r in rows] == ["workspace", "main", "drop0", "drop03"]  # newest experiment first
    assert all(len(r[1]) == 7 for r in rows[1:])
    assert [r[2] for r in rows] == ["0.0", "0.5", "0.0", "0.3"]
    assert [r[3] for r in rows] == ["0.9000", "0.8500", "0.9000", "0.8700"]


def test_compare_every_model_on_real_experiments(exp_repo):
    repo, env, _ = exp_repo
    header, *rows = _cells(run(_cnnpipe("compare"), repo, env))
    assert header == ["Experiment", "rev", DROPOUT, "mnist_cnn.accuracy", "cifar2_fc.accuracy"]
    assert [r[4] for r in rows] == ["0.8800"] * 4


def test_compare_before_any_experiment_is_one_error_line(exp_repo):
    _, _, out = exp_repo
    assert out.startswith("error: no experiments to compare") and out.count("\n") == 1


# --- README recipes for plain `dvc exp show` -------------------------------------------------


def test_recipe_only_changed(exp_repo):
    out = _dvc_show(exp_repo, "--only-changed")
    assert DROPOUT in out and "metrics/mnist_cnn.json:accuracy" in out
    for unchanged in (
        "models.mnist_cnn.train.lr",
        "run.device",
        "metrics/cifar2_fc.json:accuracy",
        "roc_auc",
    ):
        assert unchanged not in out


def test_recipe_drop_keep(exp_repo):
    keep = f"Experiment|{DROPOUT}|metrics/mnist_cnn.json:accuracy"
    lines = _dvc_show(exp_repo, "--drop", ".*", "--keep", keep).splitlines()
    assert lines[1].split() == ["Experiment", "metrics/mnist_cnn.json:accuracy", DROPOUT]
    assert [line.split()[-2:] for line in lines[3:7]] == [
        ["0.9", "0"],
        ["0.85", "0.5"],
        ["0.9", "0"],
        ["0.87", "0.3"],
    ]


def test_recipe_sort_by(exp_repo):
    out = _dvc_show(exp_repo, "--sort-by", "metrics/mnist_cnn.json:accuracy")
    assert out.index("[drop03]") < out.index("[drop0]")  # ascending: 0.87 before 0.9 (default: newest first)


def test_recipe_markdown(exp_repo):
    out = _dvc_show(exp_repo, "--md", "--only-changed")
    lines = out.strip().splitlines()
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert set(lines[1]) <= {"|", "-"}
    header, *rows = _cells(out)
    assert header[0] == "Experiment" and DROPOUT in header
    assert [r[header.index(DROPOUT)] for r in rows] == ["0", "0.5", "0", "0.3"]
