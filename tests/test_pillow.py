import io

import numpy as np
import pytest
from PIL import Image

import aedge
import aedge.pillow  # noqa: F401  (registers the format)
from aedge import modelfile
from conftest import DATA, as_version_3


def test_open_gives_the_pixels_aedge_decompress_gives():
    image = Image.open(DATA / "robin.aei")
    assert (image.format, image.mode, image.size) == ("AEI", "RGB", (256, 256))
    assert image.info["quality"] == aedge.load().default_quality
    assert bytes.fromhex(image.info["model"]) in modelfile.identities(aedge.load().model)
    assert image.info["networks"] == aedge.load().variant
    expected = aedge.decompress((DATA / "robin.aei").read_bytes())
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_open_is_lazy_and_thumbnails_work():
    image = Image.open(DATA / "robin.aei")
    assert image.size == (256, 256)  # from the header alone
    image.thumbnail((64, 64))
    assert image.size == (64, 64)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_save_writes_aei_that_opens_again(tmp_path, mode):
    source = Image.open(DATA / "robin.png").convert(mode)
    if mode in ("RGBA", "LA"):
        source.putalpha(100)
    path = tmp_path / "x.aei"
    source.save(path, quality=40)
    again = Image.open(path)
    assert again.info["quality"] == 40 and again.size == source.size
    assert again.mode == {"P": "RGB"}.get(mode, mode)
    if "A" in mode:
        assert np.asarray(again)[..., -1].min() == 100
    out = io.BytesIO()
    source.save(out, format="AEI", max_bytes=6000)
    assert len(out.getvalue()) <= 6000


def test_a_format_3_header_with_alpha_opens_as_rgba(tmp_path):
    """Format 3 has no networks byte: the alpha length lies one byte earlier."""
    source = Image.open(DATA / "robin.png").convert("RGBA")
    source.putalpha(100)
    out = io.BytesIO()
    source.save(out, format="AEI", quality=40)
    path = tmp_path / "old.aei"
    path.write_bytes(as_version_3(out.getvalue()))
    image = Image.open(path)
    assert image.mode == "RGBA" and "networks" not in image.info
    assert np.asarray(image)[..., -1].min() == 100


def test_a_broken_file_is_an_os_error(tmp_path):
    data = (DATA / "robin.aei").read_bytes()
    path = tmp_path / "bad.aei"
    path.write_bytes(data[:-10])
    image = Image.open(path)  # the header is fine
    with pytest.raises(OSError, match="cannot decode this .aei file"):
        image.load()
