"""Writes that never leave a partial file, nor clobber one by accident."""
import os
import tempfile
from pathlib import Path

from aedge.errors import AedgeError


def atomic_write(path, data, force=False):
    """Writes data to a temporary file beside path, then renames it over path."""
    path = Path(path)
    if path.exists() and not force:
        raise AedgeError(f"{path} exists (use --force to overwrite)")
    if not path.parent.is_dir():
        raise AedgeError(f"cannot write {path}: no such folder {path.parent}")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise AedgeError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
