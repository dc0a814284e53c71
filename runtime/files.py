"""Writes that never leave a partial file, nor clobber one by accident."""
import contextlib
import os
import tempfile
from pathlib import Path

from aedge.errors import AedgeError


@contextlib.contextmanager
def atomic_writer(path, force=False):
    """A file object for path, written to a temporary file beside it and renamed over path
    only when the block ends without an error."""
    path = Path(path)
    if path.exists() and not force:
        raise AedgeError(f"{path} exists (use --force to overwrite)")
    if path.is_dir():
        raise AedgeError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise AedgeError(f"cannot write {path}: no such folder {path.parent}")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise AedgeError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            # Without this a power cut after the rename can leave an empty file in its place.
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise AedgeError(f"cannot write {path}: {e.strerror}") from None
        raise


def atomic_write(path, data, force=False):
    with atomic_writer(path, force) as f:
        f.write(data)
