"""End to end: `make demo` in a fresh copy of the repository runs the whole pipeline offline.

This is the README's first command, run as a user would (minus creating the virtualenv,
which the test reuses). The tests after it use a copy of that repository, in file order: a
second `dvc repro` is a no-op, metrics, plots and summaries show, a missing path is one error
line, CPU runs are reproducible, a SIGKILLed train stage resumes, and predict and lr-find work
on the trained models. tests/demo/test_experiments.py runs the README's experiment recipes in another
copy. Where the demo comes from (CI's run, or one per session): tests/helpers/demo.py.
"""

import json
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers.worktree import run

pytestmark = pytest.mark.demo

DATASETS = [
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeba",
    "horse_or_human",
    "rps",
    "cats_vs_dogs",
    "sea",
    "cifar2",
    "celeba_smile",
]
TRANSFER_MODELS = [
    "inception_horses", "inception_rps", "inception_cats_dogs", "squeezenet_horses", "squeezenet_rps",
    "resnet18_horses", "resnet18_rps", "resnet18_sea",
]  # fmt: skip
MODELS = [
    "fashion_cnn", "fashion_dnn", "mnist_cnn", "smile_cnn", "horses_cnn", "horses_cnn_aug",
    "cifar2_fc", "cifar2_fc_deep", "cifar_net", "sea_cnn", *TRANSFER_MODELS,
]  # fmt: skip


#: The gate .ci/run holds the demo to. CPU training is bitwise reproducible on one machine
#: (test_two_cpu_runs_give_identical_metrics), not across CPU models: oneDNN and MKL choose their
#: kernels by instruction set and cache sizes, so float rounding, and after some epochs the
#: metrics, differ a little (docs/remotes-and-ci.md).
REFERENCE_TOLERANCES = ["--tolerance", "0.02", "--tolerance", "loss=0.05", "--rel-tolerance", "loss=0.01"]


@pytest.mark.slow
def test_demo_metrics_match_the_committed_reference(demo_repo):
    """The committed metrics/*.json are the sample-mirror reference: the CPU demo reproduces them
    within the gate's tolerances, the ones .ci/run uses."""
    repo, env, _ = demo_repo
    assert " ".join(REFERENCE_TOLERANCES) in (repo / ".ci" / "run").read_text()
    table = run(["cnnpipe", "check-metrics", "--baseline", "HEAD", *REFERENCE_TOLERANCES], repo, env)
    assert "No baseline metrics" not in table and "regressed" not in table, table
    for model in MODELS:
        assert f"| {model} | accuracy |" in table, table


@pytest.mark.slow
def test_make_demo_prepares_every_dataset_offline(demo_repo):
    repo, _, output = demo_repo
    assert "trusting the mirror's manifest" in output
    # a fresh clone and data.mirror, nothing else: no `cnnpipe sample` wrote into the repository
    assert not (repo / "data" / "sample_mirror").exists()
    assert (repo / "data/raw/sea/sea_creatures.zip").is_file()
    for name in DATASETS:
        meta = json.loads((repo / "data/prepared" / name / "classes.json").read_text())
        stats = json.loads((repo / "data/stats" / f"{name}.json").read_text())
        train = np.load(repo / "data/prepared" / name / "train.images.npy", mmap_mode="r")
        assert train.dtype == np.uint8 and train.ndim == 4 and len(train) == meta["splits"]["train"] > 0
        assert stats["count"] == len(train) and len(stats["mean"]) == train.shape[1]
    assert json.loads((repo / "data/prepared/cifar2/classes.json").read_text())["classes"] == [
        "airplane",
        "bird",
    ]
    smile = json.loads((repo / "data/prepared/celeba_smile/classes.json").read_text())
    assert smile["classes"][1] == "Smiling"
    # the committed params still point upstream; the demo changed them only as an experiment
    assert (
        "mirror: null"
        in subprocess.run(
            ["git", "show", "HEAD:params.yaml"], cwd=repo, capture_output=True, text=True
        ).stdout
    )


@pytest.mark.slow
def test_second_repro_is_a_no_op(demo_repo):
    repo, env, _ = demo_repo
    output = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in output
    status = run(["dvc", "status"], repo, env)
    assert "up to date" in status


def _metrics(repo, model):
    return json.loads((repo / "metrics" / f"{model}.json").read_text())


