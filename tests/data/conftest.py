"""Shared fixtures for the data tests: one small sample mirror per test session."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from cnnpipe.data.gzipstream import open_gzip

SAMPLE_SIZES = {
    "mnist": {"train": 120, "test": 40},
    "fashion_mnist": {"train": 120, "test": 40},
    "cifar10": {"train": 100, "test": 40},
    "celeba": {"train": 30, "valid": 10, "test": 10},
    "horse_or_human": {"train": 24, "valid": 8},
    "rps": {"train": 24, "test": 9},
    "sea": {"train": 10, "test": 5},
    "cats_vs_dogs": {"train": 20},
}


@pytest.fixture(scope="session")
def sample_sizes() -> dict[str, dict[str, int]]:
    """Images per dataset and split in the :func:`mirror` fixture."""
    return SAMPLE_SIZES


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A sample mirror in the upstream formats: ``<mirror>/<dataset>/<upstream file>``."""
    from cnnpipe.sample.mirror import write_sample_mirror

    return write_sample_mirror(tmp_path_factory.mktemp("mirror"), sizes=SAMPLE_SIZES, log=lambda _: None)


_READERS = {"isal": None, "stdlib": gzip.GzipFile}


@pytest.fixture(params=list(_READERS))
def gzip_backend(request, monkeypatch, tmp_path):
    """Run a test with each gzip reader: ISA-L's (where installed) and the standard library's."""
    if request.param == "isal":
        pytest.importorskip("isal.igzip_threaded", reason="isal (the fast-gzip extra) is not installed")
    if request.param == "stdlib":
        monkeypatch.setitem(sys.modules, "isal", None)
    probe = tmp_path / "probe.gz"
    probe.write_bytes(gzip.compress(b"probe"))
    with open_gzip(probe) as reader:  # the reader asked for is the one the test gets
        if _READERS[request.param] is not None:
            assert isinstance(reader, _READERS[request.param])
        else:
            assert type(reader.raw).__module__.startswith("isal")  # igzip_threaded's reader
        assert reader.read() == b"probe"
    return request.param
