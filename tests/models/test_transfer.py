"""Transfer models: weights from a local file, freezing, the optimizer's parameters, heads, errors.

None of these tests needs downloaded weights: a randomly initialised torchvision backbone is
saved to a temporary file and named in params as ``weights_file``, standing in for the
ImageNet file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
import yaml

from cnnpipe.config.train import parse_config, parse_train
from cnnpipe.data.arrays import PreparedWriter
from cnnpipe.errors import ParamError
from cnnpipe.models.network import build_network, parse_any_arch
from cnnpipe.models.trained import load_trained
from cnnpipe.models.transfer import IMAGENET_MEAN, IMAGENET_STD, TransferNet, head_parameter_names
from cnnpipe.train.loop import train_model
from cnnpipe.train.optim import build_optimizer, split_aux
from tests.helpers.evaluation import evaluate_params

ROOT = Path(__file__).resolve().parents[2]
BACKBONES = {  # backbone -> (input size used here, torchvision kwargs of its ImageNet weights)
    "inception_v3": (299, {"aux_logits": True, "init_weights": True}),
    "squeezenet1_0": (64, {}),
    "resnet18": (64, {}),
}
RMSPROP = {"optimizer": "rmsprop", "lr": 0.01, "loss": "cross_entropy", "batch_size": 2, "epochs": 1}


def _backbone_file(tmp_path: Path, backbone: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised torchvision backbone saved as its weights file would be."""
    torch.manual_seed(123)
    state = torchvision.models.get_model(backbone, weights=None, **BACKBONES[backbone][1]).state_dict()
    path = tmp_path / f"{backbone}.pth"
    torch.save(state, path)
    return path, state


def _arch(backbone: str, weights_file: Path | None = None, **overrides) -> dict:
    size = BACKBONES[backbone][0]
    arch = {
        "backbone": backbone,
        "weights": "IMAGENET1K_V1" if weights_file else "none",
        "weights_file": str(weights_file) if weights_file else None,
        "freeze": "backbone",
        "hidden": [],
        "dropout": 0.0,
        "input": [3, size, size],
        "outputs": 3,
    }
    if backbone == "inception_v3":
        arch.update(freeze="Mixed_7c", hidden=[1024], aux_logits=True, aux_weight=0.4)
    arch.update(overrides)
    return arch


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_weights_file_is_loaded_into_the_backbone(tmp_path, backbone):
    path, saved = _backbone_file(tmp_path, backbone)
    model = build_network(_arch(backbone, path), key="models.m.arch")
    loaded = model.net.state_dict()
    head = set(head_parameter_names(model.arch, model.net))
    compared = 0
    for name, tensor in saved.items():
        if name in head or name not in loaded:  # the replaced head has new shapes
            continue
        assert torch.equal(loaded[name], tensor), name
        compared += 1
    assert compared > 0.9 * len(saved)
    # ...and the head is new: one output per class asked for
    size = BACKBONES[backbone][0]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, size, size)).shape == (1, 3)


FREEZE_CASES = [
    ("inception_v3", "Mixed_7c", {"fc.", "AuxLogits.fc."}),
    ("squeezenet1_0", "backbone", {"classifier.1."}),
    ("resnet18", "backbone", {"fc."}),
    ("resnet18", "layer3", {"layer4.", "fc."}),
    ("resnet18", "none", None),  # everything trains
]


