"""Hostile archives and images: sizes are checked before anything is inflated or decoded.

A zip member of 2 GiB of zeros deflates to 2 MB; before these checks prepare read it whole
(4.3 GB of memory) before finding it is no image. Now a member over ``data.max_member_mb``
or ``data.max_ratio`` is skipped unread in an ImageFolder set and listed in skipped.json,
and fails a fixed upstream set (IDX, CIFAR-10, CelebA) in one line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cnnpipe.config.data import parse_data
from cnnpipe.data.archives import ArchiveLimits, MemberTooLarge
from cnnpipe.data.arrays import load_meta
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.data.prepare.imagefolder import prepare_imagefolder
from cnnpipe.data.readers import read_idx
from cnnpipe.errors import ArchiveError, DataFormatError, ParamError
from tests.helpers.upstream_files import safe_extract

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
DATE = (1980, 1, 1, 0, 0, 0)


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def add_zeros(zf: zipfile.ZipFile, name: str, size: int) -> None:
    """Add ``name`` holding ``size`` bytes of zeros, streamed in 16 MiB chunks.

    Deflating 2 GiB takes zlib seconds; after a full flush every chunk of zeros deflates to
    the same bytes, so the first chunk's are reused (zipfile still counts and checksums every
    byte): the member is exactly what zipfile would write, in a second and a half.
    """
    chunk = 1 << 24
    assert size % chunk == 0
    zeros = bytes(chunk)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)

    class Repeat:
        def compress(self, data: bytes) -> bytes:
            assert len(data) == chunk
            return deflated

        def flush(self) -> bytes:
            return b"\x03\x00"  # an empty final block

    with zf.open(_info(name), "w", force_zip64=True) as member:
        assert hasattr(member, "_compressor")
        member._compressor = Repeat()
        for _ in range(size // chunk):
            member.write(zeros)


def png(value: int, size: int = 12) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` pixels and holds none (a pixel bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def imagefolder_zip(path: Path, extra) -> Path:
    """``train/{a,b}/<i>.png`` (three each) plus what ``extra(zf)`` adds."""
    with zipfile.ZipFile(path, "w") as zf:
        for k, folder in enumerate("ab"):
            for i in range(3):
                zf.writestr(_info(f"train/{folder}/{i}.png"), png(40 * k + i))
        extra(zf)
    return path


def _prepare(source: Path, out: Path, limits: ArchiveLimits | None = None) -> list[dict]:
    prepare_imagefolder(
        source, out, image_size=[8, 8], valid_fraction=0.0, split_seed=0, log=lambda _: None, limits=limits
    )
    return json.loads((out / "skipped.json").read_text())


# ------------------------------------------------------------------------ ImageFolder


def test_a_2_gib_zip_member_is_skipped_before_anything_is_inflated(tmp_path, monkeypatch):
    source = imagefolder_zip(tmp_path / "set.zip", lambda zf: add_zeros(zf, "train/b/bomb.png", 2 * GIB))
    assert source.stat().st_size < 3_000_000
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)

    skipped = _prepare(source, tmp_path / "out")

    assert "train/b/bomb.png" not in opened  # never opened, let alone inflated
    assert skipped == [
        {
            "path": "train/b/bomb.png",
            "split": "train",
            "source": "set.zip",
            "error": "declares 2048 MiB uncompressed, over the limit data.max_member_mb: 256; "
            "not read (a decompression bomb?)",
        }
    ]
    assert load_meta(tmp_path / "out")["splits"]["train"] == 6


def test_a_member_that_would_inflate_too_far_is_skipped_unless_the_limit_is_raised(tmp_path):
    def extra(zf):
        zf.writestr(_info("train/a/flat.bmp"), bytes(4 << 20))  # 4 MiB of zeros: ~1000-fold
        zf.writestr(_info("train/b/tiny.bmp"), bytes(500_000))  # as extreme, but under 1 MiB: read

    source = imagefolder_zip(tmp_path / "set.zip", extra)
    skipped = {s["path"]: s["error"] for s in _prepare(source, tmp_path / "out")}
    assert skipped["train/a/flat.bmp"].startswith("would inflate ")
    assert (
        "-fold (" in skipped["train/a/flat.bmp"]
        and "over the limit data.max_ratio: 100; not read" in (skipped["train/a/flat.bmp"])
    )
    assert skipped["train/b/tiny.bmp"].startswith("UnidentifiedImageError")  # read, then not an image

    raised = {
        s["path"]: s["error"] for s in _prepare(source, tmp_path / "out2", ArchiveLimits(max_ratio=5000))
    }
    assert raised["train/a/flat.bmp"].startswith("UnidentifiedImageError")


def test_an_oversized_file_in_an_image_folder_is_skipped_unread(tmp_path):
    for k, folder in enumerate("ab"):
        (tmp_path / "set" / "train" / folder).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "set" / "train" / folder / f"{i}.png").write_bytes(png(50 * k + i))
    with open(tmp_path / "set" / "train" / "b" / "huge.png", "wb") as f:
        f.truncate(3 << 20)  # sparse: 3 MiB declared, nothing on disk
    skipped = _prepare(tmp_path / "set", tmp_path / "out", ArchiveLimits(max_member_mb=2))
    assert [(s["path"], s["error"]) for s in skipped] == [
        ("train/b/huge.png", "declares 3.0 MiB uncompressed, over the limit data.max_member_mb: 2; not read")
    ]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_over_pillows_pixel_limit_are_skipped_naming_the_file(tmp_path):
    def extra(zf):
        zf.writestr(_info("train/a/wide.png"), png_header(10_000, 10_000))  # 1.1× the limit: Pillow warns
        zf.writestr(_info("train/b/huge.png"), png_header(20_000, 20_000))  # 4.5×: Pillow refuses

    skipped = {
        s["path"]: s["error"] for s in _prepare(imagefolder_zip(tmp_path / "set.zip", extra), tmp_path / "o")
    }
    limit = Image.MAX_IMAGE_PIXELS
    assert skipped["train/a/wide.png"] == (
        f"ImageTooLarge: 10000×10000 = 100000000 pixels, over Pillow's decompression-bomb limit of {limit} "
        "(PIL.Image.MAX_IMAGE_PIXELS); not decoded"
    )
    assert skipped["train/b/huge.png"].startswith("DecompressionBombError: Image size (400000000 pixels)")

    from cnnpipe.predict import load_image  # imports torch: only here

    (tmp_path / "wide.png").write_bytes(png_header(10_000, 10_000))
    with pytest.raises(ValueError, match="over Pillow's decompression-bomb limit"):
        load_image(tmp_path / "wide.png", [3, 8, 8])  # cnnpipe predict reads through the same check


def test_prepare_stage_memory_stays_bounded_on_a_2_gib_bomb(tmp_path):
    imagefolder_zip(tmp_path / "bomb.zip", lambda zf: add_zeros(zf, "train/b/bomb.png", 2 * GIB))
    values = yaml.safe_load((ROOT / "params.yaml").read_text())
    values["datasets"]["sea"].update(path="bomb.zip", image_size=[8, 8], valid_fraction=0.0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    # A parent of its own, so that RUSAGE_CHILDREN is the stage's peak alone (no cgroup needed).
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(done.stdout + done.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, str(ROOT / "stages" / "prepare_folder.py"), "sea"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    returncode, peak_kib = map(int, result.stdout.split())
    assert returncode == 0, result.stderr
    assert peak_kib * 1024 < 500e6, f"prepare peaked at {peak_kib / 1024:.0f} MiB"
    print(f"prepare peaked at {peak_kib / 1024:.0f} MiB")
    assert "skipped 1 unreadable image" in result.stderr
    skipped = json.loads((tmp_path / "data" / "prepared" / "sea" / "skipped.json").read_text())
    assert [s["path"] for s in skipped] == ["train/b/bomb.png"]


# -------------------------------------------------------------- fixed upstream sets


def test_a_celeba_member_over_the_limit_fails_in_one_line_before_reading(mirror, tmp_path):
    raw = Path(shutil.copytree(mirror / "celeba", tmp_path / "raw"))
    original = raw / "img_align_celeba.zip"
    with zipfile.ZipFile(original) as old, zipfile.ZipFile(raw / "new.zip", "w") as new:
        for info in old.infolist():
            if info.filename.endswith("000002.jpg"):
                add_zeros(new, info.filename, 1 << 24)  # 16 MiB of zeros where a face was
            else:
                new.writestr(info, old.read(info))
    (raw / "new.zip").replace(original)
    out = tmp_path / "prepared" / "celeba"

    with pytest.raises(MemberTooLarge) as exc:
        prepare_dataset("celeba", raw, out, log=lambda _: None, limits=ArchiveLimits(max_member_mb=8))

    assert str(exc.value) == (
        f"{original}: member 'img_align_celeba/000002.jpg' declares 16 MiB uncompressed, over the limit "
        "data.max_member_mb: 8 (a decompression bomb?); it was not read — the archive is not the upstream "
        "file: delete it and download it again (or raise the limit in params.yaml if the member is genuine)"
    )
    assert not out.parent.exists()


def test_a_cifar_batch_over_the_limit_fails_before_it_is_unpickled(mirror, tmp_path, monkeypatch):
    from cnnpipe.data import readers

    unpickled: list[str] = []
    real_unpickle = readers._unpickle

    def spy(stream, where):
        unpickled.append(where.rsplit(":", 1)[1])
        return real_unpickle(stream, where)

    monkeypatch.setattr(readers, "_unpickle", spy)
    out = tmp_path / "prepared" / "cifar10"
    with pytest.raises(
        ArchiveError, match=r"member 'cifar-10-batches-py/.*' declares 0\.\d MiB uncompressed"
    ):
        prepare_dataset(
            "cifar10", mirror / "cifar10", out, valid_first=10, log=lambda _: None,
            limits=ArchiveLimits(max_member_mb=0.01),
        )  # fmt: skip
    assert not out.parent.exists()
    assert unpickled in ([], ["batches.meta"])  # no batch was unpickled (0.01 MiB admits the meta)


def test_an_idx_gzip_bomb_is_refused_by_its_declared_size_and_by_what_it_inflates_to(tmp_path):
    images = np.zeros((3000, 28, 28), np.uint8)  # 2.2 MiB of zeros, 2 KiB of gzip
    data = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    limits = ArchiveLimits(max_member_mb=1)
    with pytest.raises(
        DataFormatError, match=r"declares 2\.2 MiB uncompressed, over the limit data\.max_member_mb: 1 "
    ):
        read_idx(path, ndim=3, limits=limits)
    lying = gzip.compress(data)[:-4] + (1000).to_bytes(4, "little")  # a trailer that understates it
    path.write_bytes(lying)
    with pytest.raises(
        DataFormatError, match=r"inflates past the limit data\.max_member_mb: 1 \(a decompression"
    ):
        read_idx(path, ndim=3, limits=limits)


def test_safe_extract_and_the_limit_params(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        add_zeros(zf, "zeros.bin", 1 << 24)
    with pytest.raises(MemberTooLarge, match="would inflate"):
        safe_extract(tmp_path / "a.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 3 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    (tmp_path / "a.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(MemberTooLarge, match=r"declares 3\.0 MiB"):
        safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", ArchiveLimits(max_member_mb=2))

    def limits(params):
        return ArchiveLimits(**parse_data(params).archive_limits())

    assert limits({}) == ArchiveLimits(256, 100)
    assert limits({"data": {"max_member_mb": 1024, "max_ratio": 20}}) == ArchiveLimits(1024, 20)
    with pytest.raises(ParamError, match=r"^data\.max_ratio: must be > 0, got 0$"):
        limits({"data": {"max_ratio": 0}})
