import struct
import zlib

import numpy as np
import pytest

import aedge
from aedge import bitstream, metrics, modelfile, registry
from aedge.errors import AedgeError
from conftest import DATA, as_version_3, round_trips, synthetic


def test_round_trip_keeps_size_and_quality(codec, robin):
    data = codec.compress(robin)
    out = codec.decompress(data)
    assert out.shape == robin.shape and out.dtype == np.uint8
    assert metrics.psnr(robin, out) > 28
    assert 8 * len(data) / robin[..., 0].size < 3


@pytest.mark.parametrize("height, width", [(1, 1), (15, 17), (16, 16), (33, 70), (70, 33),
                                           (64, 200), (130, 65)])
def test_any_size(codec, height, width):
    image = synthetic(height, width)
    assert codec.decompress(codec.compress(image)).shape == (height, width, 3)


def test_greyscale_comes_back_greyscale(codec, robin):
    grey = robin.mean(axis=2).astype(np.uint8)
    out = codec.decompress(codec.compress(grey))
    assert out.shape == grey.shape
    assert metrics.psnr(grey, out) > 26


def test_compression_is_deterministic(codec, robin):
    assert codec.compress(robin) == codec.compress(robin)


def test_every_quality_works_and_five_steps_up_cost_bytes_and_buy_quality(codec, robin):
    results = {}
    for q in range(1, 101):
        data = codec.compress(robin, q)
        results[q] = (len(data), metrics.psnr(robin, codec.decompress(data)))
    for q in range(1, 96):
        (size, psnr), (size_up, psnr_up) = results[q], results[q + 5]
        assert size_up > size and psnr_up > psnr, (q, results[q], results[q + 5])
    assert codec.compress(robin) == codec.compress(robin, codec.default_quality)


@pytest.mark.parametrize("quality", [0, 101, 7.5, "75", True])
def test_bad_quality_is_refused(codec, robin, quality):
    with pytest.raises(AedgeError, match="quality must be an integer from 1 to 100"):
        codec.compress(robin, quality)


def test_golden_file_decodes_to_the_same_latents(codec, robin):
    """robin.aei was made on x86-64; its latents, scale indices included, are integers that
    every machine must decode alike (the README says how this was checked on aarch64)."""
    data = (DATA / "robin.aei").read_bytes()
    z_q, index, q = codec.latents(data)
    with np.load(DATA / "robin.latents.npz") as golden:
        np.testing.assert_array_equal(z_q, golden["z_q"])
        np.testing.assert_array_equal(index, golden["index"])
        np.testing.assert_array_equal(q, golden["q"])
    assert metrics.psnr(robin, aedge.decompress(data)) > 28


def test_latents_do_not_depend_on_blas_threads(tmp_path):
    # BLAS splits the h_s sums across its threads in its own order: exact sums do not care.
    import os
    import subprocess
    import sys
    script = ("import sys, numpy as np, aedge; z, i, q = aedge.load().latents("
              "open(sys.argv[1], 'rb').read()); np.savez(sys.argv[2], z_q=z, index=i, q=q)")
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads}
        out = tmp_path / f"{threads}.npz"
        subprocess.run([sys.executable, "-c", script, DATA / "robin.aei", out], env=env,
                       check=True, timeout=120)
        with np.load(out) as got, np.load(DATA / "robin.latents.npz") as golden:
            for key in ("z_q", "index", "q"):
                np.testing.assert_array_equal(got[key], golden[key])


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 4, 5), np.uint8), "HxWx3"),
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


def _with_crc(body):
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("offset, value", [
    (32, b"\xff\xff"),  # z lanes far beyond its symbols
    (42, b"\x00\x00"),  # no y lanes
    (42, b"\x01\x00"),  # too few y lanes for its symbols (bounded work per lane)
    (22, b"\x01"),  # another quality: other tables, a stream that does not decode
    (14, b"\x00\x00\x01\x00"),  # another width
])
def test_hostile_headers_with_a_good_crc_are_refused(codec, robin, offset, value):
    data = codec.compress(robin)
    body = data[:offset] + value + data[offset + len(value):-4]
    with pytest.raises(AedgeError):
        codec.decompress(_with_crc(body))


