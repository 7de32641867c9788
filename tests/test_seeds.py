"""The comparisons of `cnnpipe seeds` (src/cnnpipe/seeds.py) against params.yaml and the Makefile.

Each variant's overrides are applied to a copy of params.yaml with DVC's own Hydra override
code, as `dvc exp run -S` does, and the result must be a valid model config.
"""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from dvc.utils.hydra import apply_overrides

from cnnpipe import seeds
from cnnpipe.cli import build_parser
from cnnpipe.compare import Row, caption_variants, select_experiments, to_markdown, variants_table
from cnnpipe.config.train import parse_config
from cnnpipe.errors import CnnpipeError
from cnnpipe.models.network import build_network
from cnnpipe.train.optim import build_loss, split_aux
from cnnpipe.transforms.pipeline import InputPipeline

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
VARIANTS = [(c, v) for c in seeds.COMPARISONS.values() for v in c.variants]


def _id(pair) -> str:
    return pair[1].name


def test_the_six_comparisons_of_the_sources():
    assert list(seeds.COMPARISONS) == ["sea", "horses", "inception", "cifar2", "fashion", "mnist"]
    assert {c: len(seeds.COMPARISONS[c].variants) for c in seeds.COMPARISONS} == {
        "sea": 3, "horses": 3, "inception": 2, "cifar2": 2, "fashion": 2, "mnist": 2,
    }  # fmt: skip
    assert seeds.COMPARISONS["cifar2"].models == ["cifar2_fc", "cifar2_fc_deep"]
    assert seeds.COMPARISONS["fashion"].models == ["fashion_dnn", "fashion_cnn"]


def test_experiment_names_are_unique_and_valid_git_ref_names():
    names = [v.name for _, v in VARIANTS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names), names


@pytest.mark.parametrize("pair", VARIANTS, ids=_id)
def test_every_override_key_and_model_exists_in_params_yaml(pair):
    _, variant = pair
    assert variant.model in PARAMS["models"]
    for override in variant.overrides:
        key = seeds.override_key(override)
        assert seeds.params_keys(PARAMS, key), f"{variant.name}: {key} is not in params.yaml"
        assert key.startswith(f"models.{variant.model}."), (variant.name, key)  # its own model's


def _resolved(tmp_path: Path, variant: seeds.Variant, extra=()) -> dict:
    """params.yaml after the variant's `-S` overrides, applied by DVC's code."""
    path = tmp_path / f"{variant.name}.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    apply_overrides(path, seeds.merged_overrides(variant, extra))
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("pair", VARIANTS, ids=_id)
def test_every_variant_resolves_to_a_valid_model_config(pair, tmp_path):
    _, variant = pair
    params = _resolved(tmp_path, variant)
    config = parse_config(variant.model, params)  # raises on an invalid value (e.g. an unknown op)
    # ...and its input pipelines turn the images as stored into what the network takes
    stored = params["datasets"].get(config.dataset, {}).get("image_size")
    if stored is not None:
        for ops in (config.augment, config.eval_transform):
            pipeline = InputPipeline.build(ops, {"mean": [0.0] * 3, "std": [1.0] * 3}, key=variant.name)
            out = pipeline.output_size(stored)
            assert tuple(out) == tuple(config.arch.input[1:]), (variant.name, ops)
    for name, model in params["models"].items():  # no other model touched
        if name != variant.model:
            assert model == PARAMS["models"][name], name


@pytest.mark.parametrize("pair", VARIANTS, ids=_id)
def test_every_variant_trains_a_step_on_images_of_the_stored_size(pair, tmp_path):
    """What a variant's experiment runs, in-process: its network, inputs, loss and a backward pass.

    tests/demo/test_comparisons.py runs two comparisons end to end; this covers every variant's own
    settings (a dropout, an augment list) at the cost of one step.
    """
    _, variant = pair
    params = _resolved(tmp_path, variant, [f"models.{variant.model}.arch.weights=none"]
                       if "backbone" in PARAMS["models"][variant.model]["arch"] else [])  # fmt: skip
    config = parse_config(variant.model, params)
    torch.manual_seed(0)
    net = build_network(config.arch, key=variant.name).train()
    channels, *stored = config.arch.input
    stored = params["datasets"].get(config.dataset, {}).get("image_size") or stored
    images = torch.randint(0, 256, (2, channels, *stored), dtype=torch.uint8)
    pipeline = InputPipeline.build(config.augment, {"mean": [0.5] * channels, "std": [0.25] * channels},
                                   key=variant.name)  # fmt: skip
    logits, aux = split_aux(net(pipeline(images, torch.Generator().manual_seed(0))))
    loss = build_loss(config.train.loss)(logits, torch.tensor([0, 1]))
    (loss if aux is None else loss + build_loss(config.train.loss)(aux, torch.tensor([0, 1]))).backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.requires_grad)


