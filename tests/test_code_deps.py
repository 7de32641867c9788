"""Each dvc.yaml stage's code deps are exactly the modules its script imports (tests/importclosure.py).

A module missing from a stage's deps lets an edit to it go unnoticed by `dvc status`; one listed
but never run (or a whole directory) reruns the stage for edits that cannot change its outputs.
"""

from __future__ import annotations

import copy
import json
import shlex
import textwrap
from pathlib import Path

import yaml

from tests.helpers.importclosure import import_closure
from tests.helpers.worktree import clone_env, commit_copy, copy_worktree, run

ROOT = Path(__file__).resolve().parents[1]


def _load_dvcyaml(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())


def _scripts(cmd) -> list[str]:
    """The ``*.py`` scripts a stage's ``cmd`` (one command or a list of them) runs."""
    commands = cmd if isinstance(cmd, list) else [cmd]
    return [word for command in commands for word in shlex.split(command) if word.endswith(".py")]


def code_dep_problems(dvcyaml: dict, root: Path = ROOT) -> list[str]:
    """One line per stage code dep that is missing, extra, or a directory; [] when all match.

    A foreach stage is checked once, through its ``do`` template: the script and so its import
    closure are the same for every item. Code deps are the ``.py`` deps plus anything under
    ``src/``; deps with ``${`` (data paths) are not code.
    """
    problems = []
    closures: dict[str, set[str]] = {}  # several stages run the same script
    for name, stage in dvcyaml["stages"].items():
        stage = stage.get("do", stage)
        scripts = _scripts(stage["cmd"])
        if not scripts:
            problems.append(f"{name}: no .py script found in cmd {stage['cmd']!r}")
            continue
        for script in scripts:
            if script not in closures:
                closures[script] = import_closure(script, root)
        wanted = set().union(*(closures[script] for script in scripts))
        listed = set()
        for dep in stage.get("deps", []):
            if "${" in dep:
                continue
            if dep.endswith(".py"):
                listed.add(dep)
            elif dep.startswith("src/"):
                problems.append(f"{name}: directory dep {dep}; list the modules the stage imports instead")
        problems += [f"{name}: missing {path}" for path in sorted(wanted - listed)]
        problems += [f"{name}: extra {path} (not imported)" for path in sorted(listed - wanted)]
    return problems


def test_every_stage_lists_exactly_the_modules_its_script_imports():
    problems = code_dep_problems(_load_dvcyaml())
    assert not problems, "dvc.yaml code deps differ from the stage scripts' imports:\n" + "\n".join(problems)


def _deps(dvcyaml: dict, stage: str) -> list[str]:
    return dvcyaml["stages"][stage]["do"]["deps"]


def test_a_dropped_extra_or_directory_dep_is_reported_with_its_stage():
    dvcyaml = _load_dvcyaml()
    dropped = copy.deepcopy(dvcyaml)
    _deps(dropped, "train").remove("src/cnnpipe/cpus.py")
    assert code_dep_problems(dropped) == ["train: missing src/cnnpipe/cpus.py"]

    extra = copy.deepcopy(dvcyaml)
    _deps(extra, "evaluate").append("src/cnnpipe/train/lr_find.py")
    assert code_dep_problems(extra) == ["evaluate: extra src/cnnpipe/train/lr_find.py (not imported)"]

    directory = copy.deepcopy(dvcyaml)
    deps = _deps(directory, "stats")
    deps[:] = [d for d in deps if not d.startswith("src/cnnpipe/data/")] + ["src/cnnpipe/data"]
    problems = code_dep_problems(directory)
    assert problems[0] == "stats: directory dep src/cnnpipe/data; list the modules the stage imports instead"
    assert problems[1:] == [
        "stats: missing src/cnnpipe/data/__init__.py",
        "stats: missing src/cnnpipe/data/arrays.py",
        "stats: missing src/cnnpipe/data/stats.py",
    ]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


def test_closure_follows_lazy_relative_and_submodule_imports_but_not_type_checking(tmp_path):
    _write(
        tmp_path,
        {
            "stages/s.py": """
                import os
                from pkg import a, CONSTANT
                def main():
                    import pkg.sub.lazy
            """,
            "src/pkg/__init__.py": "CONSTANT = 1\n",
            "src/pkg/a.py": """
                from typing import TYPE_CHECKING
                from .sub import rel
                if TYPE_CHECKING:
                    from pkg import typing_only
                else:
                    from pkg import runtime_branch
            """,
            "src/pkg/sub/__init__.py": "",
            "src/pkg/sub/rel.py": "from ..b import name\n",
            "src/pkg/sub/lazy.py": "",
            "src/pkg/b.py": "name = 1\n",
            "src/pkg/typing_only.py": "",
            "src/pkg/runtime_branch.py": "",
            "src/pkg/unused.py": "",
        },
    )
    assert import_closure("stages/s.py", tmp_path) == {
        "stages/s.py",
        "src/pkg/__init__.py",
        "src/pkg/a.py",
        "src/pkg/b.py",
        "src/pkg/runtime_branch.py",
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/lazy.py",
        "src/pkg/sub/rel.py",
    }


# A chain of committed stages ending in one train stage: its deps and outputs are stand-in files,
# recorded in dvc.lock by `dvc commit` without running anything.
MODEL = "mnist_cnn"
STAND_INS = [
    "data/raw/mnist/train-images-idx3-ubyte.gz",
    "data/prepared/mnist/classes.json",
    "data/stats/mnist.json",
    f"models/{MODEL}/model.pt",
    f"models/{MODEL}/history.json",
    f"models/{MODEL}/checkpoint.pt",
    f"plots/{MODEL}/augmentation.png",
    f"dvclive/{MODEL}/metrics.json",
    f"dvclive/{MODEL}/plots/metrics/train/loss.tsv",
]


def _status(repo: Path, env: dict[str, str]) -> dict:
    output = run(["dvc", "status", "--json", "--with-deps", f"train@{MODEL}"], repo, env)
    return json.loads(output[output.index("{") :])


def _touch_module(repo: Path, rel: str) -> None:
    with (repo / rel).open("a") as f:
        f.write("# edited\n")


def _modified(*paths: str) -> list[dict]:
    return [{"changed deps": dict.fromkeys(paths, "modified")}]


def test_dvc_status_sees_an_edit_to_an_imported_module_and_ignores_an_unimported_one(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_worktree(repo)
    env = clone_env(repo)
    commit_copy(repo, env)
    for rel in STAND_INS:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(f"stand-in for {rel}\n")
    run(["dvc", "commit", "--force", "--with-deps", f"train@{MODEL}"], repo, env)

    # lr_find.py sits in src/cnnpipe/train/ (once a whole-directory dep) but no stage runs it
    _touch_module(repo, "src/cnnpipe/train/lr_find.py")
    assert _status(repo, env) == {}

    # both were missing before: sources.py from the prepare stages, cpus.py from train
    _touch_module(repo, "src/cnnpipe/data/sources.py")
    _touch_module(repo, "src/cnnpipe/cpus.py")
    assert _status(repo, env) == {
        "download@mnist": _modified("src/cnnpipe/data/sources.py"),
        "prepare_idx@mnist": _modified("src/cnnpipe/cpus.py", "src/cnnpipe/data/sources.py"),
        f"train@{MODEL}": _modified("src/cnnpipe/cpus.py"),
    }
