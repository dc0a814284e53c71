"""Reading photos into the arrays the codec takes, and writing arrays back out."""
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aedge.errors import AedgeError

# Formats Pillow names differently from their usual suffix.
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
_GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N")


def load(data, name="image"):
    """Bytes of any image Pillow reads -> uint8 array, HxW for greyscale, HxWx3 otherwise.

    EXIF orientation is applied, so the array is the picture as viewers show it.
    """
    try:
        with warnings.catch_warnings():
            # A decompression bomb is refused; other warnings (odd EXIF, ...) are not the
            # user's problem and would break the one-line error promise.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
            frames = getattr(image, "n_frames", 1)
            try:
                image = ImageOps.exif_transpose(image)
            except Exception:  # broken EXIF: keep the pixels as stored
                pass
    except (UnidentifiedImageError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        reason = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else (
            "too many pixels (refused as a possible decompression bomb)")
        raise AedgeError(f"{name}: {reason}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise AedgeError(f"{name}: unreadable image ({e})") from None
    if frames > 1:
        raise AedgeError(f"{name}: has {frames} frames; aedge codes still images only")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            raise AedgeError(f"{name}: has transparent pixels; aedge codes no alpha channel "
                             "(flatten the image onto a background first)")
    if image.mode in _GREY_16:
        # Pillow's convert("L") clips 16-bit values instead of scaling them.
        return np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8)
    if image.mode in ("I", "F"):
        raise AedgeError(f"{name}: 32-bit {'float' if image.mode == 'F' else 'integer'} "
                         "pixels are not supported (convert to 8 or 16 bits)")
    if image.mode in ("1", "L", "LA", "La"):
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
    try:
        image.save(out, format=fmt)
    except (OSError, ValueError, KeyError) as e:
        raise AedgeError(f"cannot write {fmt} images ({e}); use .png, .jpg, .webp...") from None
    return out.getvalue()
