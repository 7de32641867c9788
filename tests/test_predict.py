"""Prediction on image files of any size and mode with a trained bundle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cnnpipe.cli import main
from cnnpipe.config.train import parse_config
from cnnpipe.errors import DataFormatError
from cnnpipe.models.trained import load_trained
from cnnpipe.predict import PredictionError, PredictionResult, format_results, predict_files
from cnnpipe.train.loop import train_model
from tests.helpers.bundles import save_random_bundle
from tests.helpers.toydata import toy_images, toy_params, write_dataset

RGB_ARCH = {
    "input": [3, 16, 16],
    "conv": [{"out": 4, "kernel": 3, "padding": 1, "pool": 2}],
    "hidden": [8],
    "outputs": 3,
}
BIN_ARCH = {"input": [3, 12, 12], "conv": [{"out": 2, "kernel": 3}], "global_pool": True, "outputs": 1}
GRAY_ARCH = {"input": [1, 10, 10], "conv": [{"out": 2, "kernel": 3, "pool": 2}], "outputs": 4}


def _bundle(path: Path, arch: dict, classes: list[str], shape, eval_transform, norm) -> Path:
    return save_random_bundle(
        path,
        path.parent.name,
        arch,
        seed=3,
        spread=4.0,
        classes=classes,
        normalization=norm,
        eval_transform=eval_transform,
        input_shape=shape,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    half = {"mean": [0.5] * 3, "std": [0.5] * 3}
    return {
        "rgb": _bundle(root / "rgb" / "model.pt", RGB_ARCH, ["cat", "dog", "bird"], [3, 16, 16], [], half),
        # prepared at 14×14, center-cropped to the 12×12 the network takes
        "bin": _bundle(
            root / "bin" / "model.pt",
            BIN_ARCH,
            ["horses", "humans"],
            [3, 14, 14],
            [{"op": "center_crop", "size": [12, 12]}],
            half,
        ),
        "gray": _bundle(
            root / "gray" / "model.pt",
            GRAY_ARCH,
            list("0123"),
            [1, 10, 10],
            [],
            {"mean": [0.3], "std": [0.2]},
        ),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    files = {}
    rgba = Image.fromarray(rng.integers(0, 256, (30, 20, 4), dtype=np.uint8), "RGBA")
    files["rgba"] = root / "a.png"
    rgba.save(files["rgba"])
    files["jpeg"] = root / "b.jpg"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB").save(files["jpeg"], quality=90)
    files["gray"] = root / "c.png"
    Image.fromarray(rng.integers(0, 256, (8, 11), dtype=np.uint8), "L").save(files["gray"])
    palette = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), "RGB").quantize(16)
    assert palette.mode == "P"
    files["palette"] = root / "d.png"
    palette.save(files["palette"])
    files["text"] = root / "notes.png"
    files["text"].write_text("this is not an image\n")
    return files


def _outputs_by_hand(model_path: Path, image_path: Path) -> torch.Tensor:
    """The model's raw outputs computed with PIL and torch directly, not through cnnpipe's pipeline."""
    trained = load_trained(model_path)
    c, h, w = trained.input_shape
    with Image.open(image_path) as img:
        img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
    x = torch.from_numpy(np.array(img, dtype=np.float32) / 255.0)
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    for op in trained.eval_transform:
        assert op["op"] == "center_crop"
        x = TF.center_crop(x, op["size"])
    mean = torch.tensor(trained.normalization["mean"]).view(-1, 1, 1)
    std = torch.tensor(trained.normalization["std"]).view(-1, 1, 1)
    with torch.no_grad():
        return trained.model(((x - mean) / std)[None])[0]


def _by_hand(model_path: Path, image_path: Path) -> np.ndarray:
    """Class probabilities from :func:`_outputs_by_hand`."""
    trained = load_trained(model_path)
    logits = _outputs_by_hand(model_path, image_path).double()
    if trained.log_probs:
        return logits.exp().numpy()
    if trained.binary:
        p = torch.sigmoid(logits[0]).item()
        return np.array([1 - p, p])
    return torch.softmax(logits, 0).numpy()


@pytest.mark.parametrize("model", ["rgb", "bin", "gray"])
def test_predictions_match_a_hand_computation(models, images, model):
    paths = [images[k] for k in ("rgba", "jpeg", "gray", "palette")]
    results = predict_files(models[model], paths, top_k=5)
    classes = load_trained(models[model]).classes
    assert [r.path for r in results] == [str(p) for p in paths]
    for result, path in zip(results, paths, strict=True):
        assert isinstance(result, PredictionResult)
        expected = _by_hand(models[model], path)
        best = int(np.argmax(expected))
        assert result.label == classes[best] and result.label in classes
        assert 0.0 <= result.probability <= 1.0
        assert result.probability == pytest.approx(expected[best], abs=1e-5)
        assert len(result.top) == len(classes) and result.top[0] == (result.label, result.probability)
        assert sum(p for _, p in result.top) == pytest.approx(1.0)
        assert [p for _, p in result.top] == sorted((p for _, p in result.top), reverse=True)


def test_bad_files_give_one_line_errors_and_others_still_run(models, images, tmp_path):
    paths = [images["text"], images["jpeg"], tmp_path / "missing.png", tmp_path, images["rgba"]]
    results = predict_files(models["rgb"], paths)
    kinds = [type(r) for r in results]
    assert kinds == [PredictionError, PredictionResult, PredictionError, PredictionError, PredictionResult]
    assert "not an image" in results[0].reason and "no such file" in results[2].reason
    assert all("\n" not in r.reason for r in results if isinstance(r, PredictionError))
    assert results[1].top == [(results[1].label, results[1].probability)]  # top_k = 1

    lines = format_results(results).splitlines()
    assert len(lines) == 5
    assert lines[0] == f"{images['text']}: error: {results[0].reason}"
    assert lines[1] == f"{images['jpeg']}: {results[1].label} (prob {results[1].probability:.2f})"


def test_binary_probability_is_for_the_predicted_class(models, images):
    (result,) = predict_files(models["bin"], [images["jpeg"]], top_k=2)
    expected = _by_hand(models["bin"], images["jpeg"])
    assert result.probability >= 0.5
    assert dict(result.top) == pytest.approx({"horses": expected[0], "humans": expected[1]}, abs=1e-6)
    text = format_results([result])
    assert text.startswith(f"{images['jpeg']}: {result.label} (prob ") and "; next: " in text


def _logits_line(line: str) -> tuple[str, list[float], int]:
    """(class name, printed outputs, printed index) of one ``--logits`` line."""
    head, _, tail = line.partition("; outputs [")
    values, _, index = tail.partition("], max index ")
    label = head.split(": ", 1)[1].split(" (prob ")[0]
    return label, [float(v) for v in values.split(", ")], int(index)


@pytest.mark.parametrize("model", ["rgb", "bin", "gray"])
def test_logits_option_prints_raw_outputs_and_the_torch_max_index(models, images, model, capsys):
    paths = [images[k] for k in ("rgba", "jpeg", "palette")]
    main(["predict", str(models[model]), *map(str, paths), "--logits"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(paths)
    plain = format_results(predict_files(models[model], paths)).splitlines()
    classes = load_trained(models[model]).classes
    for line, before, path in zip(lines, plain, paths, strict=True):
        assert line.startswith(before + "; outputs [")  # today's class and probability come first
        label, printed, index = _logits_line(line)
        raw = _outputs_by_hand(models[model], path)
        assert printed == pytest.approx(raw.tolist(), abs=1e-4)
        assert index == int(torch.max(raw[None], 1)[1][0])
        assert len(printed) == len(raw) == (1 if model == "bin" else len(classes))
        if model != "bin":  # the arg-max of the logits is the predicted class
            assert classes[index] == label
        else:  # a single logit: torch.max has one column to pick; the sign gives the class
            assert index == 0 and label == classes[int(raw[0] > 0)]
    assert "outputs" not in "\n".join(plain)  # only with --logits


@pytest.fixture(scope="module")
def trained_log_softmax(tmp_path_factory) -> Path:
    """A toy MLP ending in LogSoftmax, trained a few epochs with NLL (the fashion_dnn recipe)."""
    root = tmp_path_factory.mktemp("trained")
    write_dataset(root)
    params = toy_params(train={"loss": "nll", "epochs": 4})
    params["models"]["toy_cnn"]["arch"].update(conv=[], hidden=[16], dropout=0.0, log_softmax=True)
    train_model(parse_config("toy_cnn", params), root=root, log=lambda _: None)
    return root / "models" / "toy_cnn" / "model.pt"


def test_log_softmax_model_predicts_the_exp_of_its_outputs(trained_log_softmax, tmp_path, capsys):
    trained = load_trained(trained_log_softmax)
    assert trained.log_probs and trained.classes == ["c0", "c1", "c2"]
    images, labels = toy_images(6, 3, seed=11)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"toy{i}.png")
        Image.fromarray(image[0], "L").save(paths[-1])
    results = predict_files(trained_log_softmax, paths, top_k=3)
    for result, path in zip(results, paths, strict=True):
        outputs = _outputs_by_hand(trained_log_softmax, path).double()
        assert (outputs <= 0).all()
        assert result.outputs == pytest.approx(outputs.tolist(), abs=1e-5)
        expected = dict(zip(trained.classes, outputs.exp().tolist(), strict=True))
        assert dict(result.top) == pytest.approx(expected, abs=1e-6)
        assert sum(p for _, p in result.top) == pytest.approx(1.0)
        assert result.label == trained.classes[result.max_index]
    # the trained model finds the bright patch of each class
    assert [r.label for r in results] == [f"c{k}" for k in labels]
    main(["predict", str(trained_log_softmax), str(paths[0]), "--logits"])
    label, printed, index = _logits_line(capsys.readouterr().out.strip())
    assert label == results[0].label == trained.classes[index]
    assert printed == pytest.approx(results[0].outputs, abs=1e-4)


def test_missing_or_damaged_model_is_an_error(images, tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        predict_files(tmp_path / "nope.pt", [images["jpeg"]])
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataFormatError, match="not a cnnpipe model"):
        predict_files(bad, [images["jpeg"]])


def test_predict_leaves_matplotlib_and_sklearn_unloaded():
    """`cnnpipe predict` starts fast: neither the figures nor the metrics of evaluate are imported."""
    code = "import sys, cnnpipe.predict; print(sorted({'matplotlib', 'sklearn'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
