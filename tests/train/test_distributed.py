"""DDP training: 2 gloo processes on the CPU through the real launcher, compared with one process.

The worker processes are watched with a ``sitecustomize`` audit hook (``audit/``): every file
a training process opens for writing, creates, renames or deletes in the workspace is
recorded per rank, so "only rank 0 writes" is checked, not assumed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from cnnpipe.config.run import DistributedSettings, parse_distributed
from cnnpipe.config.train import parse_config
from cnnpipe.errors import ParamError
from cnnpipe.train import distributed
from cnnpipe.train.loop import train_model
from tests.helpers.toydata import toy_params, write_dataset, write_params

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stages" / "train.py"
NAME = "toy_cnn"
EPOCHS = 3
# 97 training images in global batches of 16: shards of 8 + 8, and a last batch of one image,
# so rank 1 gets an empty shard once per epoch.
SIZES = (97, 24, 24)

# The two runs differ only in floating-point summation order: per-shard gradient sums
# averaged by DDP instead of one sum over the global batch, and metric sums combined across
# ranks. After 3 epochs of Adam on the toy set that is ~1e-7 on weights of magnitude < 1
# (measured: at most 6e-8); 1e-5 leaves room for other CPUs' kernels while still failing on
# any real difference (e.g. unscaled shard losses change the weights by ~1e-2).
ATOL = 1e-5

AUDIT_HOOK = r"""
import atexit, json, os, sys

_rank = os.environ.get("RANK")
if _rank is not None:
    _workspace = os.path.realpath(os.environ["AUDIT_WORKSPACE"])
    _writes = []
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def _inside(path):
        try:
            path = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        if path.startswith(_workspace + os.sep) and "__pycache__" not in path:
            return os.path.relpath(path, _workspace)
        return None

    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writing = any(c in (mode or "") for c in "wax+") if mode else bool((flags or 0) & _WRITE_FLAGS)
            name = _inside(path) if writing else None
        elif event in ("os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.mkdir"):
            name = _inside(args[0])
        else:
            return
        if name is not None:
            _writes.append([event, name])

    def _report():
        out = os.path.join(os.environ["AUDIT_DIR"], f"rank{_rank}.json")
        with open(out, "w") as f:
            json.dump(_writes, f)

    sys.addaudithook(_hook)
    atexit.register(_report)
