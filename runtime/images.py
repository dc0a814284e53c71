"""Reading photos into the arrays the codec takes, and writing arrays back out."""
import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aedge.errors import AedgeError

# Formats Pillow names differently from their usual suffix.
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}


def load(data, name="image"):
    """Bytes of any image Pillow reads -> uint8 array, HxW for greyscale, HxWx3 otherwise.

    EXIF orientation is applied, so the array is the picture as viewers show it.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        reason = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else e
        raise AedgeError(f"{name}: {reason}") from None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            raise AedgeError(f"{name}: has transparent pixels; aedge codes no alpha channel "
                             "(flatten the image onto a background first)")
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return np.asarray(image.convert("L"))
    if image.mode in ("LAB", "HSV"):
        raise AedgeError(f"{name}: colour mode {image.mode} is not supported (use RGB)")
    return np.asarray(image.convert("RGB"))


def encode(array, suffix=".png"):
    """Array -> file bytes in the format the suffix names (PNG when there is none)."""
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    fmt = _SAVE_FORMATS.get(suffix.lower()) or Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise AedgeError(f"cannot write images with suffix {suffix!r}; use .png, .jpg, .webp...")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
