"""Output files: written whole or not at all, through symlinks, onto devices, never over an input."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable

from mlmcli.errors import MlmError

TEMP_PREFIX = ".mlm-"


def _target(path: str) -> str:
    """Where writing `path` lands: a symlink is followed (to be written through, not replaced)."""
    return os.path.realpath(path)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str, inputs: Iterable[str] = ()) -> None:
    """Refuse, before any work, an output that would overwrite an input or cannot be created."""
    if path == "-":
        return
    target = _target(path)
    for source in inputs:
        if source != "-" and _same_file(target, source):
            raise MlmError(f"refusing to write {path}: it is the input file {source}")
    if os.path.isdir(target):
        raise MlmError(f"cannot write {path}: it is a folder")
    folder = os.path.dirname(target)
    if not os.path.exists(target):
        if not os.path.isdir(folder):
            raise MlmError(f"cannot write {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise MlmError(f"cannot write {path}: folder {folder} is not writable")


def _message(path: str, e: OSError) -> str:
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied"
    if e.errno == errno.ENOSPC:
        return f"cannot write {path}: no space left on device"
    return f"cannot write {path}: {e.strerror or e}"


def write_output(path: str, data: bytes, inputs: Iterable[str] = ()) -> None:
    """Write `data` to `path`.

    A regular file (new or existing) is replaced atomically by a temporary file renamed over it, keeping
    an existing file's permissions; a symlink is written through to its target; a character device or
    FIFO (`/dev/null`, `/dev/stdout`, a named pipe) is written in place, as a shell redirection would.
    """
    write_outputs([(path, data)], inputs)


def write_outputs(files: list[tuple[str, bytes]], inputs: Iterable[str] = ()) -> None:
    """Write several files all or none: every regular file is staged in a temporary file first, and
    only when all are staged are they renamed into place (devices and FIFOs, which cannot be staged,
    are written last)."""
    inputs = list(inputs)
    plans = []
    for path, data in files:
        check_output(path, inputs)
        target = _target(path)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise MlmError(_message(path, e)) from None
        plans.append((path, target, data, st))
    staged: list[tuple[str, str, str]] = []
    created: list[str] = []
    try:
        for path, target, data, st in plans:
            if st is None or stat.S_ISREG(st.st_mode):
                staged.append((path, _stage(path, target, data, st), target))
        new = {target for _, target, _, st in plans if st is None}
        for path, tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise MlmError(_message(path, e)) from None
            if target in new:
                created.append(target)
    except BaseException:
        # an interrupt, a full disk or one unwritable file: no temporary file stays behind, and files
        # this call created are taken back (a replaced file cannot be: its old contents are gone)
        for leftover in [tmp for _, tmp, _ in staged] + created:
            try:
                os.unlink(leftover)
            except OSError:
                pass
        raise
    for path, target, data, st in plans:
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_in_place(path, target, data)


def _write_in_place(path: str, target: str, data: bytes) -> None:
    try:
        with open(target, "wb") as f:
            f.write(data)
    except OSError as e:
        raise MlmError(_message(path, e)) from None


def _stage(path: str, target: str, data: bytes, st: os.stat_result | None) -> str:
    """`data` in a temporary file beside `target`, with the permissions the target has (or a new file
    would get); the caller renames it into place."""
    folder = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    except OSError as e:
        raise MlmError(_message(path, e)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except PermissionError:
                    pass  # only root may give a file away; the contents still go where asked
        else:
            # mkstemp makes the file private; give a new file the permissions a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise MlmError(_message(path, e)) from None
        raise
    return tmp
