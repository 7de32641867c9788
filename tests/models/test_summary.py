"""`cnnpipe summary MODEL` against the sources' numbers, read from the printed table of params.yaml's models.

The parameter counts are SPEC's (the source's torchsummary table for fashion_cnn); the shapes
are checked against the convolution arithmetic ⌊(n + 2p − m)/s⌋ + 1 applied to params.yaml's
own conv blocks, so a change of params changes what is expected, not the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnpipe import cli
from cnnpipe.config.load import load_params
from cnnpipe.explore.kernels import conv_output_size
from cnnpipe.models import transfer

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"
ROW = re.compile(
    r"^(?P<indent> *)(?P<name>\S+) +(?P<type>\S+) +(?P<shape>\([^)]*\)|-)"
    r"(?: +(?P<params>[\d,]+))?(?: +(?P<status>trainable|frozen|partly frozen))?$"
)


def _zoo_models() -> list[str]:
    models = load_params(PARAMS)["models"]
    return [name for name, spec in models.items() if "backbone" not in spec["arch"]]


def _summary(capsys, *models: str, depth: int | None = None) -> str:
    args = ["summary", *models, "--params", str(PARAMS)]
    if depth is not None:
        args += ["--depth", str(depth)]
    cli.main(args)
    return capsys.readouterr().out


def _parse(text: str) -> tuple[dict[str, dict], dict[str, int]]:
    """(rows by layer name in order, totals) of one printed summary."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows: dict[str, dict] = {}
    for line in lines[start:]:
        if not line.strip():
            break
        match = ROW.match(line)
        assert match, f"unparsable summary row: {line!r}"
        shape = match["shape"]
        rows[match["name"]] = {
            "depth": len(match["indent"]) // 2 + 1,
            "type": match["type"],
            "shape": () if shape == "-" else tuple(s.strip() for s in shape[1:-1].split(",")),
            "params": int(match["params"].replace(",", "")) if match["params"] else None,
            "status": match["status"] or "",
        }
    totals = {}
    for key in ("total params", "trainable params", "frozen params"):
        line = next(line for line in lines if line.startswith(f"{key}:"))
        totals[key] = int(line.split(":")[1].strip().replace(",", ""))
    return rows, totals


def _hw(row: dict) -> tuple[int, int]:
    return int(row["shape"][-2]), int(row["shape"][-1])


def _leaf_params(rows: dict[str, dict]) -> int:
    """Sum of the rows nothing is listed under: every parameter counted once."""
    names = list(rows)
    total = 0
    for i, name in enumerate(names):
        deeper = i + 1 < len(names) and rows[names[i + 1]]["depth"] > rows[name]["depth"]
        if not deeper:
            total += rows[name]["params"] or 0
    return total


def test_fashion_cnn_prints_the_sources_parameter_counts(capsys):
    rows, totals = _parse(_summary(capsys, "fashion_cnn"))
    with_params = [(name, row["params"]) for name, row in rows.items() if row["params"]]
    assert with_params == [
        ("features.conv1", 640),
        ("features.conv2", 36_928),
        ("classifier.fc1", 295_040),
        ("classifier.out", 1_290),
    ]
    assert totals == {"total params": 333_898, "trainable params": 333_898, "frozen params": 0}
    assert all(rows[name]["status"] == "trainable" for name, _ in with_params)
    assert rows["features.conv1"]["type"] == "Conv2d" and rows["classifier.fc1"]["type"] == "Linear"
    assert rows["features.conv1"]["shape"][:2] == ("N", "64")
    # the flattened width is what the first linear layer's 295,040 = 128 × (width + 1) implies
    width = int(rows["classifier.flatten"]["shape"][1])
    assert 128 * (width + 1) == 295_040