"""


def _params(**distributed_settings):
    params = toy_params(train={"epochs": EPOCHS, "batch_size": 16})
    params["models"][NAME]["arch"]["dropout"] = 0.0  # per-rank dropout masks would differ
    if distributed_settings:
        params["run"]["distributed"] = {"nproc_per_node": 1, "nnodes": 1, **distributed_settings}
    return params


def _audit_env(tmp_path: Path, workspace: Path, src: Path = ROOT / "src") -> tuple[dict[str, str], Path]:
    hook_dir, audit_dir = tmp_path / "hook", tmp_path / "audit"
    hook_dir.mkdir(exist_ok=True)
    audit_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    env = {
        **os.environ,
        # dvc runs the stage's `python`: this environment's, even when it is not activated
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(hook_dir), str(src)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DVC_NO_ANALYTICS": "1",
        "AUDIT_DIR": str(audit_dir),
        "AUDIT_WORKSPACE": str(workspace),
    }
    return env, audit_dir


def _writes(audit_dir: Path) -> dict[str, list[str]]:
    return {p.stem: [name for _, name in json.loads(p.read_text())] for p in audit_dir.glob("rank*.json")}


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "models" / NAME / "model.pt", weights_only=True)["state_dict"]


def _history(root: Path) -> list[dict]:
    return json.loads((root / "models" / NAME / "history.json").read_text())


def _assert_close_runs(single: Path, ddp: Path) -> float:
    """Weights and history of the two runs agree within ATOL; returns the largest weight difference."""
    expected, actual = _weights(single), _weights(ddp)
    assert expected.keys() == actual.keys()
    worst = 0.0
    for key, value in expected.items():
        assert value.shape == actual[key].shape, key
        torch.testing.assert_close(actual[key], value, atol=ATOL, rtol=0, msg=key)
        worst = max(worst, (actual[key] - value).abs().max().item())
    history, reference = _history(ddp), _history(single)
    assert [e["epoch"] for e in history] == list(range(1, EPOCHS + 1))  # each epoch once
    for got, want in zip(history, reference, strict=True):
        assert got.keys() == want.keys()
        for field in want:
            assert got[field] == pytest.approx(want[field], rel=ATOL, abs=ATOL), (got["epoch"], field)
    return worst


def _assert_written_once(root: Path, output: str, writes: dict[str, list[str]]) -> None:
    """Outputs exist, the log and dvclive hold every epoch once, and only rank 0 wrote anything."""
    assert sorted(writes) == ["rank0", "rank1"], writes.keys()  # both workers ran (and were audited)
    assert writes["rank1"] == [], writes["rank1"]
    rank0 = set(writes["rank0"])
    for path in (
        f"models/{NAME}/checkpoint.pt",
        f"models/{NAME}/model.pt",
        f"models/{NAME}/history.json",
        f"dvclive/{NAME}/metrics.json",
        f"plots/{NAME}/augmentation.png",
    ):
        assert (root / path).exists(), path
        assert path in rank0 or any(
            name.startswith(f"{Path(path).parent}/.{Path(path).name}.") for name in rank0
        )
    for epoch in range(1, EPOCHS + 1):
        assert output.count(f"{NAME} epoch {epoch}/{EPOCHS}:") == 1, output
    assert output.count(f"wrote models/{NAME}/model.pt") == 1, output
    metrics = json.loads((root / "dvclive" / NAME / "metrics.json").read_text())
    assert set(metrics) == {"train", "val"}
    assert metrics["val"]["acc"] == pytest.approx(_history(root)[-1]["val_acc"])
    rows = (root / "dvclive" / NAME / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert rows[0] == "step\tloss" and [r.split("\t")[0] for r in rows[1:]] == [
        str(s) for s in range(1, EPOCHS + 1)
    ]


@pytest.mark.parametrize("resident", [False, True], ids=["host", "resident"])
def test_two_gloo_processes_match_a_single_process_run(tmp_path, resident):
    """With run.resident_data: true each rank batches its shard from its own copy of the splits."""
    single = tmp_path / "single"
    write_dataset(single, sizes=SIZES)
    train_model(parse_config(NAME, _params()), root=single, log=lambda _: None)

    ddp = tmp_path / "ddp"
    write_dataset(ddp, sizes=SIZES)
    params = _params(nproc_per_node=2)
    params["run"]["resident_data"] = resident
    write_params(ddp, params)
    env, audit = _audit_env(tmp_path, ddp)
    run = subprocess.run(
        [sys.executable, str(STAGE), NAME], cwd=ddp, env=env, capture_output=True, text=True, timeout=300
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "x 2 processes (DDP)" in run.stdout
    assert ("run.resident_data: train and valid split(s) kept on cpu" in run.stdout) == resident
    _assert_written_once(ddp, output, _writes(audit))
    worst = _assert_close_runs(single, ddp)
    print(f"largest weight difference DDP vs single process: {worst:.3g} (tolerance {ATOL})")


def _repo(tmp_path: Path) -> Path:
    """A git + DVC repository with the real train stage, the package and a toy dataset."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "stages").mkdir()
    shutil.copy2(STAGE, repo / "stages" / "train.py")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stages["train"]}}, sort_keys=False))
    write_dataset(repo, sizes=SIZES)
    write_params(repo, _params(nproc_per_node=2))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    git = ["git", "-c", "user.name=cnnpipe test", "-c", "user.email=test@cnnpipe.invalid"]
    for command in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        ["git", "add", "-A"],
        [*git, "commit", "-q", "-m", "baseline"],  # dvclive needs a commit to compare against
    ):
        subprocess.run(command, cwd=repo, check=True, capture_output=True, env=env)
    return repo