@pytest.mark.parametrize(("backbone", "freeze", "trainable_prefixes"), FREEZE_CASES)
def test_one_step_changes_exactly_the_trainable_parameters(tmp_path, backbone, freeze, trainable_prefixes):
    path, _ = _backbone_file(tmp_path, backbone)
    model = build_network(_arch(backbone, path, freeze=freeze), key="models.m.arch")
    named = dict(model.net.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    if trainable_prefixes is None:
        assert trainable == set(named)
    else:
        assert trainable == {n for n in named if n.startswith(tuple(trainable_prefixes))}

    optimizer = build_optimizer(model.parameters(), parse_train(RMSPROP, "models.m.train"))
    in_optimizer = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(in_optimizer) == len(trainable)
    assert {id(p) for p in in_optimizer} == {id(named[n]) for n in trainable}

    before = {n: p.detach().clone() for n, p in named.items()}
    buffers = {n: b.clone() for n, b in model.net.named_buffers()}
    size = BACKBONES[backbone][0]
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, size, size), torch.tensor([0, 2])
    logits, aux = split_aux(model.train()(x))
    loss = F.cross_entropy(logits, y)
    if aux is not None:
        loss = loss + 0.4 * F.cross_entropy(aux, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    for name, param in named.items():
        changed = not torch.equal(param.detach(), before[name])
        assert changed == (name in trainable), f"{name}: changed={changed}, trainable={name in trainable}"
    if freeze != "none" and backbone != "squeezenet1_0":  # SqueezeNet has no BatchNorm
        # frozen BatchNorm layers keep their pretrained running statistics
        frozen_bn = [n for n in buffers if n.endswith("running_mean") and n.rsplit(".", 1)[0] + ".weight"
                     not in trainable]  # fmt: skip
        assert frozen_bn
        for name in frozen_bn:
            assert torch.equal(dict(model.net.named_buffers())[name], buffers[name]), name


def test_inception_head_and_aux_logits():
    model = build_network(_arch("inception_v3", outputs=2, dropout=0.5), key="a")
    assert isinstance(model, TransferNet)
    fc = model.net.fc
    linears = [m for m in fc if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 1024), (1024, 2)]
    assert [type(m).__name__ for m in fc] == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert model.net.AuxLogits.fc.out_features == 2
    x = torch.randn(2, 3, 299, 299)
    train_out = model.train()(x)
    assert train_out.logits.shape == train_out.aux_logits.shape == (2, 2)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 2)
    no_aux = build_network(_arch("inception_v3", aux_logits=False, input=[3, 160, 160]), key="a")
    assert no_aux.net.AuxLogits is None
    assert isinstance(no_aux.train()(torch.randn(2, 3, 160, 160)), torch.Tensor)


def test_squeezenet_head_is_a_1x1_conv_with_num_classes():
    model = build_network(_arch("squeezenet1_0", outputs=5, dropout=0.3), key="a")
    conv = model.net.classifier[1]
    assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1)
    assert (conv.in_channels, conv.out_channels) == (512, 5) and model.net.num_classes == 5
    assert model.net.classifier[0].p == 0.3
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 5)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_imagenet_normalization_is_what_the_weights_expect(backbone):
    for weights in torchvision.models.get_model_weights(backbone):
        transforms = weights.transforms()
        assert tuple(transforms.mean) == IMAGENET_MEAN and tuple(transforms.std) == IMAGENET_STD


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backbone": "vgg99"}, "models.m.arch.backbone: expected one of inception_v3"),
        ({"weights": "IMAGENET1K_V9"}, "arch.weights: resnet18 weights are IMAGENET1K_V1, DEFAULT or none"),
        ({"freeze": "layer9"}, "no top-level module 'layer9'; use none, backbone, until_param:<name> or one"),
        ({"aux_logits": True}, "only Inception-V3 has auxiliary logits"),
        ({"input": [1, 64, 64]}, "takes 3-channel (RGB) images"),
        ({"weights_file": "w.pth"}, "weights_file: is set but models.m.arch.weights is none"),
        ({"colour": 1}, "models.m.arch.colour: unknown key; expected one of"),
    ],
)
def test_arch_errors_name_the_param(overrides, message):
    with pytest.raises(ParamError) as info:
        parse_any_arch({**_arch("resnet18"), **overrides}, key="models.m.arch")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_squeezenet_rejects_hidden_layers_and_a_single_logit():
    with pytest.raises(ParamError, match="single 1x1 convolution"):
        parse_any_arch(_arch("squeezenet1_0", hidden=[64]), key="a")
    with pytest.raises(ParamError, match="ends in a ReLU"):
        parse_any_arch(_arch("squeezenet1_0", outputs=1), key="a")


def test_an_input_too_small_for_the_backbone():
    with pytest.raises(ParamError, match=r"models\.m\.arch\.input: 8x8 is too small for squeezenet1_0"):
        parse_any_arch(_arch("squeezenet1_0", input=[3, 8, 8]), key="models.m.arch")


def test_inception_aux_logits_need_a_full_size_input():
    with pytest.raises(ParamError, match="150x150 is too small for inception_v3 with aux_logits"):
        parse_any_arch(_arch("inception_v3", input=[3, 150, 150]), key="a")


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ParamError, match=r"models.m.arch.weights_file: .*nothing.pth does not exist"):
        build_network(_arch("resnet18", tmp_path / "nothing.pth"), key="models.m.arch")


