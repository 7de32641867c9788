"""End to end: the README's queued grid, `dvc exp run --queue` of three learning rates on two workers.

Runs in its own copy of the repository `make demo` ran in (tests/helpers/demo.py), then shows
the grid the README's ways: `dvc exp show --md --only-changed` and `dvc plots diff`.
"""

import json
import time

import pytest

from tests.helpers.worktree import link_outputs_from_cache, run

pytestmark = pytest.mark.demo


@pytest.mark.slow
def test_queued_grid_of_three_completes_with_two_workers(demo_repo):
    repo, env, _ = demo_repo
    link_outputs_from_cache(repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline for queued experiments"], repo, env)
    run(["dvc", "exp", "run", "--queue", "-S", "models.cifar_net.train.lr=0.002,0.005,0.01"], repo, env)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 3, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env))
    lrs = set()
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("metrics/cifar_net.json", {}).get("data", {})
                if "accuracy" in metrics:
                    lrs.add(params["models"]["cifar_net"]["train"]["lr"])
    assert {0.002, 0.005, 0.01} <= lrs
    # the README's comparison commands
    table = run(["dvc", "exp", "show", "--md", "--only-changed"], repo, env)
    assert "models.cifar_net.train.lr" in table
    names = run(["dvc", "exp", "list", "--name-only"], repo, env).split()
    run(["dvc", "plots", "diff", *names, "-o", str(repo / "plots-diff")], repo, env)
    assert "cifar_net: loss, train vs validation" in (repo / "plots-diff" / "index.html").read_text()
