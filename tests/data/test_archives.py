"""Safe archive access: traversal, links and truncation are refused with one clear line."""

import gzip
import io
import random
import tarfile
import zipfile

import pytest

from cnnpipe.data.archives import check_member_name, iter_tar_members, open_zip
from cnnpipe.errors import ArchiveError
from tests.helpers.upstream_files import iter_tar_files, safe_extract


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:/x.txt", "a\\..\\b"])
def test_member_names_that_escape_are_rejected(name):
    with pytest.raises(ArchiveError) as exc:
        check_member_name(name, "some.zip")
    assert "unsafe member path" in _one_line(exc)


def test_ordinary_member_names_are_accepted():
    assert str(check_member_name("rps/paper/paper01-000.png", "rps.zip")) == "rps/paper/paper01-000.png"


def test_zip_slip_entry_is_refused_and_nothing_extracted(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"horses/ok.png": b"1", "../../evil.png": b"2"})
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError) as exc:
        safe_extract(archive, dest)
    assert "../../evil.png" in _one_line(exc)
    assert not dest.exists()
    assert not (tmp_path.parent / "evil.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]


def test_zip_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("horses/link.png")
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError) as exc, open_zip(archive):
        pass
    assert "symbolic link" in _one_line(exc)


def test_tar_member_with_dotdot_is_refused(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", [_file("cifar-10-batches-py/data_batch_1"), _file("../x")])
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(archive))
    assert "'../x'" in _one_line(exc)


def test_tar_symlink_escaping_is_refused_but_internal_link_allowed(tmp_path):
    inside = tarfile.TarInfo("d/link")
    inside.type, inside.linkname = tarfile.SYMTYPE, "file"
    names = [n for n, _ in iter_tar_files(_tar(tmp_path / "ok.tar", [_file("d/file"), (inside, None)], "w"))]
    assert names == ["d/file"]

    escaping = tarfile.TarInfo("d/link")
    escaping.type, escaping.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(_tar(tmp_path / "bad.tar", [(escaping, None)], "w")))
    assert "points outside" in _one_line(exc)


def test_tar_device_member_is_refused(tmp_path):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(_tar(tmp_path / "dev.tar", [(dev, None)], "w")))
    assert "device" in _one_line(exc)


def _tar_bytes(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Incompressible enough that the gzip stream has many deflate blocks, as CIFAR-10's has.
_NOISY = [_file(f"f{i}", random.Random(i).randbytes(300_000) + bytes(100_000)) for i in range(4)]


@pytest.mark.parametrize("cut", [1, 4, 8, 12, 20, 64, 5000])
def test_a_gzip_stream_cut_anywhere_near_its_end_is_refused(tmp_path, gzip_backend, cut):
    """Cuts in the trailer or the last deflate block leave every tar member whole; still refused."""
    whole = gzip.compress(_tar_bytes(_NOISY))
    cut_file = tmp_path / "cut.tar.gz"
    cut_file.write_bytes(whole[:-cut])
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(cut_file))
    assert "truncated or corrupt" in _one_line(exc)


def test_a_gzip_file_of_several_members_is_read_whole(tmp_path, gzip_backend):
    tar = _tar_bytes(_NOISY)
    multi = tmp_path / "multi.tar.gz"
    multi.write_bytes(gzip.compress(tar[:500_000]) + gzip.compress(tar[500_000:]))
    assert list(iter_tar_files(multi)) == [(info.name, data) for info, data in _NOISY]


def test_a_flipped_byte_fails_the_crc_check(tmp_path, gzip_backend):
    data = bytearray(gzip.compress(_tar_bytes(_NOISY)))
    data[len(data) // 3] ^= 0x01
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(bad))
    assert "truncated or corrupt" in _one_line(exc)


def test_truncated_tar_gz_gives_one_line(tmp_path, gzip_backend):
    full = _tar(tmp_path / "full.tar.gz", [_file(f"f{i}", bytes(range(256)) * 400) for i in range(5)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(cut))
    assert "truncated or corrupt" in _one_line(exc)


def test_corrupted_tar_gz_gives_one_line(tmp_path, gzip_backend):
    full = _tar(tmp_path / "full.tar.gz", [_file(f"f{i}", bytes(range(256)) * 400) for i in range(5)])
    data = bytearray(full.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(bad))
    assert "truncated or corrupt" in _one_line(exc)


def test_truncated_zip_gives_one_line_and_leaves_nothing(tmp_path):
    full = _zip(tmp_path / "full.zip", {f"c/{i}.png": bytes(range(256)) * 100 for i in range(5)})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(full.read_bytes()[:-200])
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError) as exc:
        safe_extract(cut, dest)
    assert "truncated or corrupt" in _one_line(exc)
    assert not dest.exists()


def test_safe_extract_writes_every_member(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"rps/paper/p1.png": b"p", "rps/rock/r1.png": b"r"})
    dest = safe_extract(archive, tmp_path / "out")
    assert (dest / "rps/paper/p1.png").read_bytes() == b"p"
    assert (dest / "rps/rock/r1.png").read_bytes() == b"r"
    tar = _tar(tmp_path / "b.tar.gz", [_file("x/y.bin", b"abc")])
    assert list(iter_tar_files(tar)) == [("x/y.bin", b"abc")]
    assert (safe_extract(tar, tmp_path / "out2") / "x/y.bin").read_bytes() == b"abc"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_members_stream_from_any_compression(tmp_path, mode):
    members = [_file("a/big.bin", bytes(range(256)) * 300), _file("a/empty"), _file("a/small", b"xyz")]
    tar = _tar(tmp_path / "t.tar", members, mode)
    assert list(iter_tar_files(tar)) == [(info.name, data) for info, data in members]


def test_tar_member_readers_skip_what_is_left_unread_and_refuse_a_short_member(tmp_path):
    tar = _tar(tmp_path / "t.tar", [_file("a", b"0123456789" * 100), _file("b", b"line\nrest")], "w")
    seen = []
    for member in iter_tar_members(tar):
        seen.append((member.name, member.read(3), member.peek(2)[:2], member.readline()))
    assert seen == [("a", b"012", b"34", b"3456789" + b"0123456789" * 99), ("b", b"lin", b"e\n", b"e\n")]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[:700])  # in the middle of a's data
    with pytest.raises(ArchiveError) as exc:
        list(iter_tar_files(cut))
    assert "unexpected end of data in a" in _one_line(exc)
