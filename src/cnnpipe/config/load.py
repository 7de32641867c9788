"""Reading params.yaml: loading it, a dotted-key lookup, and the watch for a rewrite under a running stage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from cnnpipe.checks import missing, section
from cnnpipe.errors import ParamError

PARAMS_FILE = Path("params.yaml")
_MISSING = object()


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Load params.yaml (or another params file) as a dict."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path} not found: run stages from the repository root")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise ParamError(f"{path} must hold a mapping of keys at the top level")
    return params


def get(params: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """Return the value at dotted ``key`` (e.g. ``"datasets.mnist.valid_first"``).

    Without ``default`` a missing key raises a ParamError naming it.
    """
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _MISSING:
                return default
            raise missing(key)
        node = node[part]
    return node


def model_names(params: Mapping[str, Any]) -> list[str]:
    """The keys of ``models:``, in params.yaml's order."""
    return list(section(params, "models"))


def _digest(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    values = {key: get(params, key, default=None) for key in keys}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def watch(
    keys: Sequence[str], started_with: Mapping[str, Any], path: str | Path = PARAMS_FILE
) -> Callable[[], bool]:
    """A check that ``path`` still holds, at ``keys``, what ``started_with`` (loaded from it) held.

    A stage loads params.yaml once, at start; another ``dvc exp run`` in the same workspace
    writes its own values into the file before DVC's lock stops it, and the running stage
    would then record outputs under params it did not use. The check re-reads the file and
    returns True once any of ``keys`` differs (or the file cannot be read).
    """
    expected = _digest(started_with, keys)

    def changed() -> bool:
        try:
            now = load_params(path)
        except ParamError:
            return True
        return _digest(now, keys) != expected

    return changed
