import io

import numpy as np
import pytest
from PIL import Image

from aedge import images
from aedge.errors import AedgeError


def png(image, **options):
    out = io.BytesIO()
    image.save(out, format=options.pop("format", "PNG"), **options)
    return out.getvalue()


def test_16_bit_greyscale_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 256 * 4).astype(np.uint16).reshape(4, 256)
    out = images.load(png(Image.fromarray(ramp)))
    assert out.shape == (4, 256) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255 and 120 < out.mean() < 135


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (30, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = images.load(png(image, format="JPEG", exif=exif.tobytes()))
    assert out.shape == (30, 20, 3)


@pytest.mark.parametrize("make, message", [
    (lambda: png(Image.new("RGB", (8, 8)), transparency=(0, 0, 0)), "transparent"),
    (lambda: png(Image.new("RGBA", (8, 8), (1, 2, 3, 0))), "transparent"),
    (lambda: png(Image.new("F", (8, 8)), format="TIFF"), "32-bit float"),
    (lambda: b"GIF89a not really", "not an image"),
])
def test_refused_images(make, message):
    with pytest.raises(AedgeError, match=message):
        images.load(make())


def test_animations_are_refused():
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(AedgeError, match="3 frames"):
        images.load(out.getvalue())


def test_opaque_alpha_is_accepted():
    out = images.load(png(Image.new("RGBA", (8, 8), (1, 2, 3, 255))))
    assert out.shape == (8, 8, 3) and tuple(out[0, 0]) == (1, 2, 3)


def test_unwritable_format_is_a_clear_error():
    with pytest.raises(AedgeError, match="cannot write"):
        images.encode(np.zeros((4, 4, 3), np.uint8), ".xbm")
    with pytest.raises(AedgeError, match="suffix"):
        images.encode(np.zeros((4, 4, 3), np.uint8), ".nope")
