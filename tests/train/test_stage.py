"""`python stages/train.py <model>` as DVC runs it: killed mid-run with SIGKILL, rerun, same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnpipe.config.train import parse_config
from cnnpipe.train.loop import train_model
from tests.helpers.toydata import toy_params, write_dataset, write_params

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stages" / "train.py"
NAME = "toy_cnn"
EPOCHS = 12

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}


def _stage(cwd: Path, *args: str, **kwargs):
    return subprocess.Popen(
        [sys.executable, str(STAGE), *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _completed_epochs(checkpoint: Path) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # not written yet (the file is replaced atomically, never half-written)
        return 0


def _params():
    return toy_params(
        augment=[{"op": "rotation", "degrees": 10}],
        train={"epochs": EPOCHS, "batch_size": 16, "scheduler": "plateau", "plateau_patience": 1},
    )


def _workspace(root: Path) -> Path:
    write_dataset(root, sizes=(400, 100, 20))
    write_params(root, _params())
    return root


def test_sigkilled_stage_resumes_to_the_uninterrupted_result(tmp_path):
    reference = _workspace(tmp_path / "reference")
    train_model(parse_config(NAME, _params()), root=reference, log=lambda _: None)

    work = _workspace(tmp_path / "work")
    checkpoint = work / "models" / NAME / "checkpoint.pt"
    process = _stage(work, NAME)
    deadline = time.monotonic() + 240
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if _completed_epochs(checkpoint) >= 1:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, output
    done = _completed_epochs(checkpoint)
    assert 1 <= done < EPOCHS, f"the run was not killed mid-run ({done} epochs done)"
    assert not (work / "models" / NAME / "model.pt").exists()

    rerun = subprocess.run(
        [sys.executable, str(STAGE), NAME], cwd=work, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"resuming {NAME} from epoch {done + 1}/{EPOCHS}" in rerun.stdout
    assert not list(checkpoint.parent.glob(".*.tmp"))

    expected = torch.load(reference / "models" / NAME / "model.pt", weights_only=True)
    actual = torch.load(work / "models" / NAME / "model.pt", weights_only=True)
    assert expected["state_dict"].keys() == actual["state_dict"].keys()
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, actual["state_dict"][key]), key
    assert expected["extra"] == actual["extra"]
    history = json.loads((work / "models" / NAME / "history.json").read_text())
    assert history == json.loads((reference / "models" / NAME / "history.json").read_text())
    assert len(history) == EPOCHS
    for metric in ("train/loss", "val/acc", "lr"):
        tsv = Path("dvclive", NAME, "plots", "metrics", f"{metric}.tsv")
        assert (work / tsv).read_text() == (reference / tsv).read_text()
    assert (work / "plots" / NAME / "augmentation.png").exists()


def test_stage_reports_a_bad_model_in_one_line(tmp_path):
    write_params(tmp_path, toy_params())
    process = _stage(tmp_path, "missing_model")
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert output.strip() == "error: models.missing_model: no such model in params.yaml (models: toy_cnn)"


@pytest.mark.parametrize(
    ("augment", "expected"),
    [
        (
            [{"op": "hflip", "p": 0.5}, {"op": "rotaton", "degrees": 10}],
            "models.toy_cnn.augment[1].op: unknown op",
        ),
        ([{"op": "rotation", "degree": 10}], "models.toy_cnn.augment[0].degree: not an argument of op"),
    ],
)
def test_ddp_precheck_names_an_augment_typo_before_any_worker_starts(tmp_path, augment, expected):
    """With run.distributed asking for two processes, a misspelt augment op or argument fails the
    stage's own parse in one line, before torchrun launches anything (no data is even needed)."""
    params = toy_params(augment=augment)
    params["run"]["distributed"] = {"nproc_per_node": 2, "nnodes": 1}
    write_params(tmp_path, params)
    process = _stage(tmp_path, NAME)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), output