@pytest.mark.slow
def test_every_model_is_trained_and_evaluated(demo_repo):
    repo, env, output = demo_repo
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env))
    files = next(iter(shown.values()))["data"]
    for model in MODELS:
        metrics = files[f"metrics/{model}.json"]["data"]
        assert 0 <= metrics["accuracy"] <= 1
        test = {k: v for k, v in metrics.items() if k not in ("train", "val")}
        assert set(test) <= {"accuracy", "loss", "macro_f1", "roc_auc"}, metrics  # numbers only
        assert all(isinstance(v, (int, float)) for v in test.values())
        assert metrics["train"].keys() == metrics["val"].keys() == {"loss", "acc"}
        info = json.loads((repo / "metrics" / f"{model}.info.json").read_text())
        assert info["model"] == model and info["n_test"] > 0
        figures = repo / "plots" / model / "figures"
        assert (figures / "confusion_matrix.png").is_file() and (figures / "learning_curves.png").is_file()
        assert (repo / "plots" / model / "augmentation.png").is_file()
        assert (repo / "plots" / model / "per_class.csv").is_file()
    for model in TRANSFER_MODELS:  # offline, the demo's backbones start from random weights and say so
        info = json.loads((repo / "metrics" / f"{model}.info.json").read_text())
        assert info["backbone_weights"] == "none (random init)"
    assert "| smile_cnn | accuracy |" in output  # the floors table printed by check-metrics


@pytest.mark.slow
def test_plots_show_renders_curves_and_confusion_matrices(demo_repo, tmp_path):
    repo, env, _ = demo_repo
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo, env)
    html = (tmp_path / "plots" / "index.html").read_text()
    for title in (
        "mnist_cnn: loss, train vs validation",
        "mnist_cnn: accuracy, train vs validation",
        "mnist_cnn: confusion matrix",
        "smile_cnn: ROC curve",
        "sea_cnn: precision, recall and F1",
    ):
        assert title in html, title
    assert "confusion_matrix.png" in html and "augmentation.png" in html
    assert "cdn.jsdelivr" not in html  # the vendored scripts, inlined: it renders offline


@pytest.mark.slow
def test_plots_show_has_the_dataset_pictures_and_augmentation_galleries(demo_repo, tmp_path):
    """docs/figures.md: every dataset's explore figures and every model's gallery are plots."""
    repo, env, _ = demo_repo
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo, env)
    html = (tmp_path / "plots" / "index.html").read_text()
    for dataset in DATASETS:
        for name in ("gallery.png", "filters.png", "convolution.png"):
            path = repo / "plots" / "datasets" / dataset / name
            assert path.stat().st_size > 10_000, path
            assert f"plots/datasets/{dataset}/{name}" in html, (dataset, name)
    for model in MODELS:
        assert f"plots/{model}/augmentation.png" in html, model
        figures = repo / "plots" / model / "figures"
        assert (figures / "before_after.png").is_file(), model
    for model in ("smile_cnn", "horses_cnn", "horses_cnn_aug"):  # the binary models
        assert (repo / "plots" / model / "figures" / "positive_class.png").is_file(), model


@pytest.mark.slow
def test_summary_of_every_model_in_the_demo_repo(demo_repo):
    repo, env, _ = demo_repo
    output = run(["cnnpipe", "summary", *MODELS, "--depth", "1"], repo, env)
    assert output.count("total params:") == len(MODELS)
    assert "total params:      333,898" in output  # fashion_cnn, SPEC


def _metric_columns(csv_header: str) -> dict[str, list[str]]:
    """Metric columns of `dvc exp show --csv` per model: {model: [column, ...]}."""
    per_model: dict[str, list[str]] = {}
    for column in csv_header.split(","):
        path = column.split(":", 1)[0]
        for prefix in ("metrics/", "dvclive/"):
            if path.startswith(prefix) and ":" in column:
                model = path[len(prefix) :].split("/")[0].removesuffix(".json")
                per_model.setdefault(model, []).append(column)
    return per_model


@pytest.mark.slow
def test_exp_show_has_a_handful_of_metric_columns_per_model(demo_repo):
    repo, env, _ = demo_repo
    header = run(["dvc", "exp", "show", "--csv"], repo, env).splitlines()[0]
    columns = _metric_columns(header)
    assert set(columns) == set(MODELS)
    for model, names in columns.items():
        train = [c for c in names if c.split(":")[1].startswith(("train.", "val."))]
        assert len(names) - len(train) <= 6 and len(train) <= 4, (model, names)
    shown = run(["dvc", "metrics", "show", "metrics/smile_cnn.json"], repo, env)
    assert "roc_auc" in shown and "val.acc" in shown
    assert max(len(line) for line in shown.splitlines()) <= 120, shown


