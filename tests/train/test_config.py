"""Training config: every bad value is a one-line ParamError naming its full params key."""

from __future__ import annotations

import copy

import pytest

from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamError
from cnnpipe.paths import RunPaths
from cnnpipe.train.runtime import open_data
from tests.helpers.toydata import toy_params, write_dataset

KEY = "models.toy_cnn"


def _with(path: str, value, params=None):
    """Copy of the toy params with the dotted ``path`` set (``None`` value + ``...`` deletes)."""
    params = copy.deepcopy(params or toy_params())
    *parents, last = path.split(".")
    node = params
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return params


def _error(params, name="toy_cnn") -> str:
    with pytest.raises(ParamError) as info:
        parse_config(name, params)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("train.optimizer", "adamw", f"{KEY}.train.optimizer: expected adam, sgd or rmsprop, got 'adamw'"),
        ("train.lr", -0.1, f"{KEY}.train.lr: must be > 0"),
        ("train.lr", "fast", f"{KEY}.train.lr: expected a number, got 'fast'"),
        ("train.lr", True, f"{KEY}.train.lr: expected a number"),
        ("train.momentum", 0.9, f"{KEY}.train.momentum: adam has no momentum"),
        ("train.weight_decay", -1, f"{KEY}.train.weight_decay: must be >= 0"),
        ("train.l2", "x", f"{KEY}.train.l2: expected a number"),
        ("train.scheduler", "step", f"{KEY}.train.scheduler: expected none, plateau, cosine or onecycle"),
        ("train.plateau_factor", 1.5, f"{KEY}.train.plateau_factor: must be in (0, 1)"),
        ("train.plateau_patience", -1, f"{KEY}.train.plateau_patience: must be an integer >= 0"),
        ("train.loss", "mae", f"{KEY}.train.loss: expected cross_entropy, nll, bce or mse, got 'mae'"),
        (
            "train.loss",
            "nll",
            f"{KEY}.train.loss: nll takes log-probabilities; set {KEY}.arch.log_softmax: true",
        ),
        ("arch.log_softmax", True, f"{KEY}.arch.log_softmax: the network then returns log-probabilities"),
        ("train.l2_layers", "classifier", f"{KEY}.train.l2_layers: must be a list, got 'classifier'"),
        ("train.l2_layers", ["classifier", 3], f"{KEY}.train.l2_layers[1]: must be a layer name like"),
        ("train.batch_size", 0, f"{KEY}.train.batch_size: must be an integer >= 1"),
        ("train.epochs", 2.5, f"{KEY}.train.epochs: must be an integer >= 1"),
        ("train.seed", -3, f"{KEY}.train.seed: must be an integer >= 0"),
        ("train.lr_decay", 0.1, f"{KEY}.train.lr_decay: unknown key"),
        ("train.lr", ..., f"{KEY}.train.lr: missing"),
        ("train", ..., f"{KEY}.train: must be a mapping"),
        ("augmentation", [], f"{KEY}.augmentation: unknown key"),
        ("dataset", ..., f"{KEY}.dataset: missing"),
        ("dataset", "../etc", f"{KEY}.dataset: expected a prepared dataset name"),
        ("augment", {"op": "hflip"}, f"{KEY}.augment: must be a list of ops"),
        ("arch.outputs", 0, f"{KEY}.arch.outputs: must be an integer >= 1"),
    ],
)
def test_bad_model_values_name_the_key(path, value, expected):
    params = _with(f"models.toy_cnn.{path}", value)
    assert expected in _error(params)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("run.device", "gpu", "run.device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ("run.max_epochs", 0, "run.max_epochs: must be an integer >= 1"),
    ],
)
def test_bad_run_values_name_the_key(path, value, expected):
    assert expected in _error(_with(path, value))


def test_unknown_model_lists_known_ones():
    assert "models.nope: no such model in params.yaml (models: toy_cnn)" in _error(toy_params(), "nope")


def test_defaults_numeric_strings_and_epoch_cap():
    params = toy_params(train={"lr": "1e-3", "epochs": 20})
    for key in ("momentum", "weight_decay", "l2", "scheduler", "plateau_factor", "plateau_patience", "seed"):
        del params["models"]["toy_cnn"]["train"][key]
    config = parse_config("toy_cnn", params)
    assert config.train.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string
    assert (config.train.scheduler, config.train.plateau_factor, config.train.plateau_patience) == (
        "none",
        0.5,
        10,
    )
    assert config.epochs == 20
    params["run"]["max_epochs"] = 3
    assert parse_config("toy_cnn", params).epochs == 3
    params["run"]["max_epochs"] = 50
    assert parse_config("toy_cnn", params).epochs == 20


# --- checks against the prepared data ----------------------------------------------------------


def _data_error(root, params, name="toy_cnn") -> str:
    config = parse_config(name, params)
    with pytest.raises(ParamError) as info:
        open_data(config, RunPaths.of(root, name, config.dataset), log=lambda _: None)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_augment_output_size_must_match_arch_input(toy_root):
    params = toy_params(augment=[{"op": "resize", "size": [10, 10]}])
    message = _data_error(toy_root, params)
    assert message.startswith(f"{KEY}.augment: turns the prepared 12x12 images into 10x10")
    assert f"{KEY}.arch.input expects 12x12" in message


