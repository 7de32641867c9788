"""End to end: the README's experiment recipes on a copy of the repository `make demo` ran in.

Two named dropout experiments compared in one table and one offline `dvc plots diff` page,
`dvc exp run -S` rerunning only the model it changes, and a user's ImageFolder zip trained by
changing params only (the queued grid: tests/demo/test_experiment_queue.py). Where the demo comes
from (CI's run, or one per session): tests/helpers/demo.py. The tests share one copy, in file
order.
"""

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.browser import count_marks, render_offline, require_chromium, revisions_drawn
from tests.helpers.worktree import run

pytestmark = pytest.mark.demo


@pytest.mark.slow
def test_compare_two_dropout_experiments_and_diff_their_plots_offline(demo_repo, tmp_path):
    """Two named experiments differing only in mnist_cnn's dropout: one table, one offline report."""
    repo, env, _ = demo_repo
    for name, dropout in (("drop-none", 0.0), ("drop-half", 0.5)):
        command = ["dvc", "exp", "run", "-n", name, "-S", f"models.mnist_cnn.arch.dropout={dropout}"]
        run([*command, "evaluate@mnist_cnn"], repo, env)
    table = run(["cnnpipe", "compare", "mnist_cnn"], repo, env)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert "models.mnist_cnn.arch.dropout" in header and {"accuracy", "loss", "macro_f1"} <= set(header)
    assert len(header) <= 10, header
    assert not [h for h in header if h.startswith("models.") and h != "models.mnist_cnn.arch.dropout"]
    body = {row.split("|")[1].strip(): row for row in rows[2:]}
    assert {"drop-none", "drop-half"} <= set(body)

    out = tmp_path / "diff"
    targets = ["plots/mnist_cnn/(loss|accuracy|per_class.csv)$"]
    run(["dvc", "plots", "diff", "drop-none", "drop-half", "--targets", *targets, "-o", out], repo, env)
    require_chromium()
    shots = Path(os.environ.get("CNNPIPE_SCREENSHOT_DIR", tmp_path))
    dom = render_offline(out / "index.html", screenshot=shots / "plots-diff.png", window_size=(1400, 1500))
    assert count_marks(dom) > 0
    assert {"drop-none", "drop-half"} <= revisions_drawn(dom)


@pytest.mark.slow
def test_exp_run_with_a_changed_dropout_reruns_only_that_model(demo_repo):
    repo, env, _ = demo_repo
    output = run(["dvc", "exp", "run", "-S", "models.cifar_net.arch.dropout=0.2"], repo, env)
    ran = sorted(line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage"))
    assert ran == ["evaluate@cifar_net", "train@cifar_net"]


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
        assert json.loads((repo / "metrics" / f"{model}.info.json").read_text())["n_test"] == n_test
        per_class = (repo / "plots" / model / "per_class.csv").read_text().splitlines()[1:]
        assert [line.split(",")[0] for line in per_class] == classes
    diff = ["git", "diff", "HEAD", "--", "dvc.yaml"]
    committed = subprocess.run(diff, cwd=repo, capture_output=True, text=True, check=True)
    assert committed.stdout == ""  # params only: the pipeline definition is untouched
