"""The one MD5SUMS reader and writer, shared by the download stage and the sample mirror."""

from __future__ import annotations

import hashlib

import pytest

from cnnpipe.data.md5sums import BadMd5Line, file_md5, format_md5sums, parse_md5sums, write_md5sums

A, B = "0" * 32, "ab" * 16


def test_written_sums_read_back_sorted(tmp_path):
    write_md5sums(tmp_path / "MD5SUMS", {"rps/rps.zip": B, "mnist/a.gz": A})
    text = (tmp_path / "MD5SUMS").read_text()
    assert text == f"{A}  mnist/a.gz\n{B}  rps/rps.zip\n"
    assert format_md5sums({"mnist/a.gz": A, "rps/rps.zip": B}) == text
    assert parse_md5sums(text) == {"mnist/a.gz": A, "rps/rps.zip": B}


def test_reader_takes_what_md5sum_writes():
    text = f"# made by md5sum\n\n{B.upper()} *./celeba/x.zip\n{A}  y.txt  \n"
    assert parse_md5sums(text) == {"celeba/x.zip": B, "y.txt": A}


def test_a_line_that_is_not_md5sum_output_names_its_number():
    with pytest.raises(BadMd5Line) as exc:
        parse_md5sums(f"{A}  ok\n<html>\n")
    assert (exc.value.number, exc.value.line) == (2, "<html>")


def test_file_md5(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_md5(tmp_path / "f") == hashlib.md5(data).hexdigest()