def test_eval_transform_output_size_must_match_arch_input(toy_root):
    params = toy_params(eval_transform=[{"op": "center_crop", "size": 8}])
    message = _data_error(toy_root, params)
    assert message.startswith(f"{KEY}.eval_transform: turns the prepared 12x12 images into 8x8")


def test_resized_input_is_accepted(toy_root):
    params = toy_params(
        augment=[{"op": "random_crop", "size": 10}, {"op": "resize", "size": [16, 16]}],
        eval_transform=[{"op": "center_crop", "size": 10}, {"op": "resize", "size": [16, 16]}],
    )
    params["models"]["toy_cnn"]["arch"]["input"] = [1, 16, 16]
    config = parse_config("toy_cnn", params)
    data = open_data(config, RunPaths.of(toy_root, "toy_cnn", "toy"), log=lambda _: None)
    assert data.input_shape == [1, 12, 12]


def test_channels_must_match(toy_root):
    params = toy_params()
    params["models"]["toy_cnn"]["arch"]["input"] = [3, 12, 12]
    assert _data_error(toy_root, params).startswith(f"{KEY}.arch.input: expects 3 channel(s) but toy")


def test_bce_needs_one_output_and_two_classes(toy_root):
    params = toy_params(binary=True)  # 3-class data
    assert _data_error(toy_root, params).startswith(f"{KEY}.train.loss: bce needs {KEY}.arch.outputs: 1")


def test_cross_entropy_needs_one_output_per_class(toy_root):
    params = toy_params()
    params["models"]["toy_cnn"]["arch"]["outputs"] = 2
    message = _data_error(toy_root, params)
    assert message.startswith(f"{KEY}.arch.outputs: cross_entropy needs one output per class (3 in toy)")


def test_nll_checks_outputs_too(toy_root):
    params = toy_params(train={"loss": "nll"})
    params["models"]["toy_cnn"]["arch"].update(outputs=4, log_softmax=True)
    assert _data_error(toy_root, params).startswith(f"{KEY}.arch.outputs: nll needs one output per class")


def test_nll_goes_with_a_log_softmax_arch():
    params = toy_params(train={"loss": "nll"})
    params["models"]["toy_cnn"]["arch"]["log_softmax"] = True
    config = parse_config("toy_cnn", params)
    assert (config.train.loss, config.arch.log_softmax) == ("nll", True)
    for loss in ("cross_entropy", "mse"):
        params["models"]["toy_cnn"]["train"]["loss"] = loss
        assert _error(params).startswith(
            f"{KEY}.arch.log_softmax: the network then returns log-probabilities"
        )
        assert f"got loss '{loss}'" in _error(params)


def test_nll_is_refused_for_a_transfer_arch():
    params = toy_params(train={"loss": "nll"})
    params["models"]["toy_cnn"]["arch"] = {
        "backbone": "resnet18",
        "weights": "none",
        "freeze": "none",
        "input": [3, 32, 32],
        "outputs": 3,
    }
    assert _error(params).startswith(
        f"{KEY}.train.loss: nll takes log-probabilities, which only a from-scratch"
    )


def test_mse_one_output_needs_two_classes(toy_root):
    params = toy_params(train={"loss": "mse"})
    params["models"]["toy_cnn"]["arch"]["outputs"] = 1
    message = _data_error(toy_root, params)  # 3-class data
    assert message.startswith(f"{KEY}.arch.outputs: mse with one output scores its sigmoid")
    assert "set it to 3" in message


def test_mse_needs_one_output_per_class_or_one(toy_root):
    params = toy_params(train={"loss": "mse"})
    params["models"]["toy_cnn"]["arch"]["outputs"] = 2
    assert _data_error(toy_root, params).startswith(f"{KEY}.arch.outputs: mse needs one output per class (3")
    params["models"]["toy_cnn"]["arch"]["outputs"] = 3
    config = parse_config("toy_cnn", params)
    assert open_data(config, RunPaths.of(toy_root, "toy_cnn", "toy"), log=lambda _: None).classes == [
        "c0",
        "c1",
        "c2",
    ]


def test_mse_with_one_output_on_two_classes_is_accepted(tmp_path):
    write_dataset(tmp_path, classes=2)
    params = toy_params(binary=True)
    params["models"]["toy_cnn"]["train"]["loss"] = "mse"
    config = parse_config("toy_cnn", params)
    assert (config.train.loss, config.arch.outputs) == ("mse", 1)
    assert open_data(config, RunPaths.of(tmp_path, "toy_cnn", "toy"), log=lambda _: None).classes == [
        "c0",
        "c1",
    ]


def test_l2_layers_default_and_list():
    assert parse_config("toy_cnn", toy_params()).train.l2_layers == ()
    assert parse_config("toy_cnn", toy_params(train={"l2_layers": None})).train.l2_layers == ()
    layers = ["classifier.fc1", "classifier.out"]
    assert parse_config("toy_cnn", toy_params(train={"l2_layers": layers})).train.l2_layers == tuple(layers)


def test_normalize_stats_needs_the_stats_file(tmp_path):
    write_dataset(tmp_path)
    (tmp_path / "data" / "stats" / "toy.json").unlink()
    assert _data_error(tmp_path, toy_params()).startswith(f"{KEY}.normalize: 'stats' needs")
