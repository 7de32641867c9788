"""End to end: `make demo` in a fresh copy of the repository runs the whole pipeline offline.

This is the README's first command, run as a user would (minus creating the virtualenv,
which the test reuses). The tests after it use the same repository, in file order, for the
README's experiment recipes: a second `dvc repro` is a no-op, metrics and plots show, CPU
runs are reproducible, a SIGKILLed train stage resumes, `dvc exp run -S` reruns one model,
and a queued grid completes.
"""

import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from worktree import clone_env, commit_copy, copy_worktree, run

ROOT = Path(__file__).resolve().parents[1]
DATASETS = [
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeba",
    "horse_or_human",
    "rps",
    "sea",
    "cifar2",
    "celeba_smile",
]
TRANSFER_MODELS = [
    "inception_horses", "inception_rps", "squeezenet_horses", "squeezenet_rps",
    "resnet18_horses", "resnet18_rps", "resnet18_sea",
]  # fmt: skip
MODELS = [
    "fashion_cnn", "mnist_cnn", "smile_cnn", "horses_cnn", "horses_cnn_aug",
    "cifar2_fc", "cifar2_fc_deep", "cifar_net", "sea_cnn", *TRANSFER_MODELS,
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("clone")
    copy_worktree(repo)
    venv = Path(sys.executable).parent.parent
    env = clone_env(repo)
    commit_copy(repo, env)
    output = run(["make", "demo", f"VENV={venv}", "NO_INSTALL=1"], repo, env)
    return repo, env, output


@pytest.mark.slow
def test_make_demo_prepares_every_dataset_offline(demo_repo):
    repo, _, output = demo_repo
    assert "trusting the mirror's manifest" in output
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
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n_test"] > 0
        assert "loss" in files[f"dvclive/{model}/metrics.json"]["data"]["train"]
        figures = repo / "plots" / model / "figures"
        assert (figures / "confusion_matrix.png").is_file() and (figures / "learning_curves.png").is_file()
        assert (repo / "plots" / model / "augmentation.png").is_file()
    for model in TRANSFER_MODELS:  # offline, the demo's backbones start from random weights and say so
        assert files[f"metrics/{model}.json"]["data"]["backbone_weights"] == "none (random init)"
    assert "| smile_cnn | accuracy |" in output  # the floors table printed by check-metrics


@pytest.mark.slow
def test_plots_show_renders_curves_and_confusion_matrices(demo_repo, tmp_path):
    repo, env, _ = demo_repo
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], repo, env)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "plots/mnist_cnn/predictions.csv" in html and "dvclive/mnist_cnn/plots/metrics" in html
    assert "confusion_matrix.png" in html


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
    killed = subprocess.run(["pkill", "-KILL", "-f", f"stages/train.py {model}"], check=False)
    assert killed.returncode == 0
    assert proc.wait(timeout=120) != 0  # dvc reports the killed stage as failed
    assert not (repo / "models" / model / "model.pt").exists()
    output = run(["dvc", "repro", f"evaluate@{model}"], repo, env)
    assert f"resuming {model} from epoch" in output
    assert "epoch 1/" not in output
    assert (repo / "metrics" / f"{model}.json").read_text() == uninterrupted


@pytest.mark.slow
def test_exp_run_with_a_changed_dropout_reruns_only_that_model(demo_repo):
    repo, env, _ = demo_repo
    output = run(["dvc", "exp", "run", "-S", "models.cifar_net.arch.dropout=0.2"], repo, env)
    ran = sorted(line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage"))
    assert ran == ["evaluate@cifar_net", "train@cifar_net"]


@pytest.mark.slow
def test_queued_grid_of_three_completes_with_two_workers(demo_repo):
    repo, env, _ = demo_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline for queued experiments"], repo, env)
    run(["dvc", "exp", "run", "--queue", "-S", "models.cifar_net.train.lr=0.002,0.005,0.01"], repo, env)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 3, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env))
    lrs = set()
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("metrics/cifar_net.json", {}).get("data", {})
                if "accuracy" in metrics:
                    lrs.add(params["models"]["cifar_net"]["train"]["lr"])
    assert {0.002, 0.005, 0.01} <= lrs
    # the README's comparison commands
    table = run(["dvc", "exp", "show", "--md", "--only-changed"], repo, env)
    assert "models.cifar_net.train.lr" in table
    names = run(["dvc", "exp", "list", "--name-only"], repo, env).split()
    run(["dvc", "plots", "diff", *names, "-o", str(repo / "plots-diff")], repo, env)
    assert "dvclive/cifar_net/plots/metrics" in (repo / "plots-diff" / "index.html").read_text()


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


def _user_imagefolder_zip(path: Path) -> tuple[list[str], int, str]:
    """A user's 5-class ImageFolder zip: mixed sizes and modes (RGB, L, RGBA, P), one corrupt JPEG.

    No val/ folder (a stratified share of train becomes validation). Returns the class names,
    the number of test images and the corrupt member's path inside the zip.
    """
    classes = ["anemone", "clam", "eel", "ray", "shark"]
    rng = np.random.default_rng(7)
    n_test = 0
    with zipfile.ZipFile(path, "w") as zf:
        for split, per_class in (("train", 8), ("test", 3)):
            for c, name in enumerate(classes):
                for i in range(per_class):
                    width, height = (int(v) for v in rng.integers(40, 140, size=2))
                    pixels = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
                    pixels[..., c % 3] += np.uint8(30 * (c + 1))  # a colour per class
                    mode = ("RGB", "L", "RGBA", "P")[i % 4]
                    fmt = "JPEG" if mode in ("RGB", "L") else "PNG"
                    buffer = io.BytesIO()
                    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
                    zf.writestr(f"my_images/{split}/{name}/{name}_{i:02d}.{fmt.lower()}", buffer.getvalue())
                    n_test += split == "test"
        corrupt = "my_images/train/eel/broken.jpeg"
        zf.writestr(corrupt, b"\xff\xd8\xff\xe0 truncated")
    return classes, n_test, corrupt


@pytest.mark.slow
def test_a_users_imagefolder_zip_trains_by_changing_params_only(demo_repo, tmp_path):
    """README "Train on your own images": point datasets.sea.path at a zip, run the sea models."""
    repo, env, _ = demo_repo
    zip_path = tmp_path / "my_images.zip"
    classes, n_test, corrupt = _user_imagefolder_zip(zip_path)
    command = ["dvc", "exp", "run", "-S", f"datasets.sea.path={zip_path}"]
    output = run([*command, "evaluate@sea_cnn", "evaluate@resnet18_sea"], repo, env)
    assert "skipped 1 unreadable image" in output
    prepared = repo / "data/prepared/sea"
    assert json.loads((prepared / "classes.json").read_text())["classes"] == classes
    skipped = json.loads((prepared / "skipped.json").read_text())
    assert len(skipped) == 1 and skipped[0]["path"].endswith(corrupt.removeprefix("my_images/"))
    for model in ("sea_cnn", "resnet18_sea"):
        metrics = _metrics(repo, model)
        assert metrics["n_test"] == n_test and set(metrics["per_class"]) == set(classes)
    diff = ["git", "diff", "HEAD", "--", "dvc.yaml"]
    committed = subprocess.run(diff, cwd=repo, capture_output=True, text=True, check=True)
    assert committed.stdout == ""  # params only: the pipeline definition is untouched
