"""The training loop on a tiny synthetic dataset: outputs, determinism, resuming, fallbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamError
from cnnpipe.models.trained import load_trained
from cnnpipe.models.zoo import build_model
from cnnpipe.train.checkpoint import load_checkpoint
from cnnpipe.train.loop import train_model
from tests.helpers.toydata import toy_params, write_dataset

NAME = "toy_cnn"
METRICS = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")
AUGMENT = [{"op": "rotation", "degrees": 10}, {"op": "random_crop", "size": 12, "padding": 1}]


class Interrupted(Exception):
    pass


def _quiet(lines: list[str] | None = None, stop_at: int | None = None):
    """A log callable collecting lines; raises Interrupted on the summary line of epoch ``stop_at``.

    That line comes before the epoch's checkpoint is written, so the checkpoint then holds
    ``stop_at - 1`` completed epochs, as after a crash during epoch ``stop_at``.
    """
    lines = [] if lines is None else lines

    def log(line: str) -> None:
        lines.append(line)
        if stop_at is not None and f" epoch {stop_at}/" in line:
            raise Interrupted(line)

    return log


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "models" / NAME / "model.pt", weights_only=True)["state_dict"]


def _live(root: Path) -> dict[str, str]:
    base = root / "dvclive" / NAME / "plots" / "metrics"
    return {m: (base / f"{m}.tsv").read_text() for m in METRICS}


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    history = json.loads((a / "models" / NAME / "history.json").read_text())
    assert history == json.loads((b / "models" / NAME / "history.json").read_text())
    assert _live(a) == _live(b)


def _workspace(tmp_path: Path, label: str, **kwargs) -> Path:
    root = tmp_path / label
    write_dataset(root, **kwargs)
    return root


def test_training_learns_and_writes_every_output(toy_root):
    lines: list[str] = []
    summary = train_model(
        parse_config(NAME, toy_params(train={"epochs": 4})), root=toy_root, log=_quiet(lines)
    )

    history = summary["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    assert history[-1]["val_acc"] > 0.8 and history[-1]["train_acc"] > 0.6  # chance is 1/3
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert summary["resumed_from"] == 0 and summary["valid_split"] == "valid" and summary["device"] == "cpu"
    assert sum(" epoch " in line for line in lines) == 4

    model_dir = toy_root / "models" / NAME
    assert json.loads((model_dir / "history.json").read_text()) == history
    bundle = torch.load(model_dir / "model.pt", weights_only=True)
    assert bundle["classes"] == ["c0", "c1", "c2"] and bundle["input_shape"] == [1, 12, 12]
    assert bundle["extra"]["best"]["val_acc"] == max(e["val_acc"] for e in history)
    assert bundle["extra"]["last"] == history[-1]
    assert (bundle["extra"]["dataset"], bundle["extra"]["epochs"], bundle["extra"]["seed"]) == ("toy", 4, 0)
    stats = json.loads((toy_root / "data" / "stats" / "toy.json").read_text())
    assert bundle["normalization"] == {"mean": stats["mean"], "std": stats["std"]}
    trained = load_trained(model_dir / "model.pt")
    assert trained.model(torch.zeros(2, 1, 12, 12)).shape == (2, 3)

    state, _ = load_checkpoint(model_dir / "checkpoint.pt")
    assert state["epoch"] == 4 and state["history"] == history

    live = _live(toy_root)
    for metric in METRICS:
        rows = live[metric].splitlines()
        assert rows[0] == f"step\t{metric.split('/')[-1]}" and len(rows) == 5
        assert [int(row.split("\t")[0]) for row in rows[1:]] == [1, 2, 3, 4]  # step = epoch
    summary = json.loads((toy_root / "dvclive" / NAME / "metrics.json").read_text())
    assert set(summary) == {"train", "val"} and set(summary["val"]) == {"loss", "acc"}  # no step column
    assert float(live["val/acc"].splitlines()[-1].split("\t")[1]) == history[-1]["val_acc"]
    png = toy_root / "plots" / NAME / "augmentation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_runs_are_bitwise_identical(tmp_path):
    params = toy_params(
        augment=AUGMENT, train={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 3, "seed": 7}
    )
    a, b = _workspace(tmp_path, "a"), _workspace(tmp_path, "b")
    first = train_model(parse_config(NAME, params), root=a, log=_quiet())
    second = train_model(parse_config(NAME, params), root=b, log=_quiet())
    assert first["history"] == second["history"]
    _assert_same_run(a, b)
    reseeded = toy_params(augment=AUGMENT, train={"epochs": 3, "seed": 8})
    assert train_model(parse_config(NAME, reseeded), root=b, log=_quiet())["history"] != first["history"]


@pytest.mark.parametrize(
    ("train", "arch"),
    [
        ({"optimizer": "rmsprop", "lr": 0.002, "momentum": 0.5, "scheduler": "cosine", "l2": 1e-3}, {}),
        (
            {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "scheduler": "onecycle", "loss": "nll"},
            {"log_softmax": True},
        ),
        ({"optimizer": "adam", "scheduler": "plateau", "plateau_patience": 0, "weight_decay": 1e-3}, {}),
    ],
    ids=["rmsprop-cosine-l2", "sgd-onecycle-nll", "adam-plateau"],
)
def test_interrupted_run_resumes_to_the_identical_result(tmp_path, train, arch):
    params = toy_params(augment=AUGMENT, train={"epochs": 4, **train})
    params["models"][NAME]["arch"].update(arch)
    reference, resumed = _workspace(tmp_path, "ref"), _workspace(tmp_path, "resumed")
    train_model(parse_config(NAME, params), root=reference, log=_quiet())

    with pytest.raises(Interrupted):
        train_model(parse_config(NAME, params), root=resumed, log=_quiet(stop_at=3))
    state, _ = load_checkpoint(resumed / "models" / NAME / "checkpoint.pt")
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert not (resumed / "models" / NAME / "model.pt").exists()

    lines: list[str] = []
    summary = train_model(parse_config(NAME, params), root=resumed, log=_quiet(lines))
    assert f"resuming {NAME} from epoch 3/4" in lines
    assert summary["resumed_from"] == 2
    _assert_same_run(reference, resumed)


def test_more_epochs_continue_a_finished_run(tmp_path):
    params = toy_params(augment=AUGMENT, train={"epochs": 4})
    reference, extended = _workspace(tmp_path, "ref"), _workspace(tmp_path, "ext")
    train_model(parse_config(NAME, params), root=reference, log=_quiet())

    capped = toy_params(augment=AUGMENT, train={"epochs": 4})
    capped["run"]["max_epochs"] = 2
    assert train_model(parse_config(NAME, capped), root=extended, log=_quiet())["epochs"] == 2
    lines: list[str] = []
    train_model(parse_config(NAME, params), root=extended, log=_quiet(lines))
    assert f"resuming {NAME} from epoch 3/4" in lines
    _assert_same_run(reference, extended)

    # Asking for fewer epochs than the checkpoint holds cannot reuse it.
    lines.clear()
    assert train_model(parse_config(NAME, capped), root=extended, log=_quiet(lines))["resumed_from"] == 0
    assert any("holds 4 epochs, more than the 2 asked for; starting fresh" in line for line in lines)


def test_finished_run_only_reexports(toy_root):
    params = toy_params(train={"epochs": 2})
    first = train_model(parse_config(NAME, params), root=toy_root, log=_quiet())
    model_file = toy_root / "models" / NAME / "model.pt"
    before = _weights(toy_root)
    model_file.unlink()
    lines: list[str] = []
    again = train_model(parse_config(NAME, params), root=toy_root, log=_quiet(lines))
    assert again["resumed_from"] == 2 and again["history"] == first["history"]
    assert not any(" epoch " in line for line in lines)
    assert any("all 2 epochs are in" in line for line in lines)
    assert all(torch.equal(before[k], v) for k, v in _weights(toy_root).items())
    assert len(_live(toy_root)["val/loss"].splitlines()) == 3  # header + the replayed 2 epochs


@pytest.mark.parametrize("change", ["params", "data", "damaged"])
def test_checkpoint_from_other_params_or_data_is_not_resumed(toy_root, change):
    params = toy_params(train={"epochs": 3})
    with pytest.raises(Interrupted):
        train_model(parse_config(NAME, params), root=toy_root, log=_quiet(stop_at=3))
    checkpoint = toy_root / "models" / NAME / "checkpoint.pt"
    if change == "params":
        params = toy_params(train={"epochs": 3, "lr": 0.005})
        expected = "was made with other params or data; starting fresh"
    elif change == "data":
        write_dataset(toy_root, seed=5)
        expected = "was made with other params or data; starting fresh"
    else:
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
        expected = "is unreadable"
    lines: list[str] = []
    summary = train_model(parse_config(NAME, params), root=toy_root, log=_quiet(lines))
    assert any(expected in line for line in lines), lines
    assert summary["resumed_from"] == 0 and len(summary["history"]) == 3
    assert not any(line.startswith("resuming") for line in lines)


def test_empty_valid_split_validates_on_test(tmp_path):
    """valid_first / valid_fraction 0 is a first-class choice (the sources' split): no warning."""
    root = _workspace(tmp_path, "novalid", sizes=(96, 0, 24))
    lines: list[str] = []
    summary = train_model(parse_config(NAME, toy_params(train={"epochs": 2})), root=root, log=_quiet(lines))
    assert f"{NAME}: toy has no valid split; validating on the test split" in lines
    assert not any("warning" in line for line in lines), lines
    assert summary["valid_split"] == "test"
    assert all(0 <= e["val_acc"] <= 1 and e["val_loss"] > 0 for e in summary["history"])
    assert len(_live(root)["val/acc"].splitlines()) == 3
    bundle = torch.load(root / "models" / NAME / "model.pt", weights_only=True)
    assert bundle["extra"]["valid_split"] == "test"


def test_binary_model_trains_with_bce(binary_root):
    params = toy_params(dataset="toy2", binary=True, train={"epochs": 4})
    summary = train_model(parse_config(NAME, params), root=binary_root, log=_quiet())
    assert summary["history"][-1]["val_acc"] > 0.8  # chance is 1/2
    trained = load_trained(binary_root / "models" / NAME / "model.pt")
    assert trained.binary and trained.classes == ["c0", "c1"]


def test_l2_penalty_enters_the_training_objective(tmp_path):
    """One full-batch SGD step: the penalty λ·Σ‖w‖² adds exactly lr·2λ·w to each weight's step."""
    lr, l2 = 0.1, 0.5
    results = {}
    for value in (0.0, l2):
        root = _workspace(tmp_path, f"l2-{value}")
        params = toy_params(train={"optimizer": "sgd", "lr": lr, "l2": value, "batch_size": 96, "epochs": 1})
        params["models"][NAME]["arch"]["dropout"] = 0.0
        train_model(parse_config(NAME, params), root=root, log=_quiet())
        results[value] = _weights(root)
    torch.manual_seed(0)  # the initial weights: the run seeds with train.seed before building
    initial = build_model(params["models"][NAME]["arch"]).state_dict()
    for key, w0 in initial.items():
        difference = results[l2][key] - results[0.0][key]
        if key.endswith("weight"):
            assert torch.allclose(difference, -lr * 2 * l2 * w0, atol=1e-6), key
        else:
            assert torch.equal(difference, torch.zeros_like(w0)), key  # biases are not penalized


def test_l2_layers_penalty_covers_the_named_layers_biases_included(tmp_path):
    """The book's form: λ·Σ‖p‖² over every parameter of ``classifier.out``, and nothing else."""
    lr, l2 = 0.1, 0.5
    results = {}
    for value in (0.0, l2):
        root = _workspace(tmp_path, f"l2-{value}")
        train = {"optimizer": "sgd", "lr": lr, "l2": value, "l2_layers": ["classifier.out"], "batch_size": 96}
        params = toy_params(train={**train, "epochs": 1})
        params["models"][NAME]["arch"]["dropout"] = 0.0
        train_model(parse_config(NAME, params), root=root, log=_quiet())
        results[value] = _weights(root)
    torch.manual_seed(0)
    initial = build_model(params["models"][NAME]["arch"]).state_dict()
    assert {"classifier.out.weight", "classifier.out.bias"} <= initial.keys()
    for key, w0 in initial.items():
        difference = results[l2][key] - results[0.0][key]
        if key.startswith("classifier.out."):
            assert torch.allclose(difference, -lr * 2 * l2 * w0, atol=1e-6), key
        else:
            assert torch.equal(difference, torch.zeros_like(w0)), key


@pytest.mark.parametrize(
    ("loss", "arch"), [("nll", {"log_softmax": True}), ("mse", {})], ids=["log_softmax-nll", "mse"]
)
def test_other_losses_train_and_the_bundle_gives_probabilities(toy_root, loss, arch):
    from cnnpipe.evaluate.metrics import probabilities
    from cnnpipe.evaluate.predictions import predict_split

    params = toy_params(train={"loss": loss, "epochs": 6})
    params["models"][NAME]["arch"].update(arch)
    summary = train_model(parse_config(NAME, params), root=toy_root, log=_quiet())
    assert summary["history"][-1]["val_acc"] > 0.8  # chance is 1/3
    assert summary["history"][-1]["train_loss"] < summary["history"][0]["train_loss"]
    trained = load_trained(toy_root / "models" / NAME / "model.pt")
    assert trained.log_probs == (loss == "nll")
    images = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    outputs = predict_split(trained, images, 5)
    probs = probabilities(outputs, log_probs=trained.log_probs)
    assert probs.sum(axis=1) == pytest.approx([1.0] * 5)
    if loss == "nll":
        assert (outputs <= 0).all()
        assert probs == pytest.approx(outputs.double().exp().numpy())


def test_bad_params_fail_before_writing_anything(toy_root):
    with pytest.raises(ParamError, match=r"^models.toy_cnn.train.optimizer: expected adam, sgd or rmsprop"):
        train_model(parse_config(NAME, toy_params(train={"optimizer": "adamw"})), root=toy_root, log=_quiet())
    assert not (toy_root / "models").exists() and not (toy_root / "dvclive").exists()


def test_unknown_l2_layer_fails_before_writing_anything(toy_root):
    params = toy_params(train={"l2": 0.01, "l2_layers": ["classifier.fc2"]})
    with pytest.raises(ParamError) as info:
        train_model(parse_config(NAME, params), root=toy_root, log=_quiet())
    assert str(info.value).startswith(
        "models.toy_cnn.train.l2_layers: no layer named 'classifier.fc2'; "
        "valid layers (or a container of them): features.conv1, classifier.fc1, classifier.out"
    )
    assert not (toy_root / "models").exists() and not (toy_root / "dvclive").exists()
