"""The one validation vocabulary for params.yaml values, and its one error format.

Every check takes the value and its full dotted key (``models.mnist_cnn.train.lr``) and
returns the value, normalized, or raises a one-line :class:`~cnnpipe.errors.ParamError`::

    <full key>: <what it must be>, got <the value as written>

e.g. ``models.mnist_cnn.train.lr: must be > 0, got -1``. :func:`param_error` builds that
line for a rule no check here covers, so every message keeps the same shape.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from cnnpipe.errors import ParamError


def param_error(key: str, need: str, value: Any) -> ParamError:
    """The error for ``key`` holding ``value`` where it ``need``s something else (``"must be …"``)."""
    return ParamError(f"{key}: {need}, got {value!r}")


def is_int(value: Any) -> bool:
    """True for an integer (numpy's too) that is not a bool (YAML's ``true`` is no count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool (no numeric strings)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, key: str) -> float:
    """A finite number; a numeric string is accepted (YAML 1.1 reads ``1e-3`` as a string)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise param_error(key, "expected a number", value) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise param_error(key, "expected a number", value)
    return float(value)


def positive(value: Any, key: str) -> float:
    """A number > 0."""
    if number(value, key) <= 0:
        raise param_error(key, "must be > 0", value)
    return float(value)


def non_negative(value: Any, key: str) -> float:
    """A number >= 0."""
    if number(value, key) < 0:
        raise param_error(key, "must be >= 0", value)
    return float(value)


def integer(value: Any, key: str, minimum: int) -> int:
    """An integer >= ``minimum`` (``minimum=1`` for counts and sizes, 0 for seeds and paddings)."""
    if not is_int(value) or value < minimum:
        raise param_error(key, f"must be an integer >= {minimum}", value)
    return value


def image_size(value: Any, key: str) -> tuple[int, int]:
    """``[height, width]`` in pixels, or one size for both."""
    if is_int(value) and value > 0:
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise param_error(key, "must be [height, width] or a single size in pixels", value)


def fraction(value: Any, key: str) -> float:
    """A fraction f with 0 <= f < 1."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise param_error(key, "must be a fraction with 0 <= f < 1", value)
    return float(value)


def dropout_probability(value: Any, key: str) -> float:
    """A dropout probability in [0, 1)."""
    if not (is_int(value) or isinstance(value, float)) or not 0 <= value < 1:
        raise param_error(key, "must be a dropout probability in [0, 1)", value)
    return float(value)


def flag(value: Any, key: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise param_error(key, "must be true or false", value)
    return value


def choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise param_error(key, f"expected {listed}", value)
    return value


def mapping(value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    """A mapping whose keys are all in ``allowed`` (an unknown key is named in full)."""
    if not isinstance(value, Mapping):
        raise param_error(key, "must be a mapping of settings", value)
    for name in value:
        if name not in allowed:
            raise ParamError(f"{key}.{name}: unknown key; expected one of {', '.join(allowed)}")
    return value


def section(params: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The top-level section ``key`` of params (an empty mapping when absent or null)."""
    value = params.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise param_error(key, "must be a mapping of settings", value)
    return value


def as_list(value: Any, key: str) -> list[Any]:
    """A list (``null`` is the empty list)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise param_error(key, "must be a list", value)
    return list(value)


def missing(key: str) -> ParamError:
    """The error for a key that must be set and is not."""
    return ParamError(f"{key}: missing; add it (see README, 'Parameters')")


def required(values: Mapping[str, Any], name: str, key: str) -> Any:
    """``values[name]``; missing, a one-line error naming ``key.name``."""
    if name not in values:
        raise missing(f"{key}.{name}")
    return values[name]


def name_like(value: Any, key: str, need: str) -> str:
    """A plain directory name (no slashes, not hidden); ``need`` says which (``"expected … like mnist"``)."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value[0] == ".":
        raise param_error(key, need, value)
    return value
