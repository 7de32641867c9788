"""Per-channel normalization statistics of a prepared training split.

Mean and standard deviation of pixels scaled to [0, 1], over the training split only
(SPEC). Counting is exact: a 256-bin histogram per channel accumulated in int64, so the
result does not depend on chunking or summation order, and arrays larger than memory
(CelebA) are streamed from their memory map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cnnpipe.data.arrays import load_meta, load_split
from cnnpipe.errors import DataFormatError
from cnnpipe.fileio import atomic_write_json

_LEVELS = np.arange(256, dtype=np.float64) / 255.0


def channel_histograms(images: np.ndarray, chunk: int = 2048, desc: str = "stats") -> np.ndarray:
    """Return a C×256 int64 histogram of uint8 N×C×H×W ``images``, streamed in chunks."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataFormatError(f"expected uint8 N×C×H×W images, got {images.dtype} {images.shape}")
    n, channels = images.shape[:2]
    hist = np.zeros((channels, 256), dtype=np.int64)
    for start in tqdm(range(0, n, chunk), desc=desc, unit="chunk", disable=n <= chunk):
        block = np.asarray(images[start : start + chunk])
        for c in range(channels):
            hist[c] += np.bincount(block[:, c].ravel(), minlength=256)
    return hist


def mean_std(images: np.ndarray, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of ``images / 255``."""
    hist = channel_histograms(images, chunk)
    counts = hist.sum(axis=1).astype(np.float64)
    if not counts.all():
        raise DataFormatError("cannot compute statistics of an empty training split")
    mean = hist @ _LEVELS / counts
    var = hist @ (_LEVELS**2) / counts - mean**2
    return mean.tolist(), np.sqrt(np.maximum(var, 0.0)).tolist()


def compute_stats(prepared_dir: str | Path, out_file: str | Path) -> dict[str, Any]:
    """Compute train-split statistics of a prepared dataset and write them as JSON."""
    prepared_dir = Path(prepared_dir)
    train = load_split(prepared_dir, "train")
    mean, std = mean_std(train.images)
    stats = {
        "dataset": prepared_dir.name,
        "split": "train",
        "count": len(train.images),
        "image_shape": list(train.images.shape[1:]),
        "mean": [round(m, 8) for m in mean],
        "std": [round(s, 8) for s in std],
        "classes": load_meta(prepared_dir)["classes"],
    }
    atomic_write_json(out_file, stats)
    return stats
