"""Which files of a folder are training photos, and which of them are held out for validation.

No TensorFlow here: the data pack and the JAX trainer use these rules too.
"""
import hashlib
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
JPEG_SUFFIXES = {".jpg", ".jpeg"}


def find_images(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such data folder: {folder}")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images (png, jpg, bmp, gif, webp) under {folder}")
    return files


def split(files, validation_fraction):
    """Holds out files by a hash of their name, so the split is stable as the folder grows."""
    def is_validation(path):
        digest = hashlib.sha1(Path(path).name.encode()).digest()
        return digest[0] / 256 < validation_fraction
    val = [f for f in files if is_validation(f)]
    return [f for f in files if not is_validation(f)], val