def test_damaged_streams_with_a_good_crc_are_refused(codec, robin):
    data = codec.compress(robin)
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(20):
        at = int(rng.integers(51, len(data) - 4))
        body = data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:-4]
        try:
            codec.latents(_with_crc(body))
        except AedgeError:
            refused += 1
    # rANS checks every lane's final state: a flipped byte almost never goes unseen.
    assert refused >= 18


def test_file_from_another_model_is_refused(codec, robin, other_model):
    data = codec.compress(robin)
    with pytest.raises(AedgeError, match="made by model"):
        aedge.load(model=other_model).decompress(data)


def test_every_variant_reads_the_files_of_every_other(robin):
    variants = modelfile.read(registry.default_model()).variants
    # Every variant but float32, which ships in a file of its own (export.write_split).
    assert variants == ("int8-dynamic", "int8", "int16x8")
    assert aedge.load().variant == variants[0]
    files = {v: aedge.load(variant=v).compress(robin) for v in variants}
    decoded = {(a, b): aedge.load(variant=b).decompress(data)
               for a, data in files.items() for b in variants}
    for (a, b), image in decoded.items():
        assert metrics.psnr(image, decoded[a, "int16x8"]) > 30, (a, b)
        assert metrics.psnr(robin, image) > 28, (a, b)


def test_files_decode_with_the_networks_that_made_them_unless_told(robin):
    """The header names the encoder's networks; a codec loaded without a variant decodes with
    them, one loaded with a variant with its own, and a format-3 file (no networks byte) with
    the default."""
    made = aedge.load(variant="int8").compress(robin, 60)
    assert bitstream.parse_header(made).networks == "int8"
    by_int8 = aedge.load(variant="int8").decompress(made)
    by_default = aedge.load(variant="int8-dynamic").decompress(made)
    assert not np.array_equal(by_int8, by_default)
    np.testing.assert_array_equal(aedge.load().decompress(made), by_int8)
    np.testing.assert_array_equal(aedge.decompress(made), by_int8)
    version_3 = as_version_3(made)
    assert bitstream.parse_header(version_3).networks is None
    np.testing.assert_array_equal(aedge.load().decompress(version_3), by_default)


def test_a_header_cannot_impose_the_slow_networks(robin):
    """int16x8 runs on reference kernels: a file that names it decodes with the default
    networks unless int16x8 is asked for."""
    made = aedge.load(variant="int16x8").compress(robin, 60)
    assert bitstream.parse_header(made).networks == "int16x8"
    np.testing.assert_array_equal(aedge.load().decompress(made),
                                  aedge.load(variant="int8-dynamic").decompress(made))
    assert not np.array_equal(aedge.load(variant="int16x8").decompress(made),
                              aedge.load().decompress(made))


def test_int16x8_networks_compute_in_integers(robin):
    """16-bit activations: every convolution and GDN in integers (how near float32 they decode:
    tests/test_train.py, where the float32 networks can be made)."""
    from aedge.interpreter import _interpreter_class
    model = modelfile.read(registry.default_model())
    for part in modelfile.NETWORKS:
        interpreter = _interpreter_class()(model_content=model.network(part, "int16x8"))
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        ops = interpreter._get_ops_details()
        floats = {op["op_name"] for op in ops
                  if tensors[op["outputs"][0]]["dtype"] == np.float32}
        assert floats <= {"DEQUANTIZE", "SQRT", "DEPTH_TO_SPACE"}, (part, floats)
        convs = [op for op in ops if op["op_name"] == "CONV_2D"]
        assert convs and all(tensors[op["inputs"][1]]["dtype"] == np.int8
                             and tensors[op["outputs"][0]]["dtype"] == np.int16
                             for op in convs), part


