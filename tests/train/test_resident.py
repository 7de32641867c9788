"""run.resident_data: splits kept on the training device give the host path's batches and runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnpipe.config.run import parse_run
from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamError
from cnnpipe.paths import RunPaths
from cnnpipe.train import batches as batches_module
from cnnpipe.train import runtime as runtime_module
from cnnpipe.train.batches import (
    Split,
    augment_generator,
    batch_indices,
    epoch_permutation,
    eval_batches,
    iterate_batches,
    make_resident,
    open_split,
    resident_plan,
)
from cnnpipe.train.distributed import Distributed
from cnnpipe.train.loop import train_model
from cnnpipe.train.lr_find import lr_find
from cnnpipe.train.runtime import build_runtime, keep_resident, open_data
from cnnpipe.transforms.pipeline import InputPipeline
from tests.helpers.toydata import toy_params, write_dataset

CPU = torch.device("cpu")
NAME = "toy_cnn"
# Both ops draw per-sample randomness from the epoch's generator: equal batches show equal draws.
AUGMENT = [{"op": "hflip", "p": 0.5}, {"op": "random_crop", "size": 12, "padding": 2}]


def _params(resident, epochs: int = 2):
    params = toy_params(augment=AUGMENT, train={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                                 "epochs": epochs, "seed": 5, "batch_size": 16})  # fmt: skip
    params["run"]["resident_data"] = resident
    return params


def _pipeline() -> InputPipeline:
    return InputPipeline.build(AUGMENT, {"mean": [0.5], "std": [0.25]}, key="augment")


# --- the params ---------------------------------------------------------------------------------


def test_run_keys_parse_and_name_a_bad_value():
    default = parse_run({})
    assert (default.resident_data, default.resident_max_fraction) == ("auto", 0.25)
    run = parse_run({"run": {"resident_data": True, "resident_max_fraction": 0.5}})
    assert (run.resident_data, run.resident_max_fraction) == (True, 0.5)
    assert parse_run({"run": {"resident_data": False, "resident_max_fraction": 1}}).resident_data is False
    config = parse_config(NAME, _params(True))
    assert (config.resident_data, config.resident_max_fraction) == (True, 0.25)
    share = "run.resident_max_fraction: must be a fraction with 0 < f <= 1, got"
    for values, message in [
        ({"resident_data": "yes"}, "run.resident_data: must be auto, true or false, got 'yes'"),
        ({"resident_max_fraction": 0}, f"{share} 0"),
        ({"resident_max_fraction": 1.5}, f"{share} 1.5"),
        ({"resident_max_fraction": "half"}, "run.resident_max_fraction: expected a number, got 'half'"),
    ]:
        with pytest.raises(ParamError) as info:
            parse_run({"run": values})
        assert str(info.value) == message


# --- the auto decision --------------------------------------------------------------------------


def test_auto_keeps_splits_on_cuda_within_the_share_of_device_memory():
    gib = 2**30
    # 25% of 80 GiB is 20 GiB: 15 + 5 fit exactly, one byte more leaves the second on the host
    assert resident_plan("auto", "cuda", [15 * gib, 5 * gib], 80 * gib, 0.25) == [True, True]
    assert resident_plan("auto", "cuda", [15 * gib, 5 * gib + 1], 80 * gib, 0.25) == [True, False]
    # a train split over budget stays on the host; the smaller validation split still fits
    assert resident_plan("auto", "cuda", [21 * gib, 2 * gib], 80 * gib, 0.25) == [False, True]
    assert resident_plan("auto", "cuda", [21 * gib, 2 * gib], 80 * gib, 0.5) == [True, True]
    # auto is CUDA only; true and false decide alone, whatever the sizes
    assert resident_plan("auto", "cpu", [1, 1], 80 * gib, 1.0) == [False, False]
    assert resident_plan("auto", "mps", [1, 1], 80 * gib, 1.0) == [False, False]
    assert resident_plan(True, "cpu", [10 * gib, gib], 0, 0.25) == [True, True]
    assert resident_plan(False, "cuda", [1, 1], 80 * gib, 1.0) == [False, False]


def test_keep_resident_budgets_with_the_device_total_memory(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    config = parse_config(NAME, _params("auto"))
    cuda = torch.device("cuda")  # never touched: the copy is replaced below
    copied: list[str] = []
    monkeypatch.setattr(
        runtime_module, "make_resident", lambda split, device: copied.append(split.name) or split
    )

    def keep(total_memory: int) -> tuple[list[str], list[str]]:
        copied.clear()
        monkeypatch.setattr(runtime_module, "_device_memory", lambda device: total_memory)
        data, lines = open_data(config, RunPaths.of(tmp_path, NAME, "toy")), []
        keep_resident(config, data, cuda, lines.append)
        return list(copied), lines

    data = open_data(config, RunPaths.of(tmp_path, NAME, "toy"))
    train, valid = data.train.nbytes, data.valid.nbytes
    assert keep(4 * (train + valid)) == (
        ["train", "valid"],
        [f"run.resident_data: train and valid split(s) kept on cuda ({(train + valid) / 2**20:.1f} MiB)"],
    )
    assert keep(4 * train)[0] == ["train"]  # the validation split no longer fits beside it
    assert keep(4 * train - 4)[0] == ["valid"]
    assert keep(0) == ([], [])
    keep_resident(config, data, CPU, copied.append)  # auto on the CPU: the host path, as before
    assert data.train.resident is None and data.valid.resident is None


def test_true_that_does_not_fit_is_one_line(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    config = parse_config(NAME, _params(True))

    def out_of_memory(split, device):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(runtime_module, "make_resident", out_of_memory)
    data = open_data(config, RunPaths.of(tmp_path, NAME, "toy"))
    with pytest.raises(ParamError, match=r"^run\.resident_data: true, but the train and valid split\(s\) "
                       r"\(0 MiB\) do not fit on cuda; set run\.resident_data: false"):  # fmt: skip
        keep_resident(config, data, torch.device("cuda"), print)


# --- batches ------------------------------------------------------------------------------------


def _host_and_resident(tmp_path, sizes=(53, 0, 8)) -> tuple[Split, Split]:
    split = open_split(write_dataset(tmp_path, sizes=sizes), "train")
    return split, make_resident(split, CPU)


def test_resident_copy_is_one_uint8_copy_beside_the_memory_map(tmp_path, monkeypatch):
    host, resident = _host_and_resident(tmp_path)
    assert host.resident is None and resident.images is host.images  # the memory map stays (previews)
    images, labels = resident.resident.images, resident.resident.labels
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.equal(images, torch.from_numpy(np.array(host.images)))
    assert torch.equal(labels, torch.from_numpy(np.array(host.labels)))
    # copied chunk by chunk: chunks of 3 images (the last one shorter) give the same copy
    monkeypatch.setattr(batches_module, "RESIDENT_CHUNK_BYTES", 3 * host.images[:1].nbytes)
    assert torch.equal(make_resident(host, CPU).resident.images, images)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_resident_batches_equal_host_batches_on_every_rank(tmp_path, world):
    host, resident = _host_and_resident(tmp_path)
    pipeline = _pipeline()
    for epoch in (1, 2):
        batches = batch_indices(epoch_permutation(len(host), 9, epoch), 16)
        for rank in range(world):
            shards = [Distributed(rank, rank, world, CPU).shard(rows) for rows in batches]
            got = list(iterate_batches(resident, shards, pipeline, CPU, augment_generator(9, epoch, rank)))
            want = list(iterate_batches(host, shards, pipeline, CPU, augment_generator(9, epoch, rank)))
            assert len(got) == len(want) == len(batches)
            for (inputs, labels), (host_inputs, host_labels), rows in zip(got, want, shards, strict=True):
                assert torch.equal(inputs, host_inputs) and torch.equal(labels, host_labels)
                assert labels.tolist() == host.labels[rows].tolist()
    eval_pipeline = InputPipeline.build([], {"mean": [0.5], "std": [0.25]}, key="eval_transform")
    order = eval_batches(host, 7)
    got = iterate_batches(resident, order, eval_pipeline, CPU)
    for (a, la), (b, lb) in zip(got, iterate_batches(host, order, eval_pipeline, CPU), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)


class _Untouchable:
    """Stands in for the host arrays: any read of a row fails the test."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows):
        raise AssertionError("a resident split read its host arrays")


