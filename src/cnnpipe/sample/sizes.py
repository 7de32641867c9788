"""How many images the sample mirror writes, and the seeded draws every dataset starts from.

:data:`DEFAULT_SIZES` per dataset and split, overridden from the command line
(:func:`parse_size_overrides`, ``cnnpipe sample --size cifar10.train=50000``); one generator
per dataset and split (:func:`_rng`) and class-balanced labels.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from cnnpipe.errors import ParamError

DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mnist": {"train": 1200, "test": 300},
    "fashion_mnist": {"train": 1200, "test": 300},
    "cifar10": {"train": 1000, "test": 300},
    "celeba": {"train": 1000, "valid": 200, "test": 200},
    "horse_or_human": {"train": 80, "valid": 32},
    "rps": {"train": 90, "test": 30},
    "sea": {"train": 175, "test": 50},
    # one zip of class folders (upstream: Kaggle's 25,000 labelled training photos); prepare
    # draws valid and test from it. Its few broken files come on top of this count.
    "cats_vs_dogs": {"train": 80},
}
"""Images per dataset and split written when no override is given."""

# ---------------------------------------------------------------------------- sizes


def _size_keys() -> list[str]:
    return [f"{ds}.{split}" for ds, splits in DEFAULT_SIZES.items() for split in splits]


def _check_count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParamError(f"sample size {where}={value!r}: expected a whole number of images >= 1")
    return int(value)


def parse_size_overrides(items: Sequence[str]) -> dict[str, dict[str, int]]:
    """Parse ``["cifar10.train=50000", ...]`` into ``{"cifar10": {"train": 50000}}``.

    Each item is ``<dataset>.<split>=<count>`` with a key of :data:`DEFAULT_SIZES` and a
    count >= 1; anything else raises :class:`~cnnpipe.errors.ParamError` naming the item
    and the valid keys.
    """
    result: dict[str, dict[str, int]] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        dataset, _, split = key.strip().partition(".")
        try:
            count = int(value.strip()) if sep else 0
        except ValueError:
            count = 0
        if split not in DEFAULT_SIZES.get(dataset, {}) or count < 1:
            raise ParamError(
                f"bad sample size {item!r}: expected <dataset>.<split>=<count> with a count >= 1 "
                f"and a key among {', '.join(_size_keys())}"
            )
        result.setdefault(dataset, {})[split] = count
    return result


def _resolve_sizes(
    sizes: Mapping[str, Mapping[str, int]] | None, datasets: Sequence[str]
) -> dict[str, dict[str, int]]:
    resolved = {ds: dict(DEFAULT_SIZES[ds]) for ds in datasets}
    for ds, splits in (sizes or {}).items():
        if ds not in DEFAULT_SIZES:
            raise ParamError(
                f"sample sizes name unknown dataset {ds!r}: valid keys are {', '.join(_size_keys())}"
            )
        for split, count in splits.items():
            if split not in DEFAULT_SIZES[ds]:
                raise ParamError(
                    f"sample size {ds}.{split}: {ds} has no split {split!r}; "
                    f"valid keys are {', '.join(_size_keys())}"
                )
            count = _check_count(count, f"{ds}.{split}")
            if ds in resolved:
                resolved[ds][split] = count
    return resolved


# ---------------------------------------------------------------------------- randomness


def _rng(seed: int, dataset: str, part: str) -> np.random.Generator:
    """A generator that depends only on the seed, the dataset and ``part`` (a split, ...)."""
    return np.random.default_rng([seed, zlib.crc32(f"{dataset}/{part}".encode())])


def _balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """``n`` labels with every class as often as possible (counts differ by at most 1)."""
    labels = np.arange(n) % n_classes
    return labels[rng.permutation(n)]


def _class_counts(n: int, n_classes: int) -> list[int]:
    return [n // n_classes + (c < n % n_classes) for c in range(n_classes)]
