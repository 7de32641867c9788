"""``MD5SUMS`` files, in ``md5sum`` format: the one reader and writer, and a file's MD5.

A mirror (``data.mirror``) may list its files' checksums in ``<mirror>/MD5SUMS`` as
``<md5>  <dataset>/<file>`` lines; the sample mirror writes one and the download stage
trusts it (:mod:`cnnpipe.data.fetch`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from cnnpipe.fileio import atomic_write_bytes

MD5SUMS = "MD5SUMS"
"""The file name of a mirror's checksum list."""

_LINE = re.compile(r"^([0-9a-fA-F]{32}) [ *](.+)$")


class BadMd5Line(ValueError):
    """A line of an ``MD5SUMS`` text that is not ``<md5>  <file>``: its number and text."""

    def __init__(self, number: int, line: str):
        super().__init__(f"line {number} is not an md5sum line ({line[:60]!r})")
        self.number, self.line = number, line


def parse_md5sums(text: str) -> dict[str, str]:
    """Parse ``md5sum`` output into ``{file: md5}`` (md5 in lower case).

    A line is ``<md5>  <file>`` (or ``<md5> *<file>``, the binary marker); blank lines and
    ``#`` comments are skipped, and a leading ``./`` of a file name is dropped. Any other
    line raises :class:`BadMd5Line`.
    """
    sums: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise BadMd5Line(number, line)
        sums[match.group(2).strip().removeprefix("./")] = match.group(1).lower()
    return sums


def format_md5sums(sums: Mapping[str, str]) -> str:
    """``md5sum`` lines for ``{file: md5}``, sorted by file name."""
    return "".join(f"{md5}  {name}\n" for name, md5 in sorted(sums.items()))


def write_md5sums(path: Path, sums: Mapping[str, str]) -> None:
    """Write ``{file: md5}`` to ``path`` atomically, in :func:`format_md5sums`' format."""
    atomic_write_bytes(Path(path), format_md5sums(sums).encode())


def file_md5(path: Path) -> str:
    """The hex MD5 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