@pytest.mark.parametrize("model", _zoo_models())
def test_every_layer_output_follows_the_convolution_arithmetic(capsys, model):
    """⌊(n + 2p − m)/s⌋ + 1 for each conv block of params.yaml (pooling: m = s = pool, p = 0)."""
    arch = load_params(PARAMS)["models"][model]["arch"]
    rows, totals = _parse(_summary(capsys, model))
    channels, height, width = arch["input"]
    for i, block in enumerate(arch["conv"], start=1):
        k, p, s = block["kernel"], block.get("padding", 0), block.get("stride", 1)
        height, width = conv_output_size(height, k, p, s), conv_output_size(width, k, p, s)
        conv = rows[f"features.conv{i}"]
        assert conv["shape"] == ("N", str(block["out"]), str(height), str(width)), (model, i)
        pool = block.get("pool") or 1
        if pool > 1:
            height, width = conv_output_size(height, pool, 0, pool), conv_output_size(width, pool, 0, pool)
            assert _hw(rows[f"features.conv{i}_pool"]) == (height, width), (model, i)
        channels = block["out"]
    flat = channels if arch.get("global_pool") else channels * height * width
    assert rows["classifier.flatten"]["shape"] == ("N", str(flat))
    assert rows["classifier.out"]["shape"] == ("N", str(arch["outputs"]))
    assert _leaf_params(rows) == totals["total params"]


def test_mnist_cnn_flattens_64_maps_of_7x7_into_3136(capsys):
    rows, totals = _parse(_summary(capsys, "mnist_cnn"))
    assert rows["features.conv2_pool"]["shape"] == ("N", "64", "7", "7")
    assert rows["classifier.flatten"]["shape"] == ("N", "3136")
    assert totals["total params"] == 3_274_634


def test_smile_cnn_pools_256_maps_of_8x8_to_one_logit(capsys):
    rows, totals = _parse(_summary(capsys, "smile_cnn"))
    assert rows["features.conv4"]["shape"] == ("N", "256", "8", "8")
    assert rows["features.global_pool"]["shape"] == ("N", "256", "1", "1")
    assert rows["classifier.flatten"]["shape"] == ("N", "256")
    assert rows["classifier.out"]["shape"] == ("N", "1")
    assert totals["total params"] == 388_673


@pytest.fixture
def no_weights(monkeypatch):
    """Fail loudly should a summary try to load (or download) pretrained weights."""

    def refuse(*_, **__):
        raise AssertionError("the summary must not load pretrained weights")

    monkeypatch.setattr(transfer, "load_pretrained_state", refuse)


def test_transfer_model_splits_frozen_backbone_and_trainable_head(capsys, no_weights):
    text = _summary(capsys, "resnet18_rps", depth=1)
    rows, totals = _parse(text)
    outputs = load_params(PARAMS)["models"]["resnet18_rps"]["arch"]["outputs"]
    assert rows["fc"]["status"] == "trainable" and rows["fc"]["params"] == 512 * outputs + outputs
    assert rows["conv1"]["status"] == "frozen" and rows["layer4"]["status"] == "frozen"
    assert rows["layer4"]["shape"] == ("N", "512", "7", "7")
    assert totals["trainable params"] == rows["fc"]["params"]
    assert totals["frozen params"] == totals["total params"] - totals["trainable params"] > 11_000_000
    assert _leaf_params(rows) == totals["total params"]
    assert "input (N, 3, 224, 224)" in text


def test_inception_summary_shows_the_auxiliary_head_and_what_trains(capsys, no_weights):
    arch = load_params(PARAMS)["models"]["inception_horses"]["arch"]
    rows, totals = _parse(_summary(capsys, "inception_horses"))
    n = arch["outputs"]
    hidden = arch["hidden"][0]
    head = (2048 * hidden + hidden) + (hidden * n + n)
    aux = 768 * n + n
    # freeze until_param:Mixed_7c (the source's loop): the auxiliary head lies before the cut
    assert arch["freeze"] == "until_param:Mixed_7c"
    assert rows["AuxLogits.fc"]["status"] == "frozen" and rows["AuxLogits.fc"]["params"] == aux
    assert rows["Mixed_7c"]["shape"] == ("N", "2048", "8", "8")
    assert all(row["status"] in ("frozen", "") for name, row in rows.items() if name.startswith("Mixed_6"))
    in_7c = {row["status"] for name, row in rows.items() if name.startswith("Mixed_7c.")}
    assert {"frozen", "trainable"} <= in_7c or "partly frozen" in in_7c  # the rest of Mixed_7c trains
    assert totals["trainable params"] > head  # the exact count: tests/test_recipes.py
    assert _leaf_params(rows) == totals["total params"]


def test_unknown_model_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["summary", "no_such_model", "--params", str(PARAMS)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: models.no_such_model: no such model") and err.count("\n") == 1