def test_a_file_of_other_weights_is_refused(tmp_path):
    path, _ = _backbone_file(tmp_path, "squeezenet1_0")
    with pytest.raises(ParamError, match="does not hold resnet18 IMAGENET1K_V1 weights"):
        build_network(_arch("resnet18", path), key="models.m.arch")


# --- through the train and evaluate stages -------------------------------------------------


def _rgb_workspace(root: Path, classes: int = 3, sizes=(12, 6, 6)) -> None:
    """data/prepared/rgb/: 3×32×32 images whose dominant colour channel is the class."""
    rng = np.random.default_rng(0)
    with PreparedWriter(root / "data" / "prepared" / "rgb") as writer:
        for split, n in zip(("train", "valid", "test"), sizes, strict=True):
            labels = np.arange(n) % classes
            images = rng.integers(0, 60, size=(n, 3, 32, 32), dtype=np.uint8)
            images[np.arange(n), labels % 3] += 150
            writer.write_split(split, images, labels.astype(np.int64))
        writer.set_classes([f"c{k}" for k in range(classes)], dataset="rgb")


def _params(name: str, arch: dict, epochs: int = 1) -> dict:
    size = arch["input"][1:]
    return {
        "run": {"device": "cpu", "max_epochs": None},
        "evaluate": {"batch_size": 8, "grid_images": 4, "worst_images": 2},
        "models": {
            name: {
                "dataset": "rgb",
                "arch": arch,
                "normalize": "imagenet",
                "augment": [{"op": "random_resized_crop", "size": size}, {"op": "hflip", "p": 0.5}],
                "eval_transform": [{"op": "resize", "size": size}],
                "train": {**RMSPROP, "lr": 0.001, "batch_size": 4, "epochs": epochs},
            }
        },
    }


@pytest.mark.parametrize("backbone", ["inception_v3", "squeezenet1_0"])
def test_transfer_model_trains_evaluates_and_reloads_offline(tmp_path, monkeypatch, backbone):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    _rgb_workspace(tmp_path)
    path, _ = _backbone_file(tmp_path, backbone)
    params = _params("tl", _arch(backbone, path))
    summary = train_model(parse_config("tl", params), root=tmp_path, log=lambda _: None)
    assert len(summary["history"]) == 1 and np.isfinite(summary["history"][0]["train_loss"])
    result = evaluate_params("tl", params, root=tmp_path, log=lambda _: None)
    assert result["info"]["backbone_weights"] == "IMAGENET1K_V1" and result["info"]["n_test"] == 6
    assert (tmp_path / "plots" / "tl" / "figures" / "confusion_matrix.png").exists()

    # the bundle holds every weight: it reloads without the weights file or a download
    path.unlink()
    trained = load_trained(tmp_path / "models" / "tl" / "model.pt")
    saved = torch.load(tmp_path / "models" / "tl" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(trained.model.state_dict()[k], v) for k, v in saved.items())


def test_random_init_says_so_in_the_metrics(tmp_path):
    _rgb_workspace(tmp_path)
    params = _params("tl", _arch("resnet18"))
    train_model(parse_config("tl", params), root=tmp_path, log=lambda _: None)
    result = evaluate_params("tl", params, root=tmp_path, log=lambda _: None)
    assert result["info"]["backbone_weights"] == "none (random init)"
    written = json.loads((tmp_path / "metrics" / "tl.info.json").read_text())
    assert written["backbone_weights"] == "none (random init)"


def test_missing_pretrained_weights_fail_fast_in_one_line_and_write_nothing(tmp_path):
    _rgb_workspace(tmp_path)
    arch = _arch("resnet18", weights="IMAGENET1K_V1")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params("tl", arch)))
    torch_home = tmp_path / "torch-home"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TORCH_HOME": str(torch_home),
           "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "train.py"), "tl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert time.monotonic() - start < 120
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    error = lines[-1]
    assert error.startswith("error: models.tl.arch.weights: resnet18 IMAGENET1K_V1 weights are needed")
    cached = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"{cached} is missing" in error
    assert f"copy that file to {cached.parent}" in error and "set models.tl.arch.weights_file" in error
    for output in ("models/tl", "dvclive/tl", "plots/tl", "metrics/tl.json"):
        assert not (tmp_path / output).exists(), output
