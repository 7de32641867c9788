"""Each dvc.yaml stage lists exactly the params.yaml keys its script reads.

A key a stage reads but does not list lets a change to it go unnoticed by `dvc status`: the
stage's outputs then no longer match its params. A key listed but never read reruns the stage
for changes that cannot touch its outputs. Each concrete stage (every ``foreach`` item) runs its
script's ``main()`` in a scratch directory, with ``load_params`` handing it params.yaml in a
mapping that records every value read, and the stage's work (download, prepare, train, …)
replaced by a no-op: every stage parses all the params it uses before that work starts and
passes the work parsed settings, never the params.
"""

from __future__ import annotations

import copy
import importlib.util
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: What each script does once its params are parsed: replaced by a no-op here.
WORK = {
    "download.py": ("fetch_dataset", "fetch_local_set"),
    "prepare.py": ("prepare_dataset",),
    "prepare_folder.py": ("prepare_imagefolder",),
    "subset.py": ("subset_by_classes", "subset_by_attribute"),
    "train.py": ("train_model",),
    "evaluate.py": ("evaluate_model",),
}

#: Keys a stage reads but deliberately does not list, and why.
NOT_LISTED = {
    "train": {
        "run.distributed.rdzv_endpoint": "where node 0 listens does not change what is trained",
    },
}


class _Recording(dict):
    """A params mapping that adds the dotted path of every leaf value read to ``reads``.

    A subclass of dict, so isinstance checks and ``json.dumps`` see a dict; overriding
    ``__iter__`` sends copies (``dict(m)``, ``{**m}``) through ``keys()`` and ``__getitem__`` too.
    """

    def __init__(self, data: dict, path: str, reads: set[str]):
        super().__init__(data)
        self._path, self._reads = path, reads

    def __getitem__(self, key):
        value = super().__getitem__(key)
        path = f"{self._path}.{key}" if self._path else str(key)
        if isinstance(value, dict):
            return _Recording(value, path, self._reads)
        self._reads.add(path)
        return value

    def __iter__(self) -> Iterator:
        return super().__iter__()

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:  # an absent key reads nothing from params.yaml
            return default

    def items(self):
        return [(key, self[key]) for key in self]

    def values(self):
        return [self[key] for key in self]


def concrete_stages(dvcyaml: dict, params: dict) -> Iterator[tuple[str, str, list[str], list[str]]]:
    """(stage name, script, script args, listed params) of every stage, ``foreach`` expanded."""
    for name, stage in dvcyaml["stages"].items():
        if "foreach" not in stage:
            items = [(name, {})]
        elif stage["foreach"] == "${models}":
            items = [(f"{name}@{key}", {"${key}": key}) for key in params["models"]]
        else:
            items = [(f"{name}@{item}", {"${item}": item}) for item in stage["foreach"]]
        body = stage.get("do", stage)
        for stage_name, subst in items:

            def fill(text: str, subst=subst) -> str:
                for var, value in subst.items():
                    text = text.replace(var, value)
                return text

            words = shlex.split(fill(body["cmd"]))
            script = next(w for w in words if w.endswith(".py"))
            args = words[words.index(script) + 1 :]
            listed = [fill(key) for key in body.get("params", [])]
            yield stage_name, script, args, listed


def keys_read(script: str, args: list[str], params: dict, workdir: Path, monkeypatch) -> set[str]:
    """The params.yaml paths ``script``'s main() reads, run with ``args`` in ``workdir``."""
    spec = importlib.util.spec_from_file_location(f"_stage_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reads: set[str] = set()
    monkeypatch.setattr(module, "load_params", lambda *a, **k: _Recording(copy.deepcopy(params), "", reads))
    for name in WORK[Path(script).name]:
        monkeypatch.setattr(module, name, lambda *a, **k: None)
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.chdir(workdir)
    module.main()
    return reads


def param_problems(stage: str, listed: list[str], reads: set[str]) -> list[str]:
    """One line per key read but not listed, or listed but not read; [] when they match."""
    exempt = NOT_LISTED.get(stage.split("@")[0], {})

    def covered(path: str, key: str) -> bool:
        return path == key or path.startswith(key + ".")

    problems = [
        f"{stage}: reads {path}, not in its params"
        for path in sorted(reads)
        if path not in exempt and not any(covered(path, key) for key in listed)
    ]
    problems += [
        f"{stage}: lists {key}, which it never reads"
        for key in listed
        if not any(covered(path, key) for path in reads)
    ]
    return problems


DVCYAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
STAGES = [stage for stage in concrete_stages(DVCYAML, PARAMS) if Path(stage[1]).name in WORK]


def test_every_stage_with_params_is_checked():
    """Only stats and explore run without params; every other script has its work listed above."""
    scripts = {Path(script).name for _, script, _, _ in concrete_stages(DVCYAML, PARAMS)}
    assert scripts - set(WORK) == {"stats.py", "explore.py"}
    for name, script, _, listed in concrete_stages(DVCYAML, PARAMS):
        if Path(script).name not in WORK:
            assert not listed, f"{name} lists params but its script is not checked here"


@pytest.mark.parametrize(("stage", "script", "args", "listed"), STAGES, ids=[s[0] for s in STAGES])
def test_stage_lists_exactly_the_params_its_script_reads(stage, script, args, listed, tmp_path, monkeypatch):
    reads = keys_read(script, args, PARAMS, tmp_path, monkeypatch)
    assert reads, f"{stage}: no params read; the recording mapping is not reaching its parser"
    assert not param_problems(stage, listed, reads), "\n".join(param_problems(stage, listed, reads))


def test_a_dropped_or_extra_key_is_reported(tmp_path, monkeypatch):
    stage, script, args, listed = next(s for s in STAGES if s[0] == "evaluate@mnist_cnn")
    reads = keys_read(script, args, PARAMS, tmp_path, monkeypatch)
    dropped = [key for key in listed if key != "run.device"]
    assert param_problems(stage, dropped, reads) == [
        "evaluate@mnist_cnn: reads run.device, not in its params"
    ]
    extra = [*listed, "run.amp"]
    assert param_problems(stage, extra, reads) == ["evaluate@mnist_cnn: lists run.amp, which it never reads"]
