"""``data``, ``datasets.<name>`` and ``subsets.<name>`` of params.yaml, validated into dataclasses.

The download, prepare and subset stages parse the section they read when they start and pass
the fields on as named arguments; every field is named like its params.yaml key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnpipe.checks import (
    fraction,
    image_size,
    integer,
    mapping,
    missing,
    name_like,
    param_error,
    positive,
    section,
)
from cnnpipe.errors import ParamError

DATA_KEYS = ("mirror", "max_member_mb", "max_ratio")
DATASET_KEYS = ("valid_first", "image_size", "valid_fraction", "test_fraction", "split_seed", "path")
SUBSET_KEYS = ("source", "classes", "attribute", "train_size", "valid_size", "test_size")


@dataclass(frozen=True)
class DataSettings:
    """``data``: where downloads come from and the decompression-bomb guard of prepare.

    ``max_member_mb`` / ``max_ratio`` are None when params.yaml leaves them out: then
    :class:`cnnpipe.data.archives.ArchiveLimits` keeps its own defaults.
    """

    mirror: str | None = None
    max_member_mb: float | None = None
    max_ratio: float | None = None

    def archive_limits(self) -> dict[str, float]:
        """The limits that are set, as keyword arguments of ``ArchiveLimits``."""
        limits = {"max_member_mb": self.max_member_mb, "max_ratio": self.max_ratio}
        return {key: value for key, value in limits.items() if value is not None}


@dataclass(frozen=True)
class DatasetSettings:
    """``datasets.<name>``: how one dataset is split and sized at prepare time (absent keys None)."""

    name: str
    valid_first: int | None = None
    image_size: tuple[int, int] | None = None
    valid_fraction: float | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    path: str | None = None

    def as_mapping(self) -> dict[str, Any]:
        """The fields that are set, as a ``datasets.<name>``-shaped mapping (for prepare_dataset)."""
        return {key: getattr(self, key) for key in DATASET_KEYS if getattr(self, key) is not None}

    def need(self, field: str) -> Any:
        """The value of ``field``; a one-line error naming ``datasets.<name>.<field>`` when unset."""
        value = getattr(self, field)
        if value is None:
            raise missing(f"datasets.{self.name}.{field}")
        return value


@dataclass(frozen=True)
class SubsetSettings:
    """``subsets.<name>``: a prepared dataset filtered by ``classes`` or by one ``attribute``."""

    name: str
    source: str
    classes: tuple[str, ...] | None = None
    attribute: str | None = None
    train_size: int | None = None
    valid_size: int | None = None
    test_size: int | None = None

    @property
    def key(self) -> str:
        """Params prefix of this subset, for messages."""
        return f"subsets.{self.name}"

    @property
    def sizes(self) -> dict[str, int | None]:
        """``{"train": train_size, "valid": valid_size, "test": test_size}`` (None keeps a whole split)."""
        return {"train": self.train_size, "valid": self.valid_size, "test": self.test_size}


def _known(read: Sequence[str], keys: tuple[str, ...]) -> None:
    """A caller's ``read`` names only real keys (a typo would silently read nothing)."""
    unknown = [key for key in read if key not in keys]
    if unknown:
        raise ValueError(f"read= names {', '.join(unknown)}; the keys are {', '.join(keys)}")


def parse_data(params: Mapping[str, Any], *, read: Sequence[str] = DATA_KEYS) -> DataSettings:
    """Validate ``data``, reading only its keys in ``read``: the others stay None, unread.

    Each stage reads exactly the ``data.*`` keys its dvc.yaml entry lists (download: mirror;
    prepare: max_member_mb, and max_ratio for the zip sets), so no other key can change it.
    """
    _known(read, DATA_KEYS)
    data = mapping(section(params, "data"), "data", DATA_KEYS)
    mirror, max_member_mb, max_ratio = (data.get(key) if key in read else None for key in DATA_KEYS)
    if mirror is not None and (not isinstance(mirror, str) or not mirror):
        raise param_error("data.mirror", "expected a directory or http(s) base URL, or null", mirror)
    return DataSettings(
        mirror=mirror,
        max_member_mb=None if max_member_mb is None else positive(max_member_mb, "data.max_member_mb"),
        max_ratio=None if max_ratio is None else positive(max_ratio, "data.max_ratio"),
    )


def parse_dataset(
    params: Mapping[str, Any], name: str, *, read: Sequence[str] = DATASET_KEYS
) -> DatasetSettings:
    """Validate ``datasets.<name>`` (absent or null: every field None), reading only its keys
    in ``read`` (the others stay None, unread: download_sea reads only ``path``)."""
    _known(read, DATASET_KEYS)
    key = f"datasets.{name}"
    entry = mapping(section(params, "datasets").get(name) or {}, key, DATASET_KEYS)
    values = {field: entry[field] for field in read if field in entry}
    path = values.get("path")
    if path is not None and (not isinstance(path, str) or not path):
        raise param_error(f"{key}.path", "expected a directory or .zip path", path)

    def optional(field: str, check) -> Any:
        value = values.get(field)
        return None if value is None else check(value, f"{key}.{field}")

    return DatasetSettings(
        name=name,
        valid_first=optional("valid_first", lambda v, k: integer(v, k, 0)),
        image_size=optional("image_size", image_size),
        valid_fraction=optional("valid_fraction", fraction),
        test_fraction=optional("test_fraction", fraction),
        split_seed=optional("split_seed", lambda v, k: integer(v, k, 0)),
        path=path,
    )


def _size(value: Any, key: str) -> int | None:
    return None if value is None else integer(value, key, 0)


def parse_subset(params: Mapping[str, Any], name: str) -> SubsetSettings:
    """Validate ``subsets.<name>``: a ``source`` and either ``classes`` or ``attribute`` (+ sizes)."""
    key = f"subsets.{name}"
    subsets = section(params, "subsets")
    if name not in subsets:
        raise missing(key)
    values = mapping(subsets[name], key, SUBSET_KEYS)
    if "source" not in values:
        raise missing(f"{key}.source")
    source = name_like(values["source"], f"{key}.source", "expected a prepared dataset name like cifar10")
    classes = values.get("classes")
    attribute = values.get("attribute")
    if classes is None and attribute is None:
        raise ParamError(f"{key}: needs either 'classes' or 'attribute'")
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise param_error(f"{key}.classes", "must be a list of class names", classes)
        return SubsetSettings(name=name, source=source, classes=tuple(classes))
    return SubsetSettings(
        name=name,
        source=source,
        attribute=attribute,
        **{
            f"{split}_size": _size(values.get(f"{split}_size"), f"{key}.{split}_size")
            for split in ("train", "valid", "test")
        },
    )
