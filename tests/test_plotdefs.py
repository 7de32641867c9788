"""dvc.yaml's top-level plots: two learning-curve charts (train vs validation) per model of params.yaml."""

import shutil
from pathlib import Path

import yaml

from cnnpipe.plotdefs import learning_curve_plots, write_plots_block

ROOT = Path(__file__).resolve().parents[1]


def _models() -> list[str]:
    return list(yaml.safe_load((ROOT / "params.yaml").read_text())["models"])


def test_dvc_yaml_draws_train_and_validation_curves_of_every_model_on_one_chart():
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    assert plots == learning_curve_plots(_models()), "run `cnnpipe plot-defs --write`"
    by_id = {name: spec for entry in plots for name, spec in entry.items()}
    loss = by_id["plots/mnist_cnn/loss"]
    assert loss["y"] == {
        "dvclive/mnist_cnn/plots/metrics/train/loss.tsv": "loss",
        "dvclive/mnist_cnn/plots/metrics/val/loss.tsv": "loss",
    }
    assert loss["title"].startswith("mnist_cnn: ") and loss["x_label"] == "epoch"
    assert set(by_id) == {f"plots/{m}/{kind}" for m in _models() for kind in ("loss", "accuracy")}


def test_write_rewrites_only_the_generated_block(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    shutil.copy(ROOT / "dvc.yaml", dvc_yaml)
    before = dvc_yaml.read_text()
    assert not write_plots_block(dvc_yaml, _models())  # in sync: untouched
    assert write_plots_block(dvc_yaml, [*_models(), "my_cnn"])
    after = yaml.safe_load(dvc_yaml.read_text())
    assert after["stages"] == yaml.safe_load(before)["stages"]
    assert {"plots/my_cnn/loss", "plots/my_cnn/accuracy"} <= {k for entry in after["plots"] for k in entry}