def test_resident_batches_make_no_host_copy_per_batch(tmp_path, monkeypatch):
    host, resident = _host_and_resident(tmp_path)
    n = len(host)
    cut_off = Split(host.name, _Untouchable(n), _Untouchable(n), resident.resident)
    transfers, from_numpy = [], []
    real_to_device, real_from_numpy = batches_module.to_device, torch.from_numpy

    def counted_to_device(tensor, *args, **kwargs):
        transfers.append(tuple(tensor.shape))
        return real_to_device(tensor, *args, **kwargs)

    monkeypatch.setattr(batches_module, "to_device", counted_to_device)
    monkeypatch.setattr(torch, "from_numpy", lambda a: from_numpy.append(a.shape) or real_from_numpy(a))
    batches = batch_indices(epoch_permutation(n, 0, 1), 8)
    assert len(batches) == 7
    out = list(iterate_batches(cut_off, batches, _pipeline(), CPU, augment_generator(0, 1)))
    assert len(out) == 7
    assert transfers == [(n,)] and from_numpy == [(n,)]  # the pass's row indices, once
    transfers.clear()
    list(iterate_batches(host, batches, _pipeline(), CPU, augment_generator(0, 1)))
    assert len(transfers) == 2 * len(batches)  # the host path: images and labels of every batch