def test_shipped_networks_round_nothing_between_float_operators():
    """No float -> int8 -> float round trip in any shipped network: where both sides of a
    QUANTIZE run in float, it only rounds (0.15 dB at quality 100 in the int8 g_s)."""
    model = modelfile.read(registry.default_model())
    assert {key: round_trips(flatbuffer) for key, flatbuffer in model.networks().items()
            if round_trips(flatbuffer)} == {}


def _shipped_without(path, variant):
    """The shipped model's file without one variant's networks."""
    shipped = modelfile.read(registry.default_model())
    manifest = {k: v for k, v in shipped.manifest.items()
                if k not in ("format", "format_version")}
    modelfile.write(path, manifest, {k: v for k, v in shipped.networks().items()
                                     if k[1] != variant}, shipped.arrays)
    return path


def test_model_files_without_int16x8_stay_valid(tmp_path, robin):
    """Model files without int16x8 (aedge 0.5's had none) still load, code and decode, and
    asking them for int16x8 is a one-line error."""
    from click.testing import CliRunner
    from aedge.cli import main
    older = _shipped_without(tmp_path / "older.aem", "int16x8")
    model = modelfile.read(older)
    assert model.variants == ("int8-dynamic", "int8")
    codec = aedge.load(model=older)
    assert codec.variant == "int8-dynamic"
    assert codec.decompress(codec.compress(robin)).shape == robin.shape
    with pytest.raises(AedgeError, match="has no int16x8 networks"):
        aedge.load(model=older, variant="int16x8")
    photo = tmp_path / "robin.png"
    photo.write_bytes((DATA / "robin.png").read_bytes())
    result = CliRunner().invoke(main, ["compress", str(photo), "--model", str(older),
                                       "--variant", "int16x8", "-o", str(tmp_path / "x.aei")])
    assert result.exit_code == 1 and not (tmp_path / "x.aei").exists()
    assert result.stderr == f"aedge: {photo}: model {model.name} has no int16x8 networks\n"


def test_another_image_of_the_same_size_replans_each_network_once_less(codec, monkeypatch):
    """The blocks of the shape a network already has go first (tiles.by_shape): coding a
    second image of one size re-plans each network once per other shape, not once more."""
    from aedge import interpreter
    image = synthetic(512, 768, seed=3)
    codec.decompress(codec.compress(image))
    shapes, replans = {}, {}
    call = interpreter.Network.__call__

    def counting(network, x):
        shapes.setdefault(network.name, set()).add(x.shape)
        replans[network.name] = replans.get(network.name, 0) + (x.shape != network._shape)
        return call(network, x)
    monkeypatch.setattr(interpreter.Network, "__call__", counting)
    codec.decompress(codec.compress(image))
    assert len(shapes) == 3 and max(len(s) for s in shapes.values()) > 1
    assert replans == {name: len(s) - 1 for name, s in shapes.items()}


def test_a_file_whose_networks_the_model_lacks_decodes_with_its_default(tmp_path, robin):
    path = _shipped_without(tmp_path / "no-int8.aem", "int8")
    made = aedge.load(variant="int8").compress(robin, 60)
    np.testing.assert_array_equal(aedge.load(model=path).decompress(made),
                                  aedge.load(model=path, variant="int8-dynamic").decompress(made))


def test_version_1_model_files_are_refused_clearly(tmp_path):
    import json
    import zipfile
    old = tmp_path / "q3.aem"
    with zipfile.ZipFile(old, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "aedge-model", "format_version": 1}))
    with pytest.raises(AedgeError, match="version 1, which aedge 0.1 reads"):
        aedge.load(model=old)


def _tiles_of(monkeypatch, size):
    from aedge import bitstream
    monkeypatch.setattr(bitstream, "TILE", size)


def _coded(codec, image):
    data = codec.compress(image, 40)
    return len(bitstream_tiles(data)), codec.latents(data), codec.decompress(data)


def _same(a, b):
    for x, y in zip(a[1], b[1]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[2], b[2])


