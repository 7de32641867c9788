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

Run:  python benchmarks/dvc_noop.py [--repo PATH] [--repeat 3] [--json FILE]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="a repository where the demo ran")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
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
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