# --- training -----------------------------------------------------------------------------------


def _run(tmp_path: Path, label: str, resident, **kwargs) -> tuple[Path, dict]:
    root = tmp_path / label
    write_dataset(root)
    lines: list[str] = []
    summary = train_model(parse_config(NAME, _params(resident)), root=root, log=lines.append, **kwargs)
    return root, {"summary": summary, "lines": lines}


def _same_outputs(a: Path, b: Path) -> None:
    wa = torch.load(a / "models" / NAME / "model.pt", weights_only=True)["state_dict"]
    wb = torch.load(b / "models" / NAME / "model.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    history = json.loads((a / "models" / NAME / "history.json").read_text())
    assert history == json.loads((b / "models" / NAME / "history.json").read_text())


def test_resident_training_is_bit_identical_to_the_host_path(tmp_path):
    host_root, host = _run(tmp_path, "host", False)
    resident_root, resident = _run(tmp_path, "resident", True)
    assert resident["lines"][0] == "run.resident_data: train and valid split(s) kept on cpu (0.0 MiB)"
    assert not any(line.startswith("run.resident_data") for line in host["lines"])
    assert resident["summary"]["history"] == host["summary"]["history"]
    _same_outputs(host_root, resident_root)
    auto_root, auto = _run(tmp_path, "auto", "auto")  # the default on the CPU: the host path
    assert not any(line.startswith("run.resident_data") for line in auto["lines"])
    _same_outputs(host_root, auto_root)


def test_build_runtime_keeps_the_splits_resident_only_when_asked(toy_root):
    rt = build_runtime(parse_config(NAME, _params(True)), root=toy_root, log=lambda _: None)
    assert rt.data.train.resident is not None and rt.data.valid.resident is not None
    rt = build_runtime(parse_config(NAME, _params("auto")), root=toy_root, log=lambda _: None)
    assert rt.data.train.resident is None and rt.data.valid.resident is None


class _Interrupted(Exception):
    pass


def test_interrupted_resident_run_resumes_to_the_host_run(tmp_path):
    epochs = 3
    host = tmp_path / "host"
    write_dataset(host)
    train_model(parse_config(NAME, _params(False, epochs)), root=host, log=lambda _: None)

    resumed = tmp_path / "resumed"
    write_dataset(resumed)

    def stop_in_epoch_2(line: str) -> None:
        if f" epoch 2/{epochs}" in line:
            raise _Interrupted(line)

    with pytest.raises(_Interrupted):
        train_model(parse_config(NAME, _params(True, epochs)), root=resumed, log=stop_in_epoch_2)
    lines: list[str] = []
    summary = train_model(parse_config(NAME, _params(True, epochs)), root=resumed, log=lines.append)
    assert summary["resumed_from"] == 1 and f"resuming {NAME} from epoch 2/{epochs}" in lines
    _same_outputs(host, resumed)


def test_lr_range_test_sweeps_the_same_losses_from_resident_data(toy_root):
    def sweep(resident):
        return lr_find(parse_config(NAME, _params(resident)), root=toy_root, num_lrs=8, log=lambda _: None)

    host, resident = sweep(False), sweep(True)
    assert len(host.losses) == 8 and resident.losses == host.losses and resident.lrs == host.lrs