@pytest.mark.slow
def test_one_models_plots_show_alone(demo_repo, tmp_path):
    """README: `dvc plots show 'plots/<model>/.*'` draws that model's charts and figures only."""
    repo, env, _ = demo_repo
    out = tmp_path / "one"
    shown = run(["dvc", "plots", "show", "plots/horses_cnn/.*", "-o", out], repo, env)
    assert "failed to load" not in shown
    html = (out / "index.html").read_text()
    assert "horses_cnn: loss, train vs validation" in html and "horses_cnn: confusion matrix" in html
    assert "horses_cnn/augmentation.png" in html and "confusion_matrix.png" in html
    assert "mnist_cnn" not in html and "horses_cnn_aug/" not in html and "horses_cnn_aug:" not in html


@pytest.mark.slow
def test_a_missing_sea_path_is_one_error_line_naming_the_key(demo_repo):
    repo, env, _ = demo_repo
    params = (repo / "params.yaml").read_text()
    try:
        result = subprocess.run(
            ["dvc", "exp", "run", "-S", "datasets.sea.path=/nonexistent/my_sea.zip", "prepare_sea"],
            cwd=repo, env=env, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        (repo / "params.yaml").write_text(params)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: datasets.sea.path: /nonexistent/my_sea.zip does not exist; point it at your ImageFolder "
        "zip or folder (dvc exp run -S datasets.sea.path=PATH)"
    ], output
    assert "Traceback" not in output and "Errno" not in output


def _retrain(repo, env, model):
    """Drop the model's checkpoint so `dvc repro -f` trains from scratch."""
    (repo / "models" / model / "checkpoint.pt").unlink()
    return run(["dvc", "repro", "-f", f"train@{model}", f"evaluate@{model}"], repo, env)


@pytest.mark.slow
def test_two_cpu_runs_give_identical_metrics(demo_repo):
    repo, env, _ = demo_repo
    first = (repo / "metrics" / "cifar_net.json").read_text()
    output = _retrain(repo, env, "cifar_net")
    assert "epoch 1/" in output
    assert (repo / "metrics" / "cifar_net.json").read_text() == first


@pytest.mark.slow
def test_sigkilled_train_stage_resumes_at_its_epoch_and_ends_the_same(demo_repo):
    repo, env, _ = demo_repo
    model = "mnist_cnn"
    uninterrupted = (repo / "metrics" / f"{model}.json").read_text()
    checkpoint = repo / "models" / model / "checkpoint.pt"
    checkpoint.unlink()
    proc = subprocess.Popen(
        ["dvc", "repro", "-f", f"train@{model}"], cwd=repo, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    # only this dvc's stage (its session): another test worker may be training the same model
    stage = ["pkill", "-KILL", "--session", str(proc.pid), "-f", f"stages/train.py {model}"]
    killed = subprocess.run(stage, check=False)
    assert killed.returncode == 0
    assert proc.wait(timeout=120) != 0  # dvc reports the killed stage as failed
    assert not (repo / "models" / model / "model.pt").exists()
    output = run(["dvc", "repro", f"evaluate@{model}"], repo, env)
    assert f"resuming {model} from epoch" in output
    assert "epoch 1/" not in output
    assert (repo / "metrics" / f"{model}.json").read_text() == uninterrupted


@pytest.mark.slow
def test_predict_and_lr_find_on_the_trained_models(demo_repo):
    repo, env, _ = demo_repo
    images = np.load(repo / "data/prepared/sea/test.images.npy", mmap_mode="r")
    Image.fromarray(np.ascontiguousarray(images[0].transpose(1, 2, 0))).convert("RGBA").save(repo / "sea.png")
    (repo / "notes.png").write_text("not an image")
    result = subprocess.run(
        ["cnnpipe", "predict", "sea_cnn", "sea.png", "notes.png"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sea.png: ") and "(prob " in lines[0]
    assert lines[1].startswith("notes.png: error: ")
    output = run(["cnnpipe", "lr-find", "cifar_net", "--num", "12", "--batches", "1"], repo, env)
    assert "suggested learning rate" in output and (repo / "plots/cifar_net/lr_find.png").is_file()
