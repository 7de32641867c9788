"""The from-scratch model zoo: SPEC parameter counts, shapes, overrides and params errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnpipe.errors import ParamError
from cnnpipe.models import build_model, count_parameters, feature_shapes, flat_size
from tests.helpers.params_archs import SPEC_COUNTS, from_scratch_models, params_arch


def test_every_from_scratch_model_of_params_yaml_has_a_spec_count():
    assert from_scratch_models() == sorted(SPEC_COUNTS)


@pytest.mark.parametrize("name", sorted(SPEC_COUNTS))
def test_params_yaml_arch_matches_spec_and_runs(name):
    arch = params_arch(name)
    model = build_model(arch, key=f"models.{name}.arch")
    assert count_parameters(model) == SPEC_COUNTS[name]
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(2, *arch["input"]))
    assert logits.shape == (2, arch["outputs"])


def test_structure_exposes_first_conv_and_flat_size():
    model = build_model(params_arch("mnist_cnn"))
    first = model.features[0]
    assert isinstance(first, nn.Conv2d)
    assert (first.in_channels, first.out_channels, first.kernel_size) == (1, 32, (5, 5))
    assert feature_shapes(params_arch("mnist_cnn")) == [(32, 14, 14), (64, 7, 7)]
    assert flat_size(params_arch("mnist_cnn")) == 3136
    assert flat_size(params_arch("smile_cnn")) == 256  # global average pool
    assert flat_size(params_arch("cifar2_fc")) == 3072  # MLP: the flattened input
    assert len(build_model(params_arch("cifar2_fc")).features) == 0


def test_fashion_cnn_has_no_activation_between_its_linears():
    classifier = build_model(params_arch("fashion_cnn")).classifier
    assert [type(m) for m in classifier] == [nn.Flatten, nn.Linear, nn.Linear]


def test_fashion_dnn_is_the_mlp_ending_in_log_softmax():
    arch = params_arch("fashion_dnn")
    model = build_model(arch)
    assert len(model.features) == 0
    assert [type(m) for m in model.classifier] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.LogSoftmax]
    assert (model.classifier.fc1.in_features, model.classifier.fc1.out_features) == (784, 128)
    torch.manual_seed(0)
    with torch.no_grad():
        log_probs = model(torch.rand(5, *arch["input"]))
    assert (log_probs <= 0).all()
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(5, dtype=log_probs.dtype))
    # the same network without the LogSoftmax returns the logits those are the log-softmax of
    torch.manual_seed(1)
    with_softmax = build_model(arch)
    torch.manual_seed(1)
    plain = build_model({**arch, "log_softmax": False})
    assert with_softmax.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(3, *arch["input"])
    with torch.no_grad():
        assert torch.allclose(with_softmax(x), torch.log_softmax(plain(x), dim=1))


def test_avg_pool_block_builds_average_pooling_with_the_same_shapes_and_count():
    arch = params_arch("fashion_cnn")
    arch["conv"][1]["pool_type"] = "avg"
    model = build_model(arch)
    assert isinstance(model.features.conv1_pool, nn.MaxPool2d)  # the default
    assert isinstance(model.features.conv2_pool, nn.AvgPool2d)
    assert model.features.conv2_pool.kernel_size == 2
    assert feature_shapes(arch) == feature_shapes(params_arch("fashion_cnn")) == [(64, 14, 14), (64, 6, 6)]
    assert count_parameters(model) == SPEC_COUNTS["fashion_cnn"]
    model.eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        block = model.features
        conv = block.conv2_act(block.conv2(block.conv1_pool(block.conv1_act(block.conv1(x)))))
        assert torch.allclose(block.conv2_pool(conv), torch.nn.functional.avg_pool2d(conv, 2))
        assert not torch.allclose(block.conv2_pool(conv), torch.nn.functional.max_pool2d(conv, 2))
    # an odd size floors as max pooling does: 5x5 -> 2x2
    odd = {"input": [1, 7, 7], "conv": [{"out": 2, "kernel": 3, "pool": 2, "pool_type": "avg"}], "outputs": 2}
    assert feature_shapes(odd) == [(2, 2, 2)]
    assert build_model(odd)(torch.zeros(1, 1, 7, 7)).shape == (1, 2)


def test_existing_models_keep_max_pooling():
    for name in from_scratch_models():
        pools = [
            m for m in build_model(params_arch(name)).modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))
        ]
        assert all(isinstance(m, nn.MaxPool2d) for m in pools), name


def test_dropout_override_changes_p_not_count():
    arch = params_arch("mnist_cnn")
    arch["dropout"] = 0.3
    arch["conv"][0]["dropout"] = 0.1
    model = build_model(arch)
    assert model.classifier.fc1_drop.p == 0.3
    assert model.features.conv1_drop.p == 0.1
    assert count_parameters(model) == SPEC_COUNTS["mnist_cnn"]
    # state-dict keys do not shift when dropout is switched on or off
    assert build_model(arch).state_dict().keys() == build_model(params_arch("mnist_cnn")).state_dict().keys()
    assert params_arch("mnist_cnn")["dropout"] == 0.5  # params_arch returned a copy


def test_same_seed_same_initial_weights():
    def weights(seed):
        torch.manual_seed(seed)
        return build_model(params_arch("cifar_net")).state_dict()

    first, second, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["features.conv1.weight"], other["features.conv1.weight"])


def _with(change):
    arch = params_arch("mnist_cnn")
    change(arch)
    return arch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a["conv"][1].update(kernel="five"),
            "conv[1].kernel: must be an integer >= 1, got 'five'",
        ),
        (lambda a: a.update(dropuot=0.3), "dropuot: unknown key"),
        (lambda a: a["conv"][0].update(kernal=3), "conv[0].kernal: unknown key"),
        (lambda a: a.update(dropout=1.5), "dropout: must be a dropout probability"),
        (lambda a: a.update(hidden_activation="relux"), "hidden_activation: expected relu"),
        (lambda a: a.update(input=[28, 28]), "input: must be [channels, height, width]"),
        (lambda a: a.update(hidden=[1024, -1]), "hidden[1]: must be an integer >= 1"),
        (lambda a: a.update(global_pool="yes"), "global_pool: must be true or false"),
        (lambda a: a["conv"][0].pop("out"), "conv[0].out: missing"),
        (lambda a: a["conv"][0].update(pool=0), "conv[0].pool: must be a positive"),
        (lambda a: a.update(conv={"out": 3}), "conv: must be a list"),
        (lambda a: a.update(hidden=[]), "dropout: applies after hidden linear layers"),
        (lambda a: a.pop("outputs"), "outputs: missing"),
        (
            lambda a: a["conv"][1].update(pool_type="mean"),
            "conv[1].pool_type: expected max or avg, got 'mean'",
        ),
        (lambda a: a.update(log_softmax="yes"), "log_softmax: must be true or false"),
        (lambda a: a.update(log_softmax=True, outputs=1), "log_softmax: a LogSoftmax over one output"),
    ],
)
def test_bad_values_give_one_line_error_naming_the_key(change, message):
    with pytest.raises(ParamError) as info:
        build_model(_with(change), key="models.mnist_cnn.arch")
    text = str(info.value)
    assert text.startswith(f"models.mnist_cnn.arch.{message}")
    assert "\n" not in text


def test_collapsing_feature_map_is_a_clear_error():
    arch = {
        "input": [1, 8, 8],
        "conv": [{"out": 4, "kernel": 3, "pool": 2}, {"out": 4, "kernel": 3, "pool": 2}],
        "outputs": 2,
    }
    with pytest.raises(ParamError, match=r"^m\.arch\.conv\[1\]: feature map shrinks from 3x3 to 0x0") as info:
        build_model(arch, key="m.arch")
    assert "\n" not in str(info.value)
    with pytest.raises(ParamError, match=r"conv\[0\]: feature map shrinks"):
        feature_shapes({"input": [1, 2, 2], "conv": [{"out": 1, "kernel": 5}], "outputs": 1})


def test_minimal_arch_uses_defaults():
    model = build_model({"input": [3, 4, 4], "outputs": 3})
    assert count_parameters(model) == 3 * 4 * 4 * 3 + 3
    assert model(torch.zeros(2, 3, 4, 4)).shape == (2, 3)
