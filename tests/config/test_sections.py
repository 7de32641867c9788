"""Typed settings of the data, datasets, subsets, run and evaluate sections, and the error format."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnpipe.checks import integer, param_error
from cnnpipe.config.data import DatasetSettings, SubsetSettings, parse_data, parse_dataset, parse_subset
from cnnpipe.config.evaluate import EvaluateSettings, parse_evaluate
from cnnpipe.config.load import load_params
from cnnpipe.config.run import DistributedSettings, RunSettings, parse_run
from cnnpipe.errors import ParamError

PARAMS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")


def test_every_section_of_params_yaml_parses():
    data = parse_data(PARAMS)
    assert data.mirror is None and data.archive_limits() == {"max_member_mb": 256, "max_ratio": 100}
    assert parse_dataset(PARAMS, "mnist") == DatasetSettings(name="mnist", valid_first=10000)
    sea = parse_dataset(PARAMS, "sea")
    assert sea.image_size == (100, 100) and sea.as_mapping()["path"] == "data/raw/sea/sea_creatures.zip"
    assert parse_dataset(PARAMS, "celeba") == DatasetSettings(name="celeba")
    cats_dogs = parse_dataset(PARAMS, "cats_vs_dogs")
    assert cats_dogs.image_size == (300, 300) and cats_dogs.split_seed == 0
    assert cats_dogs.valid_fraction > 0 and cats_dogs.test_fraction > 0
    assert set(cats_dogs.as_mapping()) == {"image_size", "valid_fraction", "test_fraction", "split_seed"}
    assert parse_subset(PARAMS, "cifar2") == SubsetSettings("cifar2", "cifar10", classes=("airplane", "bird"))
    smile = parse_subset(PARAMS, "celeba_smile")
    assert smile.sizes == {"train": 16000, "valid": 1000, "test": None} and smile.attribute == "Smiling"
    assert parse_evaluate(PARAMS) == EvaluateSettings(batch_size=256, grid_images=16, worst_images=16)
    assert parse_run(PARAMS) == RunSettings(
        device="auto", max_epochs=None, distributed=DistributedSettings(1, 1, None)
    )


def test_absent_limits_keep_the_library_defaults_and_unread_keys_stay_unchecked():
    assert parse_data({}).archive_limits() == {}
    assert parse_data({"data": {"max_ratio": 0, "mirror": 3}}, read=("max_member_mb",)).max_ratio is None
    sea = parse_dataset({"datasets": {"sea": {"path": "x.zip", "image_size": "big"}}}, "sea", read=("path",))
    assert sea == DatasetSettings(name="sea", path="x.zip")
    with pytest.raises(ValueError, match="read= names mirrror"):
        parse_data({}, read=("mirrror",))


@pytest.mark.parametrize(
    ("parse", "params", "expected"),
    [
        (parse_data, {"data": {"max_ratio": 0}}, "data.max_ratio: must be > 0, got 0"),
        (parse_data, {"data": {"mirorr": "x"}}, "data.mirorr: unknown key; expected one of mirror"),
        (lambda p: parse_dataset(p, "rps"), {"datasets": {"rps": {"valid_fraction": 1.5}}},
         "datasets.rps.valid_fraction: must be a fraction with 0 <= f < 1, got 1.5"),
        (lambda p: parse_dataset(p, "cats_vs_dogs"), {"datasets": {"cats_vs_dogs": {"test_fraction": -0.1}}},
         "datasets.cats_vs_dogs.test_fraction: must be a fraction with 0 <= f < 1, got -0.1"),
        (lambda p: parse_dataset(p, "rps"), {"datasets": {"rps": {"image_size": [0, 3]}}},
         "datasets.rps.image_size: must be [height, width] or a single size in pixels, got [0, 3]"),
        (lambda p: parse_dataset(p, "mnist"), {"datasets": {"mnist": {"valid_first": -1}}},
         "datasets.mnist.valid_first: must be an integer >= 0, got -1"),
        (lambda p: parse_dataset(p, "sea").need("path"), {}, "datasets.sea.path: missing"),
        (lambda p: parse_subset(p, "s"), {"subsets": {"s": {"source": "cifar10"}}},
         "subsets.s: needs either 'classes' or 'attribute'"),
        (lambda p: parse_subset(p, "s"), {"subsets": {"s": {"source": "celeba", "attribute": "Smiling",
                                                           "train_size": -2}}},
         "subsets.s.train_size: must be an integer >= 0, got -2"),
        (parse_evaluate, {"evaluate": {"batch_size": 0, "grid_images": 1, "worst_images": 1}},
         "evaluate.batch_size: must be an integer >= 1, got 0"),
        (parse_evaluate, {"evaluate": {"batch_size": 8, "grid_images": 1}}, "evaluate.worst_images: missing"),
        (
            parse_run,
            {"run": {"device": "gpu"}},
            "run.device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'",
        ),
    ],
)  # fmt: skip
def test_bad_values_are_one_line_naming_the_full_key(parse, params, expected):
    with pytest.raises(ParamError) as info:
        parse(params)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_one_error_format():
    assert (
        str(param_error("models.m.train.lr", "must be > 0", -1)) == "models.m.train.lr: must be > 0, got -1"
    )
    with pytest.raises(ParamError, match=r"^evaluate\.grid_images: must be an integer >= 0, got True$"):
        integer(True, "evaluate.grid_images", 0)
