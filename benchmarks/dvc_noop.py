"""`dvc status` and `dvc repro` with nothing to do, with and without ruamel.yaml's C loader.

Where the time of a no-op goes (``dvc repro --cprofile-dump``): DVC reads ``params.yaml`` once
per stage that lists params (every train, evaluate, prepare and subset stage, ~55 of them), and
``dvc.yaml`` / ``dvc.lock`` once, all with ruamel.yaml's ``typ="safe"`` loader. Without the
compiled ``ruamel.yaml.clib`` that loader is pure Python, and parsing is most of the run. cnnpipe
therefore depends on ``ruamel.yaml.clib``; this script measures both sides in one run, in a
repository where the pipeline has run (``make demo``), so every stage is up to date:

* with the C loader, as installed;
* baseline: the same command with the C extension hidden (a ``_ruamel_yaml`` module that fails
  to import, first on ``PYTHONPATH``), so ruamel falls back to its pure-Python parser.

``--breakdown`` then runs one more ``dvc repro`` with DVC's parts timed in its own process
(:data:`PARTS`: reading each stage's params, parsing YAML, the ``dpath`` key lookups, loading
``dvc.yaml``/``dvc.lock``, each dep's and out's state) and prints where its time went.

Run:  python benchmarks/dvc_noop.py [--repo PATH] [--repeat 3] [--json FILE] [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UP_TO_DATE = {
    "status": "Data and pipelines are up to date.",
    "repro": "Data and pipelines are up to date.",
}


def _dvc() -> str:
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    if not Path(dvc).exists():
        sys.exit("error: dvc is not on PATH; activate the project's environment (make install)")
    return dvc


def _has_c_loader(env: dict[str, str]) -> bool:
    """Whether ruamel.yaml finds its compiled parser in a Python started with ``env``."""
    probe = "import sys, ruamel.yaml.main as m; sys.exit(0 if m.CParser is not None else 1)"
    return subprocess.run([sys.executable, "-c", probe], env=env, check=False).returncode == 0


def time_command(cmd: list[str], repo: Path, env: dict[str, str], expect: str, repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` runs of ``cmd`` in ``repo``; each must report ``expect``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0 or expect not in done.stdout:
            sys.exit(
                f"error: `{' '.join(cmd[1:])}` in {repo} did not report {expect!r} (exit {done.returncode}); "
                "run `make demo` there first so every stage is up to date\n"
                + done.stdout[-2000:]
                + done.stderr[-2000:]
            )
    return times


#: The DVC functions ``--breakdown`` times: (module, attribute path, what the row says).
PARTS = (
    ("dvc.dependency.param", "read_param_file", "reading the params of the stages that list params"),
    ("dvc.utils.serialize._yaml", "parse_yaml", "parsing YAML (params.yaml per stage, dvc.yaml, dvc.lock)"),
    ("dpath", "get", "looking each listed param key up (dpath)"),
    ("dvc.utils.strictyaml", "load", "loading and validating dvc.yaml and dvc.lock"),
    ("dvc.output", "Output.status", "the state of each file dep and out"),
    ("dvc.repo.reproduce", "collect_stages", "collecting the stages"),
    ("dvc.repo.reproduce", "_reproduce", "checking every stage for changes"),
)


def _timed_child(out: Path) -> None:
    """Run ``dvc repro`` in this process with :data:`PARTS` timed; write the figures to ``out``."""
    import atexit
    import importlib

    started = time.perf_counter()
    spent = {label: [0.0, 0] for *_, label in PARTS}

    def timed(function, label):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label][0] += time.perf_counter() - start
                spent[label][1] += 1

        return wrapper

    for module_name, path, label in PARTS:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, timed(getattr(owner, name), label))
    imported = time.perf_counter() - started

    def report() -> None:
        total = time.perf_counter() - started
        out.write_text(json.dumps({"total": total, "imports": imported, "parts": spent}))

    atexit.register(report)
    from dvc.cli import main as dvc_main

    sys.argv = ["dvc", "repro"]
    dvc_main()


def breakdown(repo: Path, env: dict[str, str]) -> dict:
    """Where one no-op ``dvc repro`` in ``repo`` spends its time (see :func:`_timed_child`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "parts.json")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--timed-child", str(out)]
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            sys.exit(
                f"error: the timed `dvc repro` in {repo} failed (exit {done.returncode})\n"
                + done.stderr[-2000:]
            )
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="a repository where the demo ran")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--breakdown", action="store_true", help="also time DVC's parts of one dvc repro")
    parser.add_argument("--timed-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timed_child:
        _timed_child(args.timed_child)
        return
    dvc = _dvc()

    with tempfile.TemporaryDirectory() as hide:
        Path(hide, "_ruamel_yaml.py").write_text("raise ImportError('hidden by benchmarks/dvc_noop.py')\n")
        base_env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        pure_env = {
            **base_env,
            "PYTHONPATH": os.pathsep.join(filter(None, [hide, os.environ.get("PYTHONPATH")])),
        }
        for env, want in ((base_env, True), (pure_env, False)):
            if _has_c_loader(env) != want:
                sys.exit(
                    "error: ruamel.yaml's C loader is not installed (pip install ruamel.yaml.clib)"
                    if want
                    else "error: could not hide ruamel.yaml's C loader for the baseline"
                )
        sides = {"C loader": base_env, "pure-Python YAML (baseline)": pure_env}
        results: dict[str, dict[str, list[float]]] = {}
        for side, env in sides.items():
            results[side] = {
                name: time_command([dvc, name], args.repo, env, expect, args.repeat)
                for name, expect in UP_TO_DATE.items()
            }

    print(f"no-op dvc commands in {args.repo.resolve()} ({args.repeat} runs each, median / best, s)\n")
    print(f"{'command':<12} {'C loader':>16} {'pure-Python YAML':>18} {'speed-up':>9}")
    ours, base = results["C loader"], results["pure-Python YAML (baseline)"]
    for name in UP_TO_DATE:
        fast, slow = statistics.median(ours[name]), statistics.median(base[name])
        print(
            f"dvc {name:<8} {fast:>8.2f} / {min(ours[name]):.2f} {slow:>10.2f} / {min(base[name]):.2f} "
            f"{slow / fast:>8.1f}x"
        )
    if args.breakdown:
        parts = breakdown(args.repo, base_env)
        print(
            f"\none dvc repro, timed in its process: {parts['total']:.2f} s "
            f"after {parts['imports']:.2f} s of imports"
        )
        for label, (seconds, calls) in parts["parts"].items():
            print(f"  {label:<58} {seconds:>6.2f} s  {calls:>5} calls")
        results["breakdown"] = parts
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
