"""benchmarks/gpu.py in its CPU dry run: every row, the DDP comparison and the JSON report are wired."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.worktree import ROOT


def test_dry_run_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable,
        "benchmarks/gpu.py",
        "--dry-run",
        "--models",
        "mnist_cnn",
        "smile_cnn",
        "--json",
        str(out),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DRY RUN" in result.stdout and "cnnpipe img/s" in result.stdout
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    # amp off and bf16 (CPU autocast) for each model, each with the host and the resident batch
    # source (run.resident_data); compile is left out of the dry run
    assert [(r["model"], r["amp"], r["compile"], r["data"]) for r in report["rows"]] == [
        (model, amp, False, data)
        for model in ("mnist_cnn", "smile_cnn")
        for amp in ("off", "bf16")
        for data in ("host", "resident")
    ]
    for row in report["rows"]:
        assert row["cnnpipe_img_per_s"] > 0 and row["baseline_img_per_s"] > 0
        assert abs(row["ratio"] - row["cnnpipe_img_per_s"] / row["baseline_img_per_s"]) < 1e-9
        assert f"{row['model']:<17} {row['amp']:<5} {'false':<8} {row['data']:<9}" in result.stdout
    # the 2-process job ran over gloo and was compared with one process
    assert set(report["ddp"]) == {"1 process", "2 processes"} and min(report["ddp"].values()) > 0
