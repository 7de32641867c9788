"""End to end: `make demo` in a fresh copy of the repository runs every data stage offline.

This is the README's first command, run as a user would (minus creating the virtualenv,
which the test reuses). It also checks that a second `dvc repro` is a no-op.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["mnist", "fashion_mnist", "cifar10", "celeba", "horse_or_human", "rps", "cifar2", "celeba_smile"]


def _run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def _copy_worktree(dest: Path) -> None:
    """Copy what a fresh clone would hold: tracked files plus untracked, non-ignored ones."""
    listing = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listing):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("clone")
    _copy_worktree(repo)
    venv = Path(sys.executable).parent.parent
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "clone"], repo, env)
    output = _run(["make", "demo", f"VENV={venv}", "NO_INSTALL=1"], repo, env)
    return repo, env, output


@pytest.mark.slow
def test_make_demo_prepares_every_dataset_offline(demo_repo):
    repo, _, output = demo_repo
    assert "trusting the mirror's manifest" in output
    for name in DATASETS:
        meta = json.loads((repo / "data/prepared" / name / "classes.json").read_text())
        stats = json.loads((repo / "data/stats" / f"{name}.json").read_text())
        train = np.load(repo / "data/prepared" / name / "train.images.npy", mmap_mode="r")
        assert train.dtype == np.uint8 and train.ndim == 4 and len(train) == meta["splits"]["train"] > 0
        assert stats["count"] == len(train) and len(stats["mean"]) == train.shape[1]
    assert json.loads((repo / "data/prepared/cifar2/classes.json").read_text())["classes"] == [
        "airplane",
        "bird",
    ]
    smile = json.loads((repo / "data/prepared/celeba_smile/classes.json").read_text())
    assert smile["classes"][1] == "Smiling"
    # the committed params still point upstream; the demo changed them only as an experiment
    assert (
        "mirror: null"
        in subprocess.run(
            ["git", "show", "HEAD:params.yaml"], cwd=repo, capture_output=True, text=True
        ).stdout
    )


@pytest.mark.slow
def test_second_repro_is_a_no_op(demo_repo):
    repo, env, _ = demo_repo
    output = _run(["dvc", "repro"], repo, env)
    assert "Running stage" not in output
    status = _run(["dvc", "status"], repo, env)
    assert "up to date" in status
