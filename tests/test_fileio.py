"""Atomic outputs: a failure leaves the previous output (or nothing), never a partial one."""

import errno
import os
import subprocess
import sys

import pytest

from cnnpipe import stage
from cnnpipe.errors import NoSpaceError
from cnnpipe.fileio import (
    atomic_dir,
    atomic_file,
    atomic_write_json,
    mount_point,
    no_space_error,
    public_path,
    remove_stale_temps,
)


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


# ---------------------------------------------------------------------------- a full disk


def test_a_full_disk_in_atomic_file_is_one_error_naming_the_output_and_leaves_nothing(tmp_path, small_tmpfs):
    disk = small_tmpfs(tmp_path / "disk", "64k")
    target = disk / "models" / "m" / "model.pt"
    with pytest.raises(NoSpaceError) as exc, atomic_file(target, 300_000) as tmp, open(tmp, "wb") as f:
        f.write(b"\0" * 200_000)
    assert str(exc.value) == (
        f"no space left on {disk} writing {target} (needs ≈ 0.3 MB); free space and rerun"
    )
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no chained traceback
    assert list(disk.iterdir()) == []  # the temporary and the folders it needed are gone


def test_a_full_disk_in_atomic_dir_names_the_output_not_its_temporary(tmp_path, small_tmpfs):
    disk = small_tmpfs(tmp_path / "disk", "64k")
    (disk / "data").mkdir()
    (disk / "data" / "old.txt").write_text("kept")
    # the file inside the folder's temporary is named where it ends up
    raw = disk / "data" / "raw"
    with pytest.raises(NoSpaceError) as exc, atomic_dir(raw) as tmp, atomic_file(tmp / "big") as f:
        f.write_bytes(b"\0" * 100_000)
    message = str(exc.value)
    assert message.startswith(f"no space left on {disk} writing {disk}/data/raw/big (needs ≈ 0.")
    assert sorted(p.name for p in (disk / "data").iterdir()) == ["old.txt"]


def test_the_stage_runner_turns_any_enospc_into_the_same_line(tmp_path, capsys):
    def main() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "dvclive" / "x.tsv"))

    with pytest.raises(SystemExit) as exit_info:
        stage.run(main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    where = mount_point(tmp_path)
    assert err == f"error: no space left on {where} writing {tmp_path}/dvclive/x.tsv; free space and rerun\n"


def test_quota_exceeded_says_so(tmp_path):
    error = no_space_error(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path / "f", 5_000_000)
    assert str(error) == (
        f"no space left on {mount_point(tmp_path)} (disk quota exceeded) writing {tmp_path}/f "
        "(needs ≈ 5.0 MB); free space and rerun"
    )
    assert no_space_error(OSError(errno.EIO, "I/O error"), tmp_path / "f") is None


def test_stale_temporaries_are_those_of_gone_processes(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    names = {
        ".model.pt.abcd1234.pt.tmp": True,  # written before pids were recorded
        f".model.pt.p{gone.pid}.abcd1234.pt.tmp": True,
        f".prepared.p{gone.pid}.abcd1234.tmp": True,  # a folder
        f".prepared.old-{gone.pid}": True,
        f".model.pt.p{os.getpid()}.abcd1234.pt.tmp": False,  # a run still writing it
        ".other.pt.abcd1234.pt.tmp": False,  # another output's
        "model.pt": False,
    }
    for name in names:
        if "prepared" in name:
            (tmp_path / name).mkdir()
            (tmp_path / name / "x").write_text("x")
        else:
            (tmp_path / name).write_text("x")
    removed = remove_stale_temps(tmp_path / "model.pt", tmp_path / "prepared", tmp_path / "missing" / "f")
    assert sorted(p.name for p in removed) == sorted(n for n, stale in names.items() if stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, stale in names.items() if not stale)


def test_temporaries_carry_the_pid_and_show_as_their_output(tmp_path):
    with atomic_dir(tmp_path / "set") as tmp, atomic_file(tmp / "a.npy") as inner:
        assert tmp.name.startswith(f".set.p{os.getpid()}.") and tmp.name.endswith(".tmp")
        assert inner.name.startswith(f".a.npy.p{os.getpid()}.") and inner.name.endswith(".npy.tmp")
        assert public_path(inner) == str(tmp_path / "set" / "a.npy")
