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
    out = images.load(png(Image.fromarray(ramp))).array
    assert out.shape == (4, 256) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255 and 120 < out.mean() < 135


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (30, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = images.load(png(image, format="JPEG", exif=exif.tobytes())).array
    assert out.shape == (30, 20, 3)


@pytest.mark.parametrize("make, message", [
    (lambda: b"GIF89a not really", "not an image"),
    (lambda: png(Image.effect_noise((64, 64), 50))[:2000], "unreadable image"),
    (lambda: png(Image.new("L", (9000, 9000))), "beyond aedge's limit of 40 megapixels"),
])
def test_refused_images(make, message):
    with pytest.raises(AedgeError, match=message):
        images.load(make())


@pytest.mark.parametrize("image, channels, alpha", [
    (Image.new("RGB", (8, 8)), 3, None),
    (Image.new("RGBA", (8, 8), (1, 2, 3, 255)), 3, None),  # opaque: no alpha to keep
    (Image.new("RGBA", (8, 8), (1, 2, 3, 7)), 4, 7),
    (Image.new("LA", (8, 8), (9, 70)), 2, 70),
    (Image.new("P", (8, 8)), 3, None),
])
def test_alpha_is_kept(image, channels, alpha):
    kwargs = {"transparency": 0} if image.mode == "P" and alpha else {}
    out = images.load(png(image, **kwargs))
    assert out.array.shape == (8, 8, channels)[:3 if channels > 1 else 2] or \
        out.array.shape == (8, 8, channels)
    if alpha is not None:
        assert out.array[0, 0, -1] == alpha
    assert out.notes == []


@pytest.mark.parametrize("mode, values, expected, note", [
    ("F", [0.0, 0.5, 1.0], [0, 128, 255], "float pixels scaled to 8 bits"),
    ("F", [-2.0, 0.0, 2.0], [0, 128, 255], "float pixels scaled to 8 bits from their range -2 "
                                           "to 2"),
    ("I", [0, 32768, 65535], [0, 128, 255], "32-bit integer pixels scaled to 8 bits"),
    ("I", [0, 100, 200], [0, 100, 200], "32-bit integer pixels scaled to 8 bits"),
])
def test_deep_pixels_are_converted_with_a_note(mode, values, expected, note):
    image = Image.fromarray(np.array([values], np.float32 if mode == "F" else np.int32), mode)
    out = images.load(png(image, format="TIFF"))
    assert out.array.tolist() == [expected] and out.notes == [note]


def test_lab_pixels_become_srgb_with_a_note():
    from PIL import ImageCms
    lab = ImageCms.applyTransform(Image.new("RGB", (4, 4), (200, 30, 30)), ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"))
    out = images.load(png(lab, format="TIFF"))
    assert out.notes == ["LAB pixels converted to sRGB"]
    assert np.abs(out.array[0, 0].astype(int) - (200, 30, 30)).max() <= 3


def test_animations_give_a_frame_with_a_note():
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    first = images.load(out.getvalue())
    assert first.notes == ["has 3 frames; coding the first (--frame N for another)"]
    assert first.array[0, 0, 0] == 0
    assert images.load(out.getvalue(), frame=2).array[0, 0, 0] == 160
    with pytest.raises(AedgeError, match="no frame 3"):
        images.load(out.getvalue(), frame=3)


def test_a_plugin_failure_is_an_aedge_error(monkeypatch):
    def broken(self):
        raise NotImplementedError("this plugin cannot decode that")
    data = png(Image.new("RGB", (8, 8)))
    monkeypatch.setattr(Image.Image, "load", broken)
    with pytest.raises(AedgeError, match="NotImplementedError: this plugin"):
        images.load(data)


def test_png_writer_streams_what_pillow_reads_back():
    rng = np.random.default_rng(0)
    for channels in (1, 2, 3, 4):
        array = rng.integers(0, 256, (70, 33, channels), dtype=np.uint8)
        out = io.BytesIO()
        writer = images.PngWriter(out, 33, 70, channels, icc=b"profile")
        writer.write(array[:20])
        writer.write(array[20:])
        writer.close()
        # Columns a few at a time give the same filtered rows.
        np.testing.assert_array_equal(images._paeth(array[1:], array[:1], step=5),
                                      images._paeth(array[1:], array[:1]))
        back = Image.open(io.BytesIO(out.getvalue()))
        assert back.info["icc_profile"] == b"profile"
        np.testing.assert_array_equal(np.asarray(back).reshape(array.shape), array)


def test_unwritable_format_is_a_clear_error():
    with pytest.raises(AedgeError, match="cannot write"):
        images.encode(np.zeros((4, 4, 3), np.uint8), ".xbm")
    with pytest.raises(AedgeError, match="suffix"):
        images.encode(np.zeros((4, 4, 3), np.uint8), ".nope")


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
         "I", "I;16", "F", "La", "RGBa"]
FORMATS = ["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG", "TGA", "PPM", "ICO", "MPO", "AVIF"]


def _made(mode):
    base = Image.radial_gradient("L").resize((40, 30))
    if mode in ("I", "I;16", "F"):
        return base.convert("I").point(lambda v: v * 200) if mode == "I" else (
            Image.fromarray(np.asarray(base, np.uint16) * 257) if mode == "I;16"
            else base.convert("F"))
    rgba = Image.merge("RGBA", (base, base.rotate(90), base.transpose(0), base.point(
        lambda v: 255 - v)))
    if mode in ("LAB", "HSV", "YCbCr", "CMYK"):
        return rgba.convert("RGB").convert(mode) if mode != "LAB" else Image.merge(
            "LAB", (base, base, base))
    return rgba.convert(mode)


def test_what_pillow_opens_round_trips_at_its_size(codec):
    """Every mode in every format Pillow writes it to: read, coded and decoded at its size,
    alpha kept exactly where the file has it."""
    tried = 0
    for mode in MODES:
        image = _made(mode)
        for fmt in FORMATS:
            out = io.BytesIO()
            try:
                image.save(out, format=fmt, **({"save_all": True} if fmt == "MPO" else {}))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # Pillow cannot write this mode in this format
            data = out.getvalue()
            opened = Image.open(io.BytesIO(data))
            picture = images.load(data, f"{mode}.{fmt}")
            back = codec.decompress(codec.compress(picture.array))
            assert back.shape == picture.array.shape, (mode, fmt)
            assert back.shape[:2] == (opened.height, opened.width), (mode, fmt)
            if picture.array.ndim == 3 and picture.array.shape[2] in (2, 4):
                np.testing.assert_array_equal(back[..., -1], picture.array[..., -1])
            tried += 1
    assert tried > 60
