"""The GPU switches on the CPU: run.amp, run.device cuda:N, run.compile and the CPU-fallback warning."""

from __future__ import annotations

import json

import pytest
import torch

from cnnpipe import device as devices
from cnnpipe.config.run import parse_run
from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamError
from cnnpipe.models.trained import load_trained
from cnnpipe.train import runtime as runtime_module
from cnnpipe.train.checkpoint import load_checkpoint
from cnnpipe.train.loop import train_model
from cnnpipe.train.runtime import build_runtime
from tests.helpers.toydata import toy_params, write_dataset

CPU = torch.device("cpu")


def _config(**run):
    params = toy_params(train={"epochs": 1})
    params["run"].update(run)
    return parse_config("toy_cnn", params)


def test_run_section_parses_the_switches_and_names_a_bad_one():
    run = parse_run({"run": {"device": "cuda:1", "amp": "fp16", "compile": True}})
    assert (run.device, run.amp, run.compile) == ("cuda:1", "fp16", True)
    default = parse_run({})
    assert (default.device, default.amp, default.compile) == ("auto", "auto", False)
    for values, message in [
        ({"device": "gpu"}, "run.device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
        ({"device": "cuda:x"}, "run.device: expected auto, cpu, cuda, cuda:N or mps, got 'cuda:x'"),
        ({"amp": "fp32"}, "run.amp: expected auto, bf16, fp16 or off, got 'fp32'"),
        ({"compile": "yes"}, "run.compile: must be true or false, got 'yes'"),
    ]:
        with pytest.raises(ParamError) as info:
            parse_run({"run": values})
        assert str(info.value) == message


def test_amp_resolves_per_device():
    assert devices.resolve_amp("auto", CPU) == "off"  # CPU runs stay float32 and bitwise reproducible
    assert devices.resolve_amp("off", CPU) == "off"
    assert devices.resolve_amp("bf16", CPU) == "bf16"  # CPU autocast
    with pytest.raises(ParamError, match=r"^run\.amp: fp16 \(with a GradScaler\) needs a CUDA device"):
        devices.resolve_amp("fp16", CPU)
    with pytest.raises(ParamError, match=r"^run\.amp: expected auto, bf16, fp16 or off"):
        devices.resolve_amp("half", CPU)
    assert devices.grad_scaler(CPU, "bf16") is None and devices.grad_scaler(CPU, "off") is None


def test_bf16_autocast_on_the_cpu_and_none_when_off():
    a, b = torch.ones(4, 4), torch.ones(4, 4)
    with devices.autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with devices.autocast(CPU, "off"):
        assert (a @ b).dtype == torch.float32
    with devices.autocast(CPU):
        assert (a @ b).dtype == torch.float32


def test_cuda_index_is_parsed_and_checked():
    if torch.cuda.is_available():
        assert devices.select_device("cuda:0") == torch.device("cuda", 0)
        n = torch.cuda.device_count()
        with pytest.raises(ParamError, match=rf"only {n} CUDA device"):
            devices.select_device(f"cuda:{n}")
    else:
        with pytest.raises(
            ParamError, match=r"^run\.device: 'cuda:1' requested but PyTorch sees no CUDA device"
        ):
            devices.select_device("cuda:1")
    with pytest.raises(ParamError, match=r"expected auto, cpu, cuda, cuda:N or mps, got 'cuda:one'"):
        devices.select_device("cuda:one")


def test_cpu_fallback_warning_only_when_a_driver_is_loaded(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_FILES", ())
    assert devices.cpu_fallback_warning("auto", CPU) is None
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_FILES", (__file__,))  # a file that exists
    warning = devices.cpu_fallback_warning("auto", CPU)
    assert warning.startswith("run.device auto: an NVIDIA driver is loaded but PyTorch")
    assert "trains on the CPU" in warning and "\n" not in warning
    assert devices.cpu_fallback_warning("cpu", CPU) is None  # asked for the CPU: nothing to warn about


def test_fallback_warning_reaches_the_log_and_model_extra(toy_root, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_FILES", (__file__,))
    lines: list[str] = []
    train_model(_config(device="auto"), root=toy_root, log=lines.append)
    warnings = [line for line in lines if line.startswith("warning: run.device auto:")]
    assert len(warnings) == 1
    extra = load_trained(toy_root / "models" / "toy_cnn" / "model.pt").extra
    assert extra["device_warning"] == warnings[0].removeprefix("warning: ")
    assert extra["amp"] == "off"


def test_bf16_on_the_cpu_trains_and_stays_deterministic(tmp_path):
    results = []
    for run in ("a", "b"):
        root = tmp_path / run
        write_dataset(root)
        summary = train_model(_config(amp="bf16"), root=root, log=lambda _line: None)
        assert summary["amp"] == "bf16"
        results.append(load_checkpoint(root / "models" / "toy_cnn" / "checkpoint.pt")[0]["model"])
    first, second = results
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert "scaler" not in load_checkpoint(tmp_path / "a" / "models" / "toy_cnn" / "checkpoint.pt")[0]


def test_compile_flag_wraps_the_step_model_only(toy_root, monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(runtime_module.torch, "compile", fake_compile)
    rt = build_runtime(_config(compile=False), root=toy_root, log=lambda _line: None)
    assert rt.compiled is None and not compiled
    rt = build_runtime(_config(compile=True), root=toy_root, log=lambda _line: None)
    assert compiled == [rt.model] and rt.step_model is rt.compiled
    summary = train_model(_config(compile=True), root=toy_root, log=lambda _line: None)
    assert len(compiled) == 2  # train_model built its runtime through the same switch
    state = json.loads((toy_root / "models" / "toy_cnn" / "history.json").read_text())
    assert len(state) == summary["epochs"] == 1
