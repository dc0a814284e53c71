"""Reading photos into the arrays the codec takes, and writing arrays back out.

What Pillow opens, aedge takes: alpha is kept, the first frame of an animation or a camera's
MPO is coded (another with frame=N), and deep, float or LAB pixels are converted, each with a
note that says so. Only what Pillow itself cannot read is refused.
"""
import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aedge.bitstream import MAX_PIXELS
from aedge.errors import AedgeError
from aedge.interpreter import quiet_stderr

# Formats Pillow names differently from their usual suffix.
_SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass
class Picture:
    array: np.ndarray  # uint8: HxW, HxWx2 (grey + alpha), HxWx3 or HxWx4 (RGB + alpha)
    icc: bytes = b""  # the colour profile, as the file had it
    notes: list = field(default_factory=list)  # what was changed on the way in, one line each


def load(data, name="image", frame=None):
    """Bytes of any image Pillow reads -> Picture. EXIF orientation is applied, so the array is
    the picture as viewers show it."""
    notes = []
    try:
        with warnings.catch_warnings(), quiet_stderr():
            # Other warnings (odd EXIF, ...) are not the user's problem and would break the
            # one-line error promise.
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            # The size is a claim of the header: checked before a single pixel is decoded.
            if image.width * image.height > MAX_PIXELS:
                raise AedgeError(f"{name}: {image.width}x{image.height} is beyond aedge's "
                                 f"limit of {MAX_PIXELS // 1_000_000} megapixels")
            frames = getattr(image, "n_frames", 1)
            if frame is not None:
                if not 0 <= frame < frames:
                    raise AedgeError(f"{name}: has no frame {frame} (frames 0 to {frames - 1})")
                image.seek(frame)
            elif frames > 1:
                notes.append(f"has {frames} frames; coding the first (--frame N for another)")
            icc = image.info.get("icc_profile") or b""
            image.load()
            try:
                if image.getexif().get(0x0112, 1) != 1:  # transposing copies: only if needed
                    image = ImageOps.exif_transpose(image)
            except Exception:  # broken EXIF: keep the pixels as stored
                pass
            array = _to_uint8(image, notes)
    except AedgeError:
        raise
    except UnidentifiedImageError:
        raise AedgeError(f"{name}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, MemoryError):
        raise AedgeError(f"{name}: too many pixels to decode") from None
    except Exception as e:  # Pillow's plugins raise what they like on odd files
        raise AedgeError(f"{name}: unreadable image ({type(e).__name__}: {e})") from None
    if image.mode == "LAB":
        icc = b""  # the pixels are sRGB now
    return Picture(array, bytes(icc), notes)


def _to_uint8(image, notes):
    mode = image.mode
    alpha = None
    if mode in _ALPHA_MODES or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if alpha.min() == 255:
            alpha = None
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scaled(np.asarray(image, dtype=np.float64), mode, notes)
    elif mode in ("1", "L", "LA", "La"):
        grey = np.asarray(image.convert("L"))
    elif mode == "LAB":
        from PIL import ImageCms
        srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
        notes.append("LAB pixels converted to sRGB")
        return np.asarray(ImageCms.applyTransform(
            image, ImageCms.buildTransform(lab, srgb, "LAB", "RGB")))
    else:
        if mode not in ("RGB", "RGBA", "RGBX", "P", "PA", "RGBa"):
            notes.append(f"{mode} pixels converted to RGB")
        colour = _array(image if mode == "RGB" else image.convert("RGB"))
        return colour if alpha is None else np.dstack([colour, alpha])
    return grey if alpha is None else np.dstack([grey, alpha])


def _array(image, rows=256):
    """np.asarray(image), band by band: asarray goes through a full copy as bytes, which
    would double a large image's peak memory."""
    width, height = image.size
    out = np.empty((height, width, len(image.getbands())), np.uint8)
    for top in range(0, height, rows):
        out[top:top + rows] = np.asarray(image.crop((0, top, width, min(top + rows, height))))
    return out


def _scaled(values, mode, notes):
    """16-bit, 32-bit and float greyscale to 8 bits: by their nominal range where the values
    keep to it (0..65535, 0..1), else stretched from their own minimum to maximum."""
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535 and high > 255):
        scale, offset = 65535, 0
    elif mode == "F" and low >= 0 and high <= 1:
        scale, offset = 1, 0
    elif low >= 0 and high <= 255:
        scale, offset = 255, 0
    else:
        scale, offset = max(high - low, 1e-30), low
    if not mode.startswith("I;16"):
        kind = "float" if mode == "F" else "32-bit integer"
        notes.append(f"{kind} pixels scaled to 8 bits" + (
            f" from their range {low:g} to {high:g}" if offset or scale not in (1, 255, 65535)
            else ""))
    return np.rint((values - offset) / scale * 255).clip(0, 255).astype(np.uint8)


