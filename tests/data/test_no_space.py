"""A full disk in the prepare stages: one line, no traceback, no SIGBUS, nothing left behind.

Each test runs the stage script as DVC does, in a workspace whose ``data/prepared`` is a small
tmpfs that the dataset cannot fit in (raw files from the sample mirror). The stage must exit 1
with exactly ``error: no space left on <mount> writing data/prepared/<dataset> (needs ≈ N MB);
free space and rerun`` and leave the workspace as it found it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnpipe.data.arrays import load_meta
from tests.helpers.tmpfs import tree

ROOT = Path(__file__).resolve().parents[2]
NEEDS = re.compile(r"\(needs ≈ ([\d.]+) MB\)")


def run_stage(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a failed stage, checked to be all it said about the failure."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "During handling" not in output, output
    lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    return errors[0]


def workspace(root: Path, mirror: Path, dataset: str, **params) -> Path:
    """``root`` with params.yaml (the repository's, ``params`` overriding datasets.<dataset>)
    and data/raw/<dataset>/ copied from the sample mirror."""
    values = yaml.safe_load((ROOT / "params.yaml").read_text())
    values["datasets"].setdefault(dataset, {}).update(params)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    shutil.copytree(mirror / dataset, root / "data" / "raw" / dataset)
    return root


def assert_no_space(line: str, ws: Path, output: str, at_least_mb: float) -> None:
    mount = ws / "data" / "prepared"
    expected = f"error: no space left on {mount} writing {output} (needs ≈ "
    assert line.startswith(expected) and line.endswith(" MB); free space and rerun"), line
    assert float(NEEDS.search(line).group(1)) >= at_least_mb, line


@pytest.mark.parametrize(
    ("dataset", "params", "size", "at_least_mb"),
    [
        ("mnist", {"valid_first": 30}, "64k", 0.12),  # np.save of in-memory arrays
        ("cifar10", {"valid_first": 20}, "128k", 0.43),  # rows appended as the tar is streamed
        ("celeba", {}, "1m", 5.8),  # memory-mapped, full-resolution arrays
        ("horse_or_human", {"image_size": [150, 150]}, "512k", 2.1),  # memory-mapped, resized
    ],
)
def test_prepare_on_a_full_disk_is_one_line_and_leaves_nothing(
    mirror, tmp_path, small_tmpfs, dataset, params, size, at_least_mb
):
    ws = workspace(tmp_path / "ws", mirror, dataset, **params)
    small_tmpfs(ws / "data" / "prepared", size)
    before = tree(ws)

    result = run_stage(ws, "prepare.py", dataset)

    assert_no_space(error_line(result), ws, f"data/prepared/{dataset}", at_least_mb)
    assert tree(ws) == before  # no temporary, no half-written array, no new folder


def _sea_workspace(root: Path, mirror: Path) -> Path:
    ws = workspace(root, mirror, "sea", path="data/raw/sea/sea_creatures.zip", image_size=[100, 100])
    (ws / "data" / "prepared").mkdir(parents=True)
    return ws


def test_imagefolder_prepare_on_a_full_disk_reserves_first_so_there_is_no_sigbus(
    mirror, tmp_path, small_tmpfs
):
    ws = _sea_workspace(tmp_path / "ws", mirror)
    small_tmpfs(ws / "data" / "prepared", "256k")  # 15 images × 3×100×100 do not fit
    before = tree(ws)

    result = run_stage(ws, "prepare_folder.py", "sea")

    assert result.returncode != -7, "killed by SIGBUS"
    assert_no_space(error_line(result), ws, "data/prepared/sea", 0.45)
    assert tree(ws) == before


def test_stale_temporaries_of_a_crashed_run_are_removed_at_start(mirror, tmp_path, small_tmpfs):
    ws = _sea_workspace(tmp_path / "ws", mirror)
    prepared = small_tmpfs(ws / "data" / "prepared", "1m")
    # What a run killed by SIGBUS left: one temporary from before pids were recorded, one of a
    # process that is gone; together they fill the disk. A live process's temporary stays.
    legacy = prepared / ".sea.q7x_k2ab.tmp"
    dead = prepared / f".sea.p{_dead_pid()}.abcdefgh.tmp"
    live = prepared / f".sea.p{os.getpid()}.livelive.tmp"
    for folder, size in ((legacy, 500_000), (dead, 300_000), (live, 1000)):
        folder.mkdir()
        (folder / "train.images.npy").write_bytes(np.zeros(size, np.uint8).tobytes())

    result = run_stage(ws, "prepare_folder.py", "sea")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"removed data/prepared/{legacy.name}, left by an earlier run that did not finish" in result.stdout
    assert f"removed data/prepared/{dead.name}" in result.stdout
    assert sorted(p.name for p in prepared.iterdir()) == sorted(["sea", live.name])
    splits = load_meta(prepared / "sea")["splits"]
    assert splits["train"] + splits["valid"] == 10 and splits["test"] == 5


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid
