"""The repository `make demo` ran in, for the end-to-end tests (tests/demo/).

`.ci/run` runs the demo once, then the metric gate, then these tests with ``CNNPIPE_DEMO_REPO``
(the repository it ran in) and ``CNNPIPE_DEMO_LOG`` (its output). Without them (a plain
`make test`) the first test that asks runs the demo itself, once for the whole session: the
test workers (pytest-xdist) share that run through a lock in their common temporary folder.
Either way the sample mirror lives outside the repository, so the run shows that a fresh clone
needs nothing but ``data.mirror``. Each test module then works in its own copy of it
(:func:`tests.helpers.worktree.copy_demo_repo`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from tests.helpers.worktree import clone_env, commit_copy, copy_demo_repo, copy_worktree, run


def _run_demo_once(shared: Path) -> tuple[Path, str]:
    """Run `make demo` in a fresh copy under ``shared`` unless a worker already has; (repo, output).

    A failed demo fails every test that asks for it, with its output, without running it again.
    """
    repo, log, failed = shared / "demo", shared / "demo.log", shared / "demo.failed"
    shared.mkdir(parents=True, exist_ok=True)
    with FileLock(str(shared / "demo.lock")):
        if not log.is_file() and not failed.is_file():
            repo.mkdir()
            env = clone_env(repo)
            copy_worktree(repo)
            commit_copy(repo, env)
            venv = Path(sys.executable).parent.parent
            mirror = shared / "sample_mirror"  # outside the repository
            make = ["make", "demo", f"VENV={venv}", "NO_INSTALL=1", f"SAMPLE_MIRROR={mirror}"]
            try:
                log.write_text(run(make, repo, env))
            except AssertionError as exc:
                failed.write_text(str(exc))
    if failed.is_file():
        pytest.fail(f"`make demo` failed in {repo}:\n{failed.read_text()}")
    return repo, log.read_text()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    """(the repository the demo ran in, the demo's output): CI's run, or one made for this session."""
    done = os.environ.get("CNNPIPE_DEMO_REPO")
    if done:
        return Path(done), Path(os.environ["CNNPIPE_DEMO_LOG"]).read_text()
    # getbasetemp() is per worker under xdist; its parent is the session's, shared by all workers.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return _run_demo_once(shared / "demo-run")


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory, demo_run) -> tuple[Path, dict[str, str], str]:
    """A copy of the demo's repository for one test module: (repo, its environment, the demo's output)."""
    source, output = demo_run
    repo = tmp_path_factory.mktemp("clone")
    copy_demo_repo(source, repo)
    return repo, clone_env(repo), output
