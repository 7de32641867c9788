"""ISA-L is an optional speed-up: without it the standard library's gzip reads the archives."""

from __future__ import annotations

import gzip
import subprocess
import sys

_WITHOUT_ISAL = """
import gzip, sys
sys.modules["isal"] = None  # as if the fast-gzip extra were not installed: importing it fails
from cnnpipe.data.gzipstream import GZIP_ERRORS, open_gzip
good, cut = sys.argv[1:]
with open_gzip(good) as reader:
    assert type(reader) is gzip.GzipFile, type(reader)
    assert reader.read() == b"0123456789" * 1000
try:
    with open_gzip(cut) as reader:
        reader.read()
except GZIP_ERRORS as exc:
    print(type(exc).__name__)
"""


def test_without_isal_the_standard_library_reads_and_checks(tmp_path):
    data = gzip.compress(b"0123456789" * 1000)
    (tmp_path / "good.gz").write_bytes(data)
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_ISAL, tmp_path / "good.gz", tmp_path / "cut.gz"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "EOFError\n"
