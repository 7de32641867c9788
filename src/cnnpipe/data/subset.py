"""Filtered subsets of prepared datasets: by class names, or by one named attribute.

``cifar2`` keeps airplane and bird from cifar10 and relabels them 0 and 1; ``celeba_smile``
turns CelebA's "Smiling" attribute into a binary label and keeps the first N images of
each split. Both are driven by ``subsets.<name>`` in params.yaml, so another class filter
or attribute is a params change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cnnpipe.data.arrays import SPLITS, PreparedWriter, load_meta, load_split
from cnnpipe.errors import ParamError

_COPY_CHUNK = 4096


def _copy_rows(
    writer: PreparedWriter,
    split: str,
    images: np.ndarray,
    index: np.ndarray,
    labels: np.ndarray,
    desc: str,
) -> None:
    """Copy ``images[index]`` into a new memory-mapped split chunk by chunk (bounded memory)."""
    out = writer.new_split(split, len(index), images.shape[1:])
    out.labels[:] = labels
    for start in tqdm(
        range(0, len(index), _COPY_CHUNK),
        desc=desc,
        unit="chunk",
        disable=len(index) <= _COPY_CHUNK,
    ):
        rows = index[start : start + _COPY_CHUNK]
        out.images[start : start + len(rows)] = images[rows]
    out.images.flush()
    out.labels.flush()


def subset_by_classes(
    source_dir: str | Path,
    out_dir: str | Path,
    classes: Sequence[str],
    param: str = "classes",
    log: Callable[[str], None] = print,
) -> None:
    """Keep only ``classes`` (by name) in every split, relabelled 0..k-1 in the given order."""
    source_dir = Path(source_dir)
    meta = load_meta(source_dir)
    if meta["label_type"] != "class":
        raise ParamError(f"{param}: {source_dir.name} has attribute labels; use 'attribute' instead")
    known = meta["classes"]
    missing = [c for c in classes if c not in known]
    if missing or not classes:
        raise ParamError(
            f"{param}: unknown class(es) {missing} in {source_dir.name}; valid names: {', '.join(known)}"
        )
    old_ids = np.array([known.index(c) for c in classes])
    lookup = np.full(len(known), -1, dtype=np.int64)
    lookup[old_ids] = np.arange(len(classes))
    with PreparedWriter(out_dir) as writer:
        for split in SPLITS:
            data = load_split(source_dir, split)
            labels = np.asarray(data.labels)
            index = np.flatnonzero(np.isin(labels, old_ids))
            _copy_rows(
                writer,
                split,
                data.images,
                index,
                lookup[labels[index]],
                f"{Path(out_dir).name}/{split}",
            )
            log(f"{Path(out_dir).name}: {split} keeps {len(index)} of {len(labels)} images")
        writer.set_classes(list(classes), source=source_dir.name, source_class_ids=old_ids.tolist())


def subset_by_attribute(
    source_dir: str | Path,
    out_dir: str | Path,
    attribute: str,
    sizes: Mapping[str, int | None],
    param: str = "attribute",
    log: Callable[[str], None] = print,
) -> None:
    """Binary label from the attribute named ``attribute``; keep the first ``sizes[split]`` images.

    A size of None keeps the whole split; a size larger than the split keeps it all and says so.
    """
    source_dir = Path(source_dir)
    meta = load_meta(source_dir)
    if meta["label_type"] != "attributes":
        raise ParamError(f"{param}: {source_dir.name} has class labels, not attributes")
    names = meta["classes"]
    if attribute not in names:
        raise ParamError(
            f"{param}: no attribute {attribute!r} in {source_dir.name}; valid names: {', '.join(names)}"
        )
    column = names.index(attribute)
    name = Path(out_dir).name
    with PreparedWriter(out_dir) as writer:
        for split in SPLITS:
            data = load_split(source_dir, split)
            available = len(data.labels)
            wanted = sizes.get(split)
            count = available if wanted is None else min(int(wanted), available)
            if wanted is not None and int(wanted) > available:
                log(
                    f"{name}: {split} size {wanted} asked but {source_dir.name} has only "
                    f"{available}; keeping all {available}"
                )
            labels = np.asarray(data.labels[:count, column], dtype=np.int64)
            _copy_rows(writer, split, data.images, np.arange(count), labels, f"{name}/{split}")
            log(f"{name}: {split} {count} images, {int(labels.sum())} with {attribute}")
        writer.set_classes(
            [f"not {attribute}", attribute],
            source=source_dir.name,
            attribute=attribute,
            attribute_index=column,
        )