@pytest.mark.parametrize("variant", ["int8-dynamic", "int8", "int16x8"])
def test_the_tiles_change_nothing(variant, monkeypatch):
    """Networks run on a fixed grid of blocks: files hold the same integers and decode to the
    same pixels whatever the tiles."""
    codec = aedge.load(variant=variant)
    image = synthetic(150, 1100, seed=3)
    tiled = _coded(codec, image)
    _tiles_of(monkeypatch, 16)
    smaller = _coded(codec, image)
    _tiles_of(monkeypatch, 1 << 12)
    whole = _coded(codec, image)
    assert (tiled[0], smaller[0], whole[0]) == (2, 5, 1)
    _same(tiled, smaller)
    _same(tiled, whole)


@pytest.mark.parametrize("variant", ["int8", "int16x8"])
def test_blocks_give_what_one_call_gives(variant, monkeypatch):
    """With fixed-scale networks, the blocks' margins make them exactly one call on the whole
    image (int8-dynamic scales each call's activations: see README)."""
    from aedge import tiles
    codec = aedge.load(variant=variant)
    image = synthetic(150, 300, seed=4)
    blocked = _coded(codec, image)
    monkeypatch.setattr(tiles, "blocks", lambda r0, r1, c0, c1, size: [(r0, r1, c0, c1)])
    _same(blocked, _coded(codec, image))


@pytest.mark.parametrize("margin, smaller", [("G_A_MARGIN", 0), ("H_A_MARGIN", 0),
                                             ("G_S_MARGIN", 1)])
def test_the_margins_are_the_smallest_that_give_it(margin, smaller, monkeypatch):
    """One step less of any margin (h_a's steps are whole positions of z, 4 latents of y) and
    the blocks no longer give what one call gives: the margins waste nothing."""
    from aedge import codec as codec_module
    from aedge import tiles
    codec = aedge.load(variant="int8")
    image = synthetic(150, 300, seed=4)
    monkeypatch.setattr(codec_module, margin, smaller)
    blocked = _coded(codec, image)
    monkeypatch.setattr(tiles, "blocks", lambda r0, r1, c0, c1, size: [(r0, r1, c0, c1)])
    with pytest.raises(AssertionError):
        _same(blocked, _coded(codec, image))


def bitstream_tiles(data):
    from aedge import bitstream
    return bitstream.parse(data).tiles


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_kept_losslessly(codec, robin, channels):
    alpha = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    colour = robin if channels == 4 else robin[..., :1]
    image = np.concatenate([colour, alpha[..., None]], axis=2)
    out = codec.decompress(codec.compress(image))
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[..., -1], alpha)
    assert metrics.psnr(image[..., :-1].squeeze(), out[..., :-1].squeeze()) > 26


def test_opaque_alpha_costs_nothing(codec, robin):
    opaque = np.concatenate([robin, np.full(robin.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert codec.compress(opaque) == codec.compress(robin)


def test_colour_profile_travels_in_the_file(codec, robin):
    from aedge import bitstream
    assert bitstream.parse(codec.compress(robin, icc=b"profile")).icc == b"profile"


def test_max_bytes_finds_the_best_quality_that_fits(codec, robin):
    sizes = {q: len(codec.compress(robin, q)) for q in range(1, 101)}
    for limit in (sizes[1], sizes[37] + 1, sizes[100] + 10):
        data = codec.compress(robin, max_bytes=limit)
        best = max(q for q, n in sizes.items() if n <= limit)
        assert len(data) <= limit and data[22] == best
    with pytest.raises(AedgeError, match=f"smallest file aedge makes of this image is "
                                         f"{sizes[1]} bytes"):
        codec.compress(robin, max_bytes=sizes[1] - 1)
    with pytest.raises(AedgeError, match="not both"):
        codec.compress(robin, 50, max_bytes=10**6)


def test_max_bytes_on_an_image_of_several_tiles(codec):
    image = synthetic(150, 1100, seed=5)
    limit = len(codec.compress(image, 60)) + 1
    data = codec.compress(image, max_bytes=limit)
    assert len(data) <= limit and data[22] >= 60
