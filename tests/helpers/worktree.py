"""Copy this repository as a fresh clone would hold it, and run commands there (end-to-end tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def copy_worktree(dest: Path) -> None:
    """Copy tracked files plus untracked, non-ignored ones into ``dest``."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listing.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def clone_env(repo: Path) -> dict[str, str]:
    """The environment for commands run in a copy made by :func:`copy_worktree`.

    This virtual environment comes first on PATH, the copy's ``src`` is imported, git has an
    identity, and bytecode is written as on a user's machine: ``__pycache__`` next to the code
    a stage imports must not change the hash of that code dependency.
    """
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run(cmd, cwd: Path, env: dict[str, str], check: bool = True) -> str:
    """Run ``cmd`` in ``cwd``; return its stdout and stderr (asserting success unless ``check`` is off)."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def commit_copy(repo: Path, env: dict[str, str]) -> None:
    """Make the copy a git repository with everything committed, as a fresh clone is."""
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "clone"], repo, env)


# Trees whose files are only ever replaced, never written in place (DVC's cache, and stage outputs,
# which DVC removes before a stage reruns and the stages write through a rename): hard links
# instead of gigabytes of copies.
_LINKED = {".dvc/cache", "data", "models"}


def copy_demo_repo(source: Path, dest: Path) -> None:
    """Copy a repository the demo ran in (git history, DVC cache and experiments included)."""

    def copy(src: Path, dst: Path) -> None:
        for entry in src.iterdir():
            rel = entry.relative_to(source).as_posix()
            if rel in (".venv", ".dvc/tmp") or entry.name == "__pycache__":
                continue
            if rel == ".dvc":
                (dst / entry.name).mkdir()
                copy(entry, dst / entry.name)
            elif entry.is_dir() and not entry.is_symlink():
                link = os.link if rel in _LINKED else shutil.copy2
                shutil.copytree(entry, dst / entry.name, symlinks=True, copy_function=link)
            else:
                shutil.copy2(entry, dst / entry.name, follow_symlinks=False)

    copy(source, dest)


def link_outputs_from_cache(repo: Path, env: dict[str, str]) -> None:
    """Let DVC link outputs out of its cache instead of copying them.

    Each queued experiment checks the workspace's outputs out into its own copy: links make that
    cheap (DVC makes linked files read-only).
    """
    run(["dvc", "config", "--local", "cache.type", "hardlink,symlink,copy"], repo, env)