def save_format(suffix):
    fmt = _SAVE_FORMATS.get(suffix.lower()) or Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise AedgeError(f"cannot write images with suffix {suffix!r}; use .png, .jpg, .webp...")
    return fmt


def encode(array, suffix=".png", icc=b""):
    """Array -> file bytes in the format the suffix names (PNG when there is none)."""
    fmt = save_format(suffix)
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    out = io.BytesIO()
    try:
        image.save(out, format=fmt, **({"icc_profile": icc} if icc else {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AedgeError(f"cannot write {fmt} images of mode {image.mode} ({e}); use .png, "
                         ".webp...") from None
    return out.getvalue()


class PngWriter:
    """A PNG written band by band, so that a decoded image never has to be held whole:
    Paeth-filtered rows, deflated as they come."""

    _COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
    _ROWS_AT_ONCE = 16

    def __init__(self, out, width, height, channels, icc=b""):
        self.out, self.width, self.channels = out, width, channels
        self.out.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                         self._COLOUR_TYPES[channels], 0, 0, 0))
        if icc:
            self._chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
        self._deflate = zlib.compressobj(6)
        self._previous = np.zeros((1, width, channels), np.uint8)

    def write(self, rows):
        rows = np.asarray(rows, np.uint8).reshape(len(rows), self.width, self.channels)
        for k in range(0, len(rows), self._ROWS_AT_ONCE):
            part = rows[k:k + self._ROWS_AT_ONCE]
            filtered = _paeth(part, self._previous)
            self._previous = part[-1:]
            lines = np.concatenate([np.full((len(part), 1), 4, np.uint8),
                                    filtered.reshape(len(part), -1)], axis=1)
            self._idat(self._deflate.compress(lines.tobytes()))

    def close(self):
        self._idat(self._deflate.flush())
        self._chunk(b"IEND", b"")

    def _idat(self, data):
        if data:
            self._chunk(b"IDAT", data)

    def _chunk(self, kind, data):
        self.out.write(struct.pack(">I", len(data)) + kind + data +
                       struct.pack(">I", zlib.crc32(kind + data)))


def _paeth(rows, previous, step=1 << 18):
    """PNG filter type 4 of each row, given the row above the first; columns a step at a
    time, so that a very wide image needs no more memory than a narrow one."""
    upper = np.concatenate([previous, rows[:-1]])
    out = np.empty_like(rows)
    for c0 in range(0, rows.shape[1], step):
        c1 = min(c0 + step, rows.shape[1])
        x, up = rows[:, c0:c1].astype(np.int16), upper[:, c0:c1].astype(np.int16)
        left, up_left = np.zeros_like(x), np.zeros_like(x)
        left[:, 1:], up_left[:, 1:] = x[:, :-1], up[:, :-1]
        if c0:
            left[:, 0], up_left[:, 0] = rows[:, c0 - 1], upper[:, c0 - 1]
        pa, pb = np.abs(up - up_left), np.abs(left - up_left)
        pc = np.abs(left + up - 2 * up_left)
        predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        out[:, c0:c1] = (x - predictor).astype(np.uint8)
    return out
