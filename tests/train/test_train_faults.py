"""The train stage under faults: a full disk, and params.yaml rewritten by a second `dvc exp run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from cnnpipe.config import load as params_module
from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamsChangedError
from cnnpipe.train import loop
from cnnpipe.train.loop import train_model
from tests.helpers.tmpfs import tree
from tests.helpers.toydata import toy_params, write_dataset, write_params

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stages" / "train.py"
NAME = "toy_cnn"
WATCHED = [
    f"models.{NAME}",
    "run.device",
    "run.max_epochs",
    "run.distributed.nproc_per_node",
    "run.distributed.nnodes",
]
CHANGED = (
    f"params.yaml changed while train@{NAME} was running (another dvc exp run in this workspace?); "
    "nothing more was written — queue experiments instead: dvc exp run --queue -S …, then dvc queue start"
)


def _run_stage(cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}
    return subprocess.Popen(
        [sys.executable, str(STAGE), NAME], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kwargs,
    )  # fmt: skip


def _error_line(returncode: int, stdout: str, stderr: str) -> str:
    output = stdout + stderr
    assert returncode == 1, output
    assert "Traceback" not in output, output
    lines = [line for line in re.split(r"[\r\n]", stderr) if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], output
    return lines[-1]


def _epochs_in(checkpoint: Path) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # not written yet (it is replaced atomically, never half-written)
        return 0


# ---------------------------------------------------------------------------- a full disk


def test_training_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_tmpfs):
    write_dataset(tmp_path)
    arch = {**toy_params()["models"][NAME]["arch"], "hidden": [4096]}  # a 7 MB checkpoint
    write_params(tmp_path, toy_params(arch=arch, train={"epochs": 1}))
    models = small_tmpfs(tmp_path / "models", "1m")
    before = tree(tmp_path / "data")

    process = _run_stage(tmp_path)
    stdout, stderr = process.communicate(timeout=180)

    line = _error_line(process.returncode, stdout, stderr)
    assert re.fullmatch(
        rf"error: no space left on {re.escape(str(models))} writing models/{NAME}/checkpoint\.pt "
        r"\(needs ≈ 7\.\d MB\); free space and rerun",
        line,
    ), line
    assert list(models.iterdir()) == []  # no temporary, no models/<name>/ folder
    assert tree(tmp_path / "data") == before
    assert not (tmp_path / "plots").exists() and not (tmp_path / "metrics").exists()


# ------------------------------------------------------------------ params.yaml rewritten


def _watching_run(tmp_path: Path, edit, monkeypatch) -> dict:
    """Train 3 epochs with the stage's params.yaml check; ``edit(values)`` rewrites it during epoch 2."""
    write_dataset(tmp_path)
    values = toy_params(train={"epochs": 3})
    values["models"]["other_cnn"] = toy_params()["models"][NAME]
    path = write_params(tmp_path, values)
    changed = params_module.watch(WATCHED, params_module.load_params(path), path)
    real_epoch = loop.train_epoch

    def train_epoch(rt, schedule, epoch, **kwargs):
        if epoch == 2:  # the second `dvc exp run` writes its -S values now
            edited = yaml.safe_load(path.read_text())
            edit(edited)
            path.write_text(yaml.safe_dump(edited, sort_keys=False))
        return real_epoch(rt, schedule, epoch, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)
    return train_model(parse_config(NAME, values), root=tmp_path, log=lambda _: None, params_changed=changed)


def test_params_changed_under_a_running_train_stops_it_before_it_writes(tmp_path, monkeypatch):
    def set_lr(values):
        values["models"][NAME]["train"]["lr"] = 0.5

    with pytest.raises(ParamsChangedError) as exc:
        _watching_run(tmp_path, set_lr, monkeypatch)

    assert str(exc.value) == CHANGED
    model_dir = tmp_path / "models" / NAME
    assert _epochs_in(model_dir / "checkpoint.pt") == 1  # epoch 2 (trained under changed params) is not kept
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoint.pt"]
    assert not (tmp_path / "plots").exists()


def test_other_models_params_changing_does_not_stop_a_run(tmp_path, monkeypatch):
    def set_other_lr(values):
        values["models"]["other_cnn"]["train"]["lr"] = 0.5

    summary = _watching_run(tmp_path, set_other_lr, monkeypatch)
    assert len(summary["history"]) == 3 and (tmp_path / "models" / NAME / "model.pt").exists()


def test_train_stage_stops_in_one_line_when_a_second_exp_run_rewrites_params(tmp_path):
    write_dataset(tmp_path, sizes=(400, 40, 20))
    path = write_params(tmp_path, toy_params(train={"epochs": 500}))
    checkpoint = tmp_path / "models" / NAME / "checkpoint.pt"
    process = _run_stage(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while _epochs_in(checkpoint) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        edited = yaml.safe_load(path.read_text())
        edited["models"][NAME]["train"]["lr"] = 0.5  # what `dvc exp run -S ...lr=0.5` writes
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert _error_line(process.returncode, stdout, stderr) == f"error: {CHANGED}"
    assert 1 <= _epochs_in(checkpoint) < 500
    assert not (tmp_path / "models" / NAME / "model.pt").exists()
    assert not (tmp_path / "models" / NAME / "history.json").exists()
    assert not list(checkpoint.parent.glob(".*.tmp"))
