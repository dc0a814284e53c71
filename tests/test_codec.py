import numpy as np
import pytest

import aedge
from aedge import metrics, registry
from aedge.errors import AedgeError
from conftest import DATA, synthetic


def test_round_trip_keeps_size_and_quality(codec, robin):
    data = codec.compress(robin)
    out = codec.decompress(data)
    assert out.shape == robin.shape and out.dtype == np.uint8
    assert metrics.psnr(robin, out) > 24
    assert 8 * len(data) / robin[..., 0].size < 4


@pytest.mark.parametrize("height, width", [(1, 1), (15, 17), (16, 16), (33, 70), (70, 33)])
def test_any_size(codec, height, width):
    image = synthetic(height, width)
    assert codec.decompress(codec.compress(image)).shape == (height, width, 3)


def test_greyscale_comes_back_greyscale(codec, robin):
    grey = robin.mean(axis=2).astype(np.uint8)
    out = codec.decompress(codec.compress(grey))
    assert out.shape == grey.shape
    assert metrics.psnr(grey, out) > 22


def test_compression_is_deterministic(codec, robin):
    assert codec.compress(robin) == codec.compress(robin)


def test_committed_file_still_decodes(codec, robin):
    # Made by the shipped default model; a change to the format or the tables breaks it.
    data = (DATA / "robin.aei").read_bytes()
    out = aedge.decompress(data)
    assert metrics.psnr(robin, out) > 24


def test_values_outside_the_tables_survive(codec):
    # Extreme latents go through the escape path; they must come back exactly.
    rng = np.random.default_rng(0)
    q = rng.integers(-3, 4, (4, 5, len(codec.medians)))
    q[0, 0, :] = 10_000
    q[1, 2, :] = -123_456
    symbols, escapes = codec._symbols(q)
    assert len(escapes) >= 2 * len(codec.coded)
    back = codec._values(symbols, escapes, (4, 5))
    np.testing.assert_array_equal(back[..., codec.coded], q[..., codec.coded])


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 4, 4), np.uint8), "HxWx3"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((0, 4, 3), np.uint8), "out of range"),
])
def test_bad_arrays_are_refused(codec, array, message):
    with pytest.raises(AedgeError, match=message):
        codec.compress(array)


def test_damaged_data_is_refused(codec, robin):
    data = codec.compress(robin)
    for bad in (data[:-3], data[:20], data[:60] + bytes([data[60] ^ 0xFF]) + data[61:]):
        with pytest.raises(AedgeError):
            codec.decompress(bad)


def test_file_from_another_model_is_refused(robin):
    levels = sorted(registry.shipped_levels())
    if len(levels) < 2:
        pytest.skip("needs two shipped models")
    data = aedge.load(level=levels[0]).compress(robin)
    with pytest.raises(AedgeError, match="made by model"):
        aedge.load(level=levels[1]).decompress(data)


def test_every_variant_reads_the_files_of_every_other(robin):
    from aedge.modelfile import VARIANTS
    assert aedge.load().variant == VARIANTS[0]  # the shipped models have every variant
    files = {v: aedge.load(variant=v).compress(robin) for v in VARIANTS}
    decoded = {(a, b): aedge.load(variant=b).decompress(data)
               for a, data in files.items() for b in VARIANTS}
    for (a, b), image in decoded.items():
        assert metrics.psnr(image, decoded[a, "float32"]) > 30, (a, b)
        assert metrics.psnr(robin, image) > 24, (a, b)