def test_dvc_repro_runs_the_train_stage_as_two_processes(tmp_path):
    repo = _repo(tmp_path)
    env, audit = _audit_env(tmp_path, repo, src=repo / "src")
    repro = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", f"train@{NAME}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = repro.stdout + repro.stderr
    assert repro.returncode == 0, output
    _assert_written_once(repo, output, _writes(audit))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"][f"train@{NAME}"]
    assert lock["params"]["params.yaml"]["run.distributed.nproc_per_node"] == 2
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", f"train@{NAME}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr


def _completed_epochs(checkpoint: Path) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # not written yet (replaced atomically, never half-written)
        return 0


def _processes_in(directory: Path) -> list[int]:
    """Pids of processes whose working directory is ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == directory:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux /proc")
def test_killed_ddp_run_stops_its_workers_and_resumes(tmp_path):
    epochs = 12
    params = _params(nproc_per_node=2)
    params["models"][NAME]["train"]["epochs"] = epochs
    reference_params = _params()
    reference_params["models"][NAME]["train"]["epochs"] = epochs
    sizes = (400, 40, 20)

    single = tmp_path / "single"
    write_dataset(single, sizes=sizes)
    train_model(parse_config(NAME, reference_params), root=single, log=lambda _: None)

    work = (tmp_path / "work").resolve()
    write_dataset(work, sizes=sizes)
    write_params(work, params)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DVC_NO_ANALYTICS": "1"}
    checkpoint = work / "models" / NAME / "checkpoint.pt"
    launcher = subprocess.Popen(
        [sys.executable, str(STAGE), NAME],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    try:
        while launcher.poll() is None and time.monotonic() < deadline:
            if _completed_epochs(checkpoint) >= 1:
                launcher.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if launcher.poll() is None:
            launcher.kill()
        output = launcher.communicate(timeout=60)[0].decode()
    assert launcher.returncode == -signal.SIGKILL, output
    deadline = time.monotonic() + 30
    while _processes_in(work) and time.monotonic() < deadline:  # the workers notice within a second
        time.sleep(0.2)
    assert _processes_in(work) == [], "workers outlived their killed launcher"
    done = _completed_epochs(checkpoint)
    assert 1 <= done < epochs, f"the run was not killed mid-run ({done} epochs done)"

    rerun = subprocess.run(
        [sys.executable, str(STAGE), NAME], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.count(f"resuming {NAME} from epoch {done + 1}/{epochs}") == 1
    history = _history(work)
    assert [e["epoch"] for e in history] == list(range(1, epochs + 1))
    expected, actual = _weights(single), _weights(work)
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, atol=ATOL, rtol=0, msg=key)


# --- launcher settings and their errors (no processes started) --------------------------------


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"nproc_per_node": 0}, "run.distributed.nproc_per_node: must be an integer >= 1, got 0"),
        ({"nnodes": 2}, "run.distributed.rdzv_endpoint: 2 nodes need the host:port of node 0"),
        ({"nnodes": 2, "rdzv_endpoint": "node0"}, "run.distributed.rdzv_endpoint: expected host:port"),
        ({"gpus": 2}, "run.distributed.gpus: unknown key; expected one of nproc_per_node, nnodes"),
    ],
)
def test_bad_launcher_params_fail_in_one_line(run, message):
    with pytest.raises(ParamError, match=f"^{message}"):
        parse_distributed({"run": {"distributed": run}})


def test_launcher_params_default_to_one_process():
    assert parse_distributed({"run": {"device": "cpu"}}) == DistributedSettings(1, 1, None)
    settings = parse_distributed({"run": {"distributed": {"nproc_per_node": 4, "nnodes": 1}}})
    assert settings.world_size == 4


def test_more_processes_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParamError, match=r"nproc_per_node: 4 processes but only 2 CUDA device\(s\) visible"):
        distributed.launch(DistributedSettings(4, 1), "auto", STAGE, [NAME])


def test_multi_node_launch_needs_node_rank_and_uses_static_rendezvous():
    settings = DistributedSettings(nproc_per_node=2, nnodes=3, rdzv_endpoint="10.0.0.1:29500")
    with pytest.raises(ParamError, match=r"NODE_RANK=0\.\.2 in each node's environment .*it is not set"):
        distributed.node_rank(settings, {})
    with pytest.raises(ParamError, match="got '3'"):
        distributed.node_rank(settings, {"NODE_RANK": "3"})
    assert distributed.node_rank(settings, {"NODE_RANK": "2"}) == 2
    args = distributed.launcher_args(settings, 2, "stages/train.py", [NAME])
    assert args == [
        "--nproc-per-node", "2", "--nnodes", "3", "--node-rank", "2", "--master-addr", "10.0.0.1",
        "--master-port", "29500", "--max-restarts", "0", "stages/train.py", NAME,
    ]  # fmt: skip
    single_node = distributed.launcher_args(DistributedSettings(2, 1), 0, "stages/train.py", [NAME])
    assert "--standalone" in single_node and "--master-addr" not in single_node


def test_worker_error_is_reported_once(tmp_path):
    """Every worker fails alike (no stats file); the stage prints the one line once."""
    write_dataset(tmp_path, sizes=SIZES)
    (tmp_path / "data" / "stats" / "toy.json").unlink()
    write_params(tmp_path, _params(nproc_per_node=2))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, str(STAGE), NAME], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1
    assert (run.stdout + run.stderr).strip() == (
        f"error: models.{NAME}.normalize: 'stats' needs data/stats/toy.json; run `dvc repro` to compute it"
    )
    assert not (tmp_path / "models").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_resume_from_node_0_checkpoint_and_only_node_0_writes(tmp_path):
    """Two 'nodes' on this machine (static rendezvous on 127.0.0.1), one process each.

    Node 0 holds a checkpoint of epoch 1 (from a single-process run); node 1 has only the
    data. Both continue from epoch 2 (node 1 gets the checkpoint from rank 0), and the result
    matches an uninterrupted single-process run.
    """
    single = tmp_path / "single"
    write_dataset(single, sizes=SIZES)
    train_model(parse_config(NAME, _params()), root=single, log=lambda _: None)

    nodes = [tmp_path / "node0", tmp_path / "node1"]
    endpoint = f"127.0.0.1:{_free_port()}"
    for node in nodes:
        write_dataset(node, sizes=SIZES)
        write_params(node, _params(nproc_per_node=1, nnodes=2, rdzv_endpoint=endpoint))
    first_epoch = _params()
    first_epoch["run"]["max_epochs"] = 1
    train_model(parse_config(NAME, first_epoch), root=nodes[0], log=lambda _: None)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, str(STAGE), NAME]
    other = subprocess.Popen(
        command, cwd=nodes[1], env={**env, "NODE_RANK": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        main = subprocess.run(
            command, cwd=nodes[0], env={**env, "NODE_RANK": "0"}, capture_output=True, text=True, timeout=300
        )
        other_output = other.communicate(timeout=120)[0].decode()
    finally:
        if other.poll() is None:
            other.kill()
    assert main.returncode == 0, main.stdout + main.stderr
    assert other.returncode == 0, other_output
    assert f"resuming {NAME} from epoch 2/{EPOCHS}" in main.stdout
    assert other_output.strip() == ""  # rank 1 prints nothing
    assert not any((nodes[1] / d).exists() for d in ("models", "dvclive", "plots"))
    _assert_close_runs(single, nodes[0])
