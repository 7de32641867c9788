"""The evaluate stage end to end on tiny bundles and synthetic prepared datasets."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from torchvision.transforms.v2 import functional as TF

from cnnpipe.data.arrays import load_split
from cnnpipe.errors import DataFormatError, ParamError
from cnnpipe.evaluate import figures
from cnnpipe.evaluate import stage as evaluate_stage
from cnnpipe.evaluate.predictions import initial_model
from cnnpipe.models.network import build_network
from cnnpipe.models.trained import load_trained, save_trained
from cnnpipe.models.zoo import build_model
from tests.helpers.bundles import save_random_bundle
from tests.helpers.evalfixtures import HALF, MODELS, make_bundle, make_dataset, make_params
from tests.helpers.evaluation import BINARY_FIGURES, FIGURES, evaluate_params

REPO = Path(__file__).resolve().parents[2]


def _by_hand(root: Path, name: str) -> tuple[np.ndarray, torch.Tensor]:
    """Labels and logits of the test split, computed without the cnnpipe pipeline."""
    dataset, _, _, norm, eval_transform, _ = MODELS[name]
    trained = load_trained(root / "models" / name / "model.pt")
    data = load_split(root / "data" / "prepared" / dataset, "test", mmap=False)
    x = torch.from_numpy(data.images)
    for op in eval_transform:
        assert op["op"] == "resize"
        x = TF.resize(x, op["size"], antialias=True)  # on the uint8 images, as torchvision's recipe
    x = x.float() / 255.0
    mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = trained.model((x - mean) / std).double()
    return data.labels, logits


def _log():
    lines: list[str] = []
    return lines, lines.append


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= 100 and img.height >= 100, (path, img.size)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_multiclass_outputs_match_independent_computation(project, params):
    lines, log = _log()
    result = evaluate_params("tiny", params, root=project, log=log)
    labels, logits = _by_hand(project, "tiny")
    pred = logits.argmax(1).numpy()
    assert len(set(pred.tolist())) > 1, "the fixture should predict several classes"

    saved = json.loads((project / "metrics" / "tiny.json").read_text())
    assert saved == result["metrics"]
    # numbers only, the columns a comparison reads; names go to the info file
    assert list(saved) == ["accuracy", "loss", "macro_f1", "train", "val"]
    # the last epoch's train and validation numbers, from dvclive's summary, beside the test ones
    summary = json.loads((project / "dvclive" / "tiny" / "metrics.json").read_text())
    assert (saved["train"], saved["val"]) == (summary["train"], summary["val"])
    info = json.loads((project / "metrics" / "tiny.info.json").read_text())
    assert info == result["info"] == {
        "model": "tiny", "dataset": "syn3", "split": "test", "n_test": 40, "classes": ["cat", "dog", "bird"],
    }  # fmt: skip
    assert len(labels) == 40
    assert saved["accuracy"] == pytest.approx(accuracy_score(labels, pred), abs=1e-6)
    assert saved["macro_f1"] == pytest.approx(
        f1_score(labels, pred, average="macro", labels=[0, 1, 2], zero_division=0), abs=1e-6
    )
    assert saved["loss"] == pytest.approx(F.cross_entropy(logits, torch.from_numpy(labels)).item(), abs=1e-5)
    assert "roc_auc" not in saved
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=[0, 1, 2], zero_division=0)
    per_class = _rows(project / "plots" / "tiny" / "per_class.csv")
    assert [row["class"] for row in per_class] == ["cat", "dog", "bird"]
    for i, got in enumerate(per_class):
        scores = [float(got["precision"]), float(got["recall"]), float(got["f1"])]
        assert scores == pytest.approx([p[i], r[i], f[i]], abs=1e-6)
        assert int(got["support"]) == s[i]

    classes = ["cat", "dog", "bird"]
    rows = _rows(project / "plots" / "tiny" / "predictions.csv")
    assert len(rows) == 40 and list(rows[0]) == ["actual", "predicted", "probability"]
    probs = torch.softmax(logits, 1).numpy()
    for i, row in enumerate(rows):
        assert row["actual"] == classes[labels[i]] and row["predicted"] == classes[pred[i]]
        assert float(row["probability"]) == pytest.approx(probs[i].max(), abs=1e-5)
    # multiclass: micro-averaged one-vs-rest ROC over every (image, class) pair
    roc = _rows(project / "plots" / "tiny" / "roc.csv")
    onehot = np.eye(3, dtype=int)[labels].ravel()
    expected_fpr, expected_tpr, _ = roc_curve(onehot, probs.ravel())
    assert [float(r["fpr"]) for r in roc] == pytest.approx(expected_fpr.tolist(), abs=1e-6)
    assert [float(r["tpr"]) for r in roc] == pytest.approx(expected_tpr.tolist(), abs=1e-6)

    fig_dir = project / "plots" / "tiny" / "figures"
    assert sorted(p.name for p in fig_dir.iterdir()) == sorted(FIGURES)
    for name in FIGURES:
        _check_png(fig_dir / name)
    assert any("tiny: test accuracy" in line for line in lines)


def test_binary_model_gets_roc(project, params):
    metrics = evaluate_params("tinybin", params, root=project, log=lambda _: None)["metrics"]
    labels, logits = _by_hand(project, "tinybin")
    logits = logits[:, 0]
    scores = torch.sigmoid(logits).numpy()
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    bce = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels).double())
    assert metrics["loss"] == pytest.approx(bce.item(), abs=1e-5)
    assert metrics["accuracy"] == pytest.approx(np.mean((logits.numpy() > 0) == labels), abs=1e-6)

    roc = _rows(project / "plots" / "tinybin" / "roc.csv")
    assert list(roc[0]) == ["fpr", "tpr", "threshold"]
    fpr = [float(r["fpr"]) for r in roc]
    tpr = [float(r["tpr"]) for r in roc]
    thresholds = [float(r["threshold"]) for r in roc]
    assert fpr == sorted(fpr) and tpr == sorted(tpr) and thresholds == sorted(thresholds, reverse=True)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    rows = _rows(project / "plots" / "tinybin" / "predictions.csv")
    assert {r["actual"] for r in rows} == {"horses", "humans"}
    for row, p in zip(rows, scores, strict=True):
        assert float(row["probability"]) == pytest.approx(max(p, 1 - p), abs=1e-5)
        assert row["predicted"] == ("humans" if p > 0.5 else "horses")
    fig_dir = project / "plots" / "tinybin" / "figures"
    # no dvclive history for this model: no learning curves, everything else and its Pr(positive) grid
    expected = (set(FIGURES) - {"learning_curves.png"}) | set(BINARY_FIGURES)
    assert sorted(p.name for p in fig_dir.iterdir()) == sorted(expected)


def test_mlp_skips_conv_figures(project, params):
    lines, log = _log()
    metrics = evaluate_params("tinymlp", params, root=project, log=log)["metrics"]
    fig_dir = project / "plots" / "tinymlp" / "figures"
    names = sorted(p.name for p in fig_dir.iterdir())
    assert names == ["before_after.png", "confusion_matrix.png", "errors.png", "predictions.png"]
    for name in names:
        _check_png(fig_dir / name)
    text = "\n".join(lines)
    assert "skipping the filters figure" in text and "skipping the feature-maps figure" in text
    assert "skipping learning curves" in text
    assert set(metrics) == {"accuracy", "loss", "macro_f1"}  # no dvclive summary for this model


def test_log_softmax_network_evaluates_as_its_logits_twin(project, params):
    """arch.log_softmax adds no parameter: with the same weights, exp of its log-probabilities
    gives the same probabilities, predictions and (NLL = cross-entropy) loss as the plain net."""
    _, arch, classes, norm, eval_transform, shape = MODELS["tinymlp"]
    save_random_bundle(
        project / "models" / "tinymlp_ls" / "model.pt",
        "tinymlp_ls",
        {**arch, "log_softmax": True},
        seed=0,
        spread=3.0,
        classes=classes,
        normalization=norm,
        eval_transform=eval_transform,
        input_shape=shape,
    )
    params["models"]["tinymlp_ls"] = {"dataset": "gray"}
    plain = evaluate_params("tinymlp", params, root=project, log=lambda _: None)["metrics"]
    with_log_softmax = evaluate_params("tinymlp_ls", params, root=project, log=lambda _: None)["metrics"]
    assert load_trained(project / "models" / "tinymlp_ls" / "model.pt").log_probs
    assert with_log_softmax == pytest.approx(plain, abs=2e-6)
    assert plain["loss"] > 0 and 0 < plain["accuracy"] < 1
    rows = {name: _rows(project / "plots" / name / "predictions.csv") for name in ("tinymlp", "tinymlp_ls")}
    assert [(r["actual"], r["predicted"]) for r in rows["tinymlp_ls"]] == [
        (r["actual"], r["predicted"]) for r in rows["tinymlp"]
    ]
    probs = [float(r["probability"]) for r in rows["tinymlp_ls"]]
    assert probs == pytest.approx([float(r["probability"]) for r in rows["tinymlp"]], abs=1e-6)
    assert all(1 / 3 <= p <= 1 for p in probs)


def test_evaluation_is_reproducible(project):
    metrics, csv_file = project / "metrics" / "tiny.json", project / "plots" / "tiny" / "predictions.csv"
    evaluate_params("tiny", _params(batch_size=7), root=project, log=lambda _: None)
    first, first_csv = metrics.read_bytes(), csv_file.read_bytes()
    evaluate_params("tiny", _params(batch_size=7), root=project, log=lambda _: None)
    assert (metrics.read_bytes(), csv_file.read_bytes()) == (first, first_csv)  # same params: same bytes
    # Another batch size: the same metrics; a batch of another size may round a probability's
    # last printed digit differently (the CPU kernels block the batch differently).
    evaluate_params("tiny", _params(batch_size=16), root=project, log=lambda _: None)
    assert metrics.read_bytes() == first
    rows = [line.split(",") for line in csv_file.read_text().splitlines()]
    first_rows = [line.split(",") for line in first_csv.decode().splitlines()]
    assert [r[:2] for r in rows] == [r[:2] for r in first_rows]
    assert [float(r[2]) for r in rows[1:]] == pytest.approx([float(r[2]) for r in first_rows[1:]], abs=2e-6)


def _params(**evaluate):
    params = make_params()
    params["evaluate"].update(evaluate)
    return params


def test_no_errors_figure_and_empty_grid(project):
    # a model that is always right: errors.png says so; grid_images 0 still gives a figure
    _, log = _log()
    params = _params(grid_images=0)
    bundle = load_trained(project / "models" / "tiny" / "model.pt")
    data = load_split(project / "data" / "prepared" / "syn3", "test", mmap=False)
    x = (torch.from_numpy(data.images).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        pred = bundle.model(x).argmax(1).numpy()
    make_dataset(project, "syn3", ["cat", "dog", "bird"], (3, 16, 16))  # same images
    labels_path = project / "data" / "prepared" / "syn3" / "test.labels.npy"
    np.save(labels_path, pred.astype(np.int64))
    metrics = evaluate_params("tiny", params, root=project, log=log)["metrics"]
    assert metrics["accuracy"] == 1.0
    _check_png(project / "plots" / "tiny" / "figures" / "errors.png")
    _check_png(project / "plots" / "tiny" / "figures" / "predictions.png")


def test_falls_back_to_validation_without_test_split(project, params):
    make_dataset(project, "syn3", ["cat", "dog", "bird"], (3, 16, 16), n_test=0)
    lines, log = _log()
    result = evaluate_params("tiny", params, root=project, log=log)
    assert result["info"]["split"] == "valid" and result["info"]["n_test"] == 8
    assert any("no test split" in line for line in lines)


def test_class_mismatch_and_bad_params(project, params):
    make_dataset(project, "syn3", ["cat", "dog", "cow"], (3, 16, 16))
    with pytest.raises(DataFormatError, match="trained on classes"):
        evaluate_params("tiny", params, root=project, log=lambda _: None)
    with pytest.raises(ParamError, match=r"evaluate\.batch_size"):
        evaluate_params("tiny", _params(batch_size=0), root=project, log=lambda _: None)
    with pytest.raises(DataFormatError, match="train the model first"):
        evaluate_params("nosuch", {**params, "models": {"nosuch": {"dataset": "syn3"}}}, root=project)


def test_failure_leaves_previous_outputs_intact(project, params, monkeypatch):
    evaluate_params("tiny", params, root=project, log=lambda _: None)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and "plots" in p.parts}
    for name in ("tiny.json", "tiny.info.json"):
        before[project / "metrics" / name] = (project / "metrics" / name).read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "feature_maps_figure", broken)
    make_bundle(project, "tiny", seed=5)  # different weights: outputs would change
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate_params("tiny", params, root=project, log=lambda _: None)
    after = {p for p in project.rglob("*") if p.is_file() and ("plots" in p.parts or "metrics" in p.parts)}
    assert after == set(before)
    assert all(p.read_bytes() == data for p, data in before.items())
    assert not [p for p in project.rglob(".*") if p.name.endswith(".tmp")]


def test_stage_script(project, params):
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, str(REPO / "stages" / "evaluate.py"), "tinymlp"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "tinymlp: test accuracy" in done.stdout
    assert json.loads((project / "metrics" / "tinymlp.info.json").read_text())["dataset"] == "gray"


def test_before_after_starts_from_the_seeded_initial_weights_and_leaves_the_rng_alone(project, params):
    _, arch, classes, norm, eval_transform, shape = MODELS["tiny"]
    save_random_bundle(
        project / "models" / "tiny" / "model.pt", "tiny", arch, seed=3, spread=3.0, classes=classes,
        normalization=norm, eval_transform=eval_transform, input_shape=shape, extra={"seed": 7},
    )  # fmt: skip
    initial, note = initial_model(load_trained(project / "models" / "tiny" / "model.pt"))
    torch.manual_seed(7)  # what the train stage does before building the model
    expected = build_model(arch).state_dict()
    assert initial.model.state_dict().keys() == expected.keys()
    assert all(torch.equal(initial.model.state_dict()[k], v) for k, v in expected.items())
    assert note == "initial weights, seed 7"

    # the same global generator states after an evaluation with the figure as after one without
    torch.manual_seed(1234)
    np.random.seed(1234)
    metrics = evaluate_params("tiny", params, root=project, log=lambda _: None)["metrics"]
    with_figure = torch.get_rng_state(), np.random.get_state()[1]
    _check_png(project / "plots" / "tiny" / "figures" / "before_after.png")
    saved = (project / "metrics" / "tiny.json").read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate_stage, "_before_after", lambda out_dir, *_: out_dir / "before_after.png")
        torch.manual_seed(1234)
        np.random.seed(1234)
        assert evaluate_params("tiny", params, root=project, log=lambda _: None)["metrics"] == metrics
    assert not (project / "plots" / "tiny" / "figures" / "before_after.png").exists()
    assert torch.equal(torch.get_rng_state(), with_figure[0])
    assert np.array_equal(np.random.get_state()[1], with_figure[1])
    assert (project / "metrics" / "tiny.json").read_bytes() == saved


def test_pretrained_backbone_before_training_keeps_its_frozen_layers(tmp_path):
    arch = {"backbone": "resnet18", "weights": "IMAGENET1K_V1", "freeze": "backbone", "hidden": [],
            "input": [3, 64, 64], "outputs": 2}  # fmt: skip
    torch.manual_seed(5)
    net = build_network(arch, load_weights=False)
    with torch.no_grad():  # stand-ins for pretrained weights and statistics, and a trained head
        for p in net.parameters():
            p.add_(1.0)
        net.net.bn1.running_mean.add_(2.0)
    path = tmp_path / "model.pt"
    save_trained(path, "rn", net, arch=arch, classes=["a", "b"], normalization=HALF, eval_transform=[],
                 input_shape=[3, 64, 64], extra={"seed": 9})  # fmt: skip
    trained = load_trained(path)
    initial, note = initial_model(trained)
    assert note == "initial weights, seed 9, pretrained frozen layers"
    assert torch.equal(initial.model.net.layer4[1].conv2.weight, trained.model.net.layer4[1].conv2.weight)
    assert torch.equal(initial.model.net.bn1.running_mean, trained.model.net.bn1.running_mean)
    torch.manual_seed(9)
    head = build_network(arch, load_weights=False).net.fc
    assert torch.equal(initial.model.net.fc.out.weight, head.out.weight)
    assert not torch.equal(initial.model.net.fc.out.weight, trained.model.net.fc.out.weight)

    finetuned = {**arch, "freeze": "none"}
    save_trained(path, "rn", net, arch=finetuned, classes=["a", "b"], normalization=HALF, eval_transform=[],
                 input_shape=[3, 64, 64], extra={"seed": 9})  # fmt: skip
    _, note = initial_model(load_trained(path))
    assert note.endswith("other backbone layers at random init")


def test_binary_model_shows_ground_truth_and_probability_of_the_positive_class(project, params, monkeypatch):
    drawn = {}
    real_save = figures.save_png

    def keep(fig, path):
        drawn[Path(path).name] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save_png", keep)
    evaluate_params("tinybin", params, root=project, log=lambda _: None)
    labels, logits = _by_hand(project, "tinybin")
    shown = np.unique(np.linspace(0, len(labels) - 1, params["evaluate"]["grid_images"]).round().astype(int))
    p = torch.sigmoid(logits[shown, 0]).numpy()
    classes = ["horses", "humans"]
    expected = [f"GT: {classes[labels[i]]}\nPr(humans)={100 * q:.0f}%" for i, q in zip(shown, p, strict=True)]
    assert drawn["positive_class.png"] == expected
    _check_png(project / "plots" / "tinybin" / "figures" / "positive_class.png")
    # the before/after rows: the same images, a prediction on each
    titles = drawn["before_after.png"]
    assert len(titles) == 2 * len(shown) and all(t.startswith("pred: ") for t in titles)
