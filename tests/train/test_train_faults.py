"""The train stage under faults: a full disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tmpfs import tree
from toydata import toy_params, write_dataset, write_params

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stages" / "train.py"
NAME = "toy_cnn"


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
