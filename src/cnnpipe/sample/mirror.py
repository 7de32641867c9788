"""The offline sample mirror: small, synthetic versions of every upstream file.

:func:`write_sample_mirror` writes ``<out>/<dataset>/<upstream file name>`` for every
dataset of the source registry (:data:`cnnpipe.data.sources.SOURCES`), in the exact
upstream format, so the whole pipeline runs without network and the files go through
the very readers the real downloads go through (and through torchvision's own dataset
classes). ``<out>/MD5SUMS`` lists every file in ``md5sum`` format.

Pointing ``data.mirror`` in params.yaml at the folder makes the download stage copy
from it instead of the internet.

The images are synthetic but learnable: every class has a spatially structured template
(strokes, blobs, shapes and colours drawn from a seeded generator) and each sample is
its template moved, scaled, rotated, re-lit and noised, so a small CNN trained for a few
CPU minutes lands far above chance but not at 100 % from a single pixel. CelebA faces
carry their attributes visibly where it matters (``Smiling`` bends the mouth up,
``Eyeglasses``, hair colours, ``Bald``, ``Wearing_Hat``, ``Wearing_Lipstick``, beards).

Everything is deterministic: one argument set gives byte-identical files (generators
seeded from ``seed`` and a CRC-32 of the dataset and split name; gzip with mtime 0 and
no file name; tar members with mtime 0 and root ownership; zip entries dated
1980-01-01 in a fixed order). Images are rendered with element-wise numpy arithmetic
only (no transcendental ufuncs), which IEEE-754 rounds identically on every CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cnnpipe.data.md5sums import MD5SUMS, BadMd5Line, file_md5, parse_md5sums, write_md5sums
from cnnpipe.data.sources import LOCAL_SETS, SOURCES
from cnnpipe.errors import DataFormatError, ParamError
from cnnpipe.sample.formats import _WRITERS
from cnnpipe.sample.sizes import DEFAULT_SIZES, _resolve_sizes

Log = Callable[[str], object]

# ---------------------------------------------------------------------------- MD5SUMS


def _read_md5sums(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        return parse_md5sums(path.read_text())
    except BadMd5Line as exc:
        raise DataFormatError(
            f"{path}:{exc.number}: not an md5sum line ({exc.line[:60]!r}); delete {path} and "
            "regenerate the whole sample mirror"
        ) from None


# ---------------------------------------------------------------------------- entry point


def write_sample_mirror(
    out: Path,
    sizes: Mapping[str, Mapping[str, int]] | None = None,
    datasets: Sequence[str] | None = None,
    seed: int = 0,
    log: Log = print,
) -> Path:
    """Write the sample mirror (all datasets or the named ones) under out; returns out.

    ``sizes`` overrides :data:`DEFAULT_SIZES` per dataset and split (e.g.
    ``{"cifar10": {"train": 50000, "test": 10000}}``); ``seed`` selects another, equally
    deterministic, draw. Each file is written atomically and ``out/MD5SUMS`` last; when
    only some datasets are regenerated the existing MD5SUMS lines of the others are kept.
    Unknown datasets, splits or bad counts raise :class:`~cnnpipe.errors.ParamError`.
    """
    out = Path(out)
    names = list(DEFAULT_SIZES) if datasets is None else list(dict.fromkeys(datasets))
    for ds in names:
        if ds not in DEFAULT_SIZES or (ds not in SOURCES and ds not in LOCAL_SETS):
            raise ParamError(
                f"no sample generator for dataset {ds!r}: choose among {', '.join(DEFAULT_SIZES)}"
            )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamError(f"sample seed {seed!r}: expected a whole number >= 0")
    resolved = _resolve_sizes(sizes, names)

    sums = {} if datasets is None else _read_md5sums(out / MD5SUMS)
    sums = {k: v for k, v in sums.items() if k.split("/", 1)[0] not in names}
    for ds in names:
        ds_dir = out / ds
        ds_dir.mkdir(parents=True, exist_ok=True)
        split_sizes = resolved[ds]
        with tqdm(total=sum(split_sizes.values()), desc=f"sample {ds}", unit="img") as bar:
            files = _WRITERS[ds](ds_dir, ds, split_sizes, int(seed), bar)
        expected = [LOCAL_SETS[ds]] if ds in LOCAL_SETS else [f.name for f in SOURCES[ds].files]
        assert sorted(files) == sorted(expected), (ds, files, expected)
        total = 0
        for file in files:
            sums[f"{ds}/{file}"] = file_md5(ds_dir / file)
            total += (ds_dir / file).stat().st_size
        counts = ", ".join(f"{split} {n}" for split, n in split_sizes.items())
        log(f"sample {ds}: {counts} images, {len(files)} files, {total / 1e6:.1f} MB")
    write_md5sums(out / MD5SUMS, sums)
    log(f"sample mirror written to {out} ({len(sums)} files listed in {MD5SUMS})")
    return out
