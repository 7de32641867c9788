"""Atomic outputs: a failure leaves the previous output (or nothing), never a partial one."""

import os

import pytest

from cnnpipe.fileio import atomic_dir, atomic_file, atomic_write_json


def test_atomic_file_failure_keeps_previous_content(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "prepared"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "x").write_text("partial")
        raise KeyboardInterrupt
    assert (target / "x").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_outputs_get_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "s.json", {})
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(mask)
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
