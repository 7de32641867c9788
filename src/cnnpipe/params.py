"""Reading params.yaml: one place, and a one-line error naming a missing or bad key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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
            raise ParamError(f"params.yaml: missing key {key!r}; add it (see README, 'Parameters')")
        node = node[part]
    return node
