"""Atomic output helpers: nothing half-written is ever left where an output belongs.

Every file or directory is first written under a temporary name next to its final
location (``.<name>.p<pid>.<random>….tmp``) and renamed into place only when complete, so a
crash, a Ctrl-C or an error leaves either the previous output or nothing; parent folders
the helper had to create go again too. A crash that kills the process outright (SIGKILL,
the OOM killer, a power cut) can leave a temporary behind: :func:`remove_stale_temps`,
called by every stage at start, removes those whose process is gone.

A full filesystem (ENOSPC) or an exhausted quota (EDQUOT) inside a helper becomes one
:class:`~cnnpipe.errors.NoSpaceError` naming the output, its filesystem and about how much
it needs; :func:`no_space_as_error` does the same for writes outside the helpers, and
:func:`reserve` allocates a file's blocks up front, so that writing through a memory map
meets a full disk as that error instead of a SIGBUS.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cnnpipe.errors import NoSpaceError

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# A size in bytes, or a function giving it when it is asked for (after a failure).
Needed = int | Callable[[], int | None] | None

# A temporary made by this module: ".<name>.p<pid>.<8 random characters><suffix>.tmp".
_TEMP = re.compile(r"^\.(?P<name>.+)\.p(?P<pid>\d+)\.[a-z0-9_]{8}(?:\.[^/]*)?\.tmp$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- no space


def is_no_space(exc: BaseException) -> bool:
    """True for an OSError that says the filesystem is full or the quota is used up."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def no_space_cause(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error that ``exc`` is or was raised while handling (torch's writer
    turns one into a RuntimeError); None when there is none, or when it is already a
    :class:`NoSpaceError` (an inner output named itself)."""
    seen = set()
    while exc is not None and id(exc) not in seen and not isinstance(exc, NoSpaceError):
        if is_no_space(exc):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def mount_point(path: str | os.PathLike) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest existing parent)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


def public_path(path: str | os.PathLike) -> str:
    """``path`` with every temporary folder of this module shown as the output it becomes."""
    parts = Path(path).parts
    shown = [m.group("name") if (m := _TEMP.match(part)) else part for part in parts]
    return str(Path(*shown)) if shown else str(path)


def no_space_error(exc: BaseException, path: str | os.PathLike, needed: Needed = None) -> NoSpaceError | None:
    """The :class:`NoSpaceError` for ``exc`` while writing ``path``; None if ``exc`` is another error."""
    cause = no_space_cause(exc)
    if cause is None:
        return None
    if callable(needed):
        try:
            needed = needed()
        except Exception:  # the estimate is a courtesy; the error is what matters
            needed = None
    return NoSpaceError(public_path(path), mount_point(path), needed, quota=cause.errno == errno.EDQUOT)


@contextlib.contextmanager
def no_space_as_error(path: str | os.PathLike, needed: Needed = None) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised in the block into one :class:`NoSpaceError` naming ``path``."""
    try:
        yield
    except Exception as exc:
        error = no_space_error(exc, path, needed)
        if error is None:
            raise
        raise error from None


def reserve(path: str | os.PathLike, nbytes: int) -> None:
    """Allocate the first ``nbytes`` of the file at ``path`` now (``posix_fallocate``).

    A file written through a memory map gets its blocks only when a page is first touched,
    and a full disk then kills the process with SIGBUS; reserving them up front makes a full
    disk an ENOSPC here instead. Filesystems that cannot reserve space are left as they are.
    """
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def _apparent_size(path: Path) -> int:
    """Bytes in a file or a folder tree (apparent sizes: a reserved file counts whole)."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    except OSError:
        return 0


def _estimate(expected: Needed, tmp: Path) -> Callable[[], int]:
    def needed() -> int:
        known = expected() if callable(expected) else expected
        return max(known or 0, _apparent_size(tmp))

    return needed


# ---------------------------------------------------------------------------- temporaries


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _stale_pid(entry: str, name: str) -> int | None:
    """The pid in a temporary of output ``name`` (-1 for one without), None if it is not one."""
    prefix = f".{name}."
    if not entry.startswith(prefix):
        return None
    rest = entry[len(prefix) :]
    old = re.fullmatch(r"old-(\d+)", rest)
    if old:
        return int(old.group(1))
    if not rest.endswith(".tmp"):
        return None
    marked = re.match(r"p(\d+)\.", rest)
    return int(marked.group(1)) if marked else -1  # made by an earlier version: no pid to check


def remove_stale_temps(*outputs: str | os.PathLike) -> list[Path]:
    """Remove what a crashed run left beside each output; return what was removed.

    Those are the ``.<name>.….tmp`` files and folders :func:`atomic_file` and :func:`atomic_dir`
    write into, and the ``.<name>.old-<pid>`` a replaced folder is moved to, whose process no
    longer runs (a run still writing its own is left alone).
    """
    removed = []
    for output in outputs:
        output = Path(output)
        try:
            entries = list(output.parent.iterdir())
        except OSError:  # no parent folder: nothing left there
            continue
        for entry in entries:
            pid = _stale_pid(entry.name, output.name)
            if pid is None or (pid > 0 and _pid_alive(pid)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    missing = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except BaseException:
        _remove_empty(missing)
        raise
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else wrote there) or already gone
            break


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}.p{os.getpid()}.", suffix=f"{suffix}.tmp", dir=path.parent
    )
    os.close(fd)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


# ---------------------------------------------------------------------------- atomic outputs


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, expected_bytes: Needed = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix so libraries that look at extensions
    (``np.save``) write what is expected. ``expected_bytes`` (a size, or a function giving
    one) is the size a full disk's error says the file needs, when more than was written.
    """
    path = Path(path)
    with no_space_as_error(path, expected_bytes):
        created = _make_parents(path.parent)
        try:
            tmp = _temp_sibling(path, path.suffix)
        except BaseException:
            _remove_empty(created)
            raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        error = no_space_error(exc, path, _estimate(expected_bytes, tmp))
        tmp.unlink(missing_ok=True)
        _remove_empty(created)
        if error is not None:
            raise error from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path, len(data)) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (with a trailing newline) to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, expected_bytes: Needed = None) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``path`` if the block succeeds.

    On failure the temporary directory is removed and ``path`` is left untouched.
    ``expected_bytes`` is as for :func:`atomic_file`.
    """
    path = Path(path)
    with no_space_as_error(path, expected_bytes):
        created = _make_parents(path.parent)
        try:
            tmp = Path(
                tempfile.mkdtemp(prefix=f".{path.name}.p{os.getpid()}.", suffix=".tmp", dir=path.parent)
            )
        except BaseException:
            _remove_empty(created)
            raise
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        yield tmp
    except BaseException as exc:
        error = no_space_error(exc, path, _estimate(expected_bytes, tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if error is not None:
            raise error from None
        raise
    old = None
    try:
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:
        error = no_space_error(exc, path, _estimate(expected_bytes, tmp))
        if old is not None and not (path.exists() or path.is_symlink()):
            os.replace(old, path)  # the previous output comes back
        shutil.rmtree(tmp, ignore_errors=True)
        if error is not None:
            raise error from None
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