def test_the_variants_hold_the_spec_settings(tmp_path):
    def model(name):
        (variant,) = [v for _, v in VARIANTS if v.name == name]
        return _resolved(tmp_path, variant)["models"][variant.model]

    for name, dropout in (("sea-nodrop-20", 0.0), ("sea-drop-20", 0.8)):
        sea = model(name)
        assert (sea["arch"]["dropout"], sea["augment"], sea["train"]["epochs"]) == (dropout, [], 20), name
    aug = model("sea-drop-aug-30")
    assert (aug["arch"]["dropout"], aug["train"]["epochs"]) == (0.8, 30)
    assert aug["augment"] == PARAMS["models"]["sea_cnn"]["augment"] != []
    assert model("horses-plain")["augment"] == [{"op": "resize", "size": [150, 150]}]  # no augmentation
    assert model("horses-aug")["augment"] == PARAMS["models"]["horses_cnn_aug"]["augment"] != []
    assert model("horses-affine")["augment"] == [
        {"op": "resize", "size": [150, 150]},
        {"op": "affine", "translate": [0.2, 0.2], "scale": [0.8, 1.2], "shear": 20},
    ]
    assert [model(n)["arch"]["dropout"] for n in ("inception-plain-head", "inception-dropout-head")] == [
        0,
        0.5,
    ]
    assert [model(n)["arch"]["dropout"] for n in ("mnist-dropout", "mnist-no-dropout")] == [0.5, 0]
    assert model("cifar2-deep")["arch"]["hidden"] == [1024, 512, 128]
    assert model("fashion-dnn")["arch"]["conv"] == []


@pytest.mark.parametrize("comparison", list(seeds.COMPARISONS.values()), ids=lambda c: c.name)
def test_the_variants_of_a_comparison_differ(comparison, tmp_path):
    runs = [
        json.dumps([v.model, _resolved(tmp_path, v)["models"][v.model]], sort_keys=True)
        for v in comparison.variants
    ]
    assert len(set(runs)) == len(runs)


def test_extra_overrides_come_last_and_win_where_a_variant_sets_the_key(tmp_path):
    variant = seeds.get("sea").variants[0]
    extra = ["run.max_epochs=1", "models.sea_cnn.train.epochs=3"]
    merged = seeds.merged_overrides(variant, extra)
    assert merged == [
        "models.sea_cnn.arch.dropout=0.0", "models.sea_cnn.augment=[]", "run.max_epochs=1",
        "models.sea_cnn.train.epochs=3",
    ]  # fmt: skip
    params = _resolved(tmp_path, variant, extra)
    assert params["run"]["max_epochs"] == 1 and params["models"]["sea_cnn"]["train"]["epochs"] == 3


def test_queue_command_names_the_experiment_and_targets_the_models_evaluate_stage():
    variant = seeds.get("mnist").variants[1]
    assert seeds.queue_command(variant, ["run.max_epochs=1"]) == [
        "exp", "run", "--queue", "-n", "mnist-no-dropout",
        "-S", "models.mnist_cnn.arch.dropout=0.0", "-S", "run.max_epochs=1", "evaluate@mnist_cnn",
    ]  # fmt: skip


def test_a_malformed_override_and_an_unknown_comparison_are_one_line_errors():
    with pytest.raises(CnnpipeError, match=r"-S 'run\.max_epochs': expected KEY=VALUE"):
        seeds.override_key("run.max_epochs")
    with pytest.raises(CnnpipeError, match="unknown comparison 'seaa'; one of: sea, horses"):
        seeds.get("seaa")


