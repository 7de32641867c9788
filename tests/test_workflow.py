"""The GitHub Actions workflow parses and does what docs/remotes-and-ci.md says it does."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cnnpipe.cli import build_parser

WORKFLOW = Path(__file__).resolve().parents[1] / ".github/workflows/pipeline.yml"


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def steps(workflow):
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _step(steps, text):
    """The one step whose `run` script contains ``text``."""
    found = [s for s in steps if text in s.get("run", "")]
    assert len(found) == 1, f"{len(found)} steps run {text!r}"
    return found[0]


def test_triggers_and_runner(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "${{ vars.GPU_RUNNER || 'gpu' }}"
    assert workflow["permissions"]["pull-requests"] == "write"


def test_steps(steps):
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert _step(steps, "dvc repro --pull --allow-missing")
    gate = _step(steps, "cnnpipe check-metrics")
    assert gate["if"] == "github.event_name == 'pull_request'" and gate["continue-on-error"] is True
    assert gate["env"]["BASELINE"] == "origin/${{ github.base_ref }}"
    comment = _step(steps, "gh pr comment")
    assert 'dvc metrics diff "$BASELINE" --md' in comment["run"]
    assert 'dvc params diff "$BASELINE" --md' in comment["run"]
    assert comment["if"].startswith("always()")
    fail = next(s for s in steps if s.get("if", "").endswith("steps.gate.outcome == 'failure'"))
    assert "exit 1" in fail["run"]
    push = _step(steps, "dvc push")
    assert push["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert steps.index(gate) < steps.index(comment) < steps.index(fail)


def test_gate_arguments_are_ones_the_cli_accepts():
    args = build_parser().parse_args(["check-metrics", "--baseline", "origin/main", "--floors", "x.yaml"])
    assert (args.baseline, str(args.floors)) == ("origin/main", "x.yaml")


def test_every_run_script_is_valid_bash(steps):
    for step in steps:
        if "run" in step:
            script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
            result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert result.returncode == 0, f"{step['name']}: {result.stderr}"


def test_credentials_come_from_secrets_only(workflow, steps):
    envs = [workflow.get("env", {})] + [s.get("env", {}) for s in steps]
    for env in envs:
        for key, value in env.items():
            if re.search(r"KEY|SECRET|TOKEN|PASSWORD", key):
                assert re.fullmatch(r"\$\{\{ (secrets\.\w+|github\.token) \}\}", str(value)), key