def test_every_comparison_has_its_make_target():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^(compare-[\w-]+):", makefile, re.M))
    assert targets == {f"compare-{name}" for name in seeds.COMPARISONS}


def test_list_names_every_variant_and_its_overrides(capsys):
    args = build_parser().parse_args(["seeds", "--list"])
    args.func(args)
    out = capsys.readouterr().out
    for _, variant in VARIANTS:
        assert variant.name in out
        assert all(o in out for o in variant.overrides)


def _row(name, model, params, metrics, state=""):
    flat = {f"models.{model}.{k}": v for k, v in params.items()} | {"run.max_epochs": 1}
    return Row(name=name, rev=name[:3], kind="experiment", state=state, params=flat, metrics={model: metrics})


def test_a_table_of_two_models_shows_each_rows_own_model_params_and_metrics():
    rows = [
        Row(name="main", rev="abc", kind="baseline", params={}),
        _row(
            "cifar2-deep",
            "cifar2_fc_deep",
            {"arch.hidden": [1024, 512, 128], "dataset": "cifar2"},
            {"accuracy": 0.8},
        ),
        _row("other", "cifar2_fc", {"arch.hidden": [9]}, {"accuracy": 0.1}),
        _row(
            "cifar2-shallow",
            "cifar2_fc",
            {"arch.hidden": [512], "dataset": "cifar2"},
            {"accuracy": 0.79, "loss": 0.5},
        ),
    ]
    for row in rows[1:]:  # each experiment commit holds every model's committed metrics too
        row.metrics["cifar2_fc" if "deep" in row.name else "cifar2_fc_deep"] = {"accuracy": 0.0}
    variants = [("cifar2-shallow", "cifar2_fc"), ("cifar2-deep", "cifar2_fc_deep")]
    df = variants_table(rows, variants)
    assert list(df.columns) == ["Experiment", "rev", "model", "arch.hidden", "accuracy", "loss", "macro_f1"]
    assert df["Experiment"].tolist() == ["cifar2-shallow", "cifar2-deep"]  # variant order, not DVC's
    assert df["model"].tolist() == ["cifar2_fc", "cifar2_fc_deep"]
    assert df["accuracy"].tolist() == [0.79, 0.8] and df["loss"].tolist() == [0.5, None]
    text = to_markdown(df)
    assert "| cifar2-deep" in text and "[1024, 512, 128]" in text and "0.7900" in text
    assert "one model per row" in caption_variants(df, variants)


def test_a_table_of_one_model_is_the_compare_table_of_those_experiments():
    rows = [
        _row("mnist-no-dropout", "mnist_cnn", {"arch.dropout": 0.0}, {"accuracy": 0.9}),
        _row("mnist-dropout", "mnist_cnn", {"arch.dropout": 0.5}, {"accuracy": 0.95}),
    ]
    df = variants_table(rows, [("mnist-dropout", "mnist_cnn"), ("mnist-no-dropout", "mnist_cnn")])
    assert df["Experiment"].tolist() == ["mnist-dropout", "mnist-no-dropout"]
    assert list(df.columns) == [
        "Experiment",
        "rev",
        "models.mnist_cnn.arch.dropout",
        "accuracy",
        "loss",
        "macro_f1",
    ]
    assert isinstance(df, pd.DataFrame) and df["accuracy"].tolist() == [0.95, 0.9]


def test_selecting_a_missing_experiment_names_it():
    with pytest.raises(CnnpipeError, match="no experiment named 'sea-drop-20'"):
        select_experiments([_row("sea-nodrop-20", "sea_cnn", {}, {})], ["sea-nodrop-20", "sea-drop-20"])


def test_seeds_without_a_name_asks_for_one():
    args = build_parser().parse_args(["seeds"])
    with pytest.raises(CnnpipeError, match=r"name a comparison \(sea, horses, .*\) or pass --list"):
        args.func(args)


def test_queue_only_and_show_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["seeds", "sea", "--queue-only", "--show"])
    assert "not allowed with argument" in capsys.readouterr().err
