import zlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aedge import bitstream, modelfile
from aedge.bitstream import Coded
from aedge.errors import AedgeError
from conftest import as_version_3

HEADER = bitstream.Header(model_id=bytes(range(8)), width=768, height=512, mode="L", quality=42,
                          networks="int8")
TILE = {"z": Coded(1, b"\x01\x02\x03\x04", b""), "y": Coded(3, b"\xaa\xbb" * 6, b"\x07")}


def test_round_trip():
    data = bitstream.pack(HEADER, [TILE], alpha=b"A", icc=b"ICC")
    assert bitstream.parse(data) == bitstream.File(HEADER, [TILE], b"A", b"ICC")
    assert bitstream.parse_header(data) == HEADER


def test_layout_is_fixed():
    # The documented layout (FORMAT.md), byte for byte.
    data = bitstream.pack(HEADER, [TILE], alpha=b"A", icc=b"ICC")
    assert data.hex() == ("89414549" "04" "01" "0001020304050607" "00030000" "00020000" "2a"
                          "02" "01000000" "03000000"
                          "0100" "04000000" "00000000" "0300" "0c000000" "01000000"
                          "01020304" + "aabb" * 6 + "07" + "41" + "494343" + data[-4:].hex())
    assert bitstream.HEADER_SIZE == 32 and bitstream.TILE_ENTRY == 20
    assert len(data) == bitstream.HEADER_SIZE + bitstream.TILE_ENTRY + 4 + 12 + 1 + 1 + 3 + 4
    assert bitstream.alpha_size(data) == 1


def test_version_3_is_read_without_networks():
    data = as_version_3(bitstream.pack(HEADER, [TILE], alpha=b"A", icc=b"ICC"))
    parsed = bitstream.parse(data)
    assert parsed == bitstream.File(replace(HEADER, networks=None), [TILE], b"A", b"ICC")
    assert bitstream.alpha_size(data) == 1


def test_every_variant_has_a_code():
    assert set(bitstream.NETWORKS[1:]) == set(modelfile.VARIANTS)
    for variant in modelfile.VARIANTS:
        data = bitstream.pack(replace(HEADER, networks=variant), [TILE])
        assert bitstream.parse_header(data).networks == variant
    with pytest.raises(ValueError, match="no code"):
        bitstream.pack(replace(HEADER, networks="int4"), [TILE])


def test_an_unknown_networks_code_reads_as_not_recorded():
    # A later release's variant: the file still decodes, with the reader's default networks.
    data = bitstream.pack(HEADER, [TILE])
    body = data[:23] + b"\x09" + data[24:-4]
    data = body + zlib.crc32(body).to_bytes(4, "little")
    assert bitstream.parse(data).header == replace(HEADER, networks=None)


def test_tiles_are_1024_pixels_on_a_side():
    assert bitstream.tile_grid(1024, 1024) == (1, 1)
    assert bitstream.tile_grid(1025, 2048) == (2, 2)
    assert bitstream.tile_grid(1, 4_000_000) == (1, 3907)
    with pytest.raises(ValueError, match="2 tiles"):
        bitstream.pack(bitstream.Header(bytes(8), 1025, 1), [TILE])


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"PNG!" + d[4:], "not an aedge file"),
    (lambda d: d[:4] + b"\x09" + d[5:], "format version 9"),
    (lambda d: d[:4] + b"\x01" + d[5:], "version 1, which aedge 0.1 reads"),
    (lambda d: d[:4] + b"\x02" + d[5:], "version 2, which aedge 0.2 reads"),
    (lambda d: d[:22] + b"\x00" + d[23:], "bad header"),
    (lambda d: d[:22] + b"\x65" + d[23:], "bad header"),
    (lambda d: d[:14] + b"\xff\xff\xff\x7f" + d[18:], "megapixels"),
    (lambda d: d[:14] + b"\x00\x00\x01\x00" + d[18:], "too short for the image"),
    (lambda d: d[:24] + b"\xff\xff\x00\x00" + d[28:], "too short for the image"),
    (lambda d: d[:-1], "lengths"),
    (lambda d: d + b"\x00", "lengths"),
    (lambda d: d[:34] + b"\xff" + d[35:], "lengths"),
    (lambda d: d[:60] + bytes([d[60] ^ 1]) + d[61:], "CRC"),
    (lambda d: d[:12], "truncated"),
])
def test_damaged_files_are_refused(damage, message):
    data = bitstream.pack(HEADER, [TILE])
    with pytest.raises(AedgeError, match=message):
        bitstream.parse(damage(data))


@pytest.mark.parametrize("coded", [Coded(0, b"", b""), Coded(2, b"\x01\x02\x03\x04", b""),
                                   Coded(1, b"\x01\x02\x03\x04\x05", b"")])
def test_impossible_lanes_are_refused(coded):
    data = bitstream.pack(HEADER, [{**TILE, "z": coded}])
    with pytest.raises(AedgeError, match="lanes"):
        bitstream.parse(data)


@given(st.lists(st.integers(-2**40, 2**40)))
def test_varints_round_trip(values):
    assert bitstream.unpack_varints(bitstream.pack_varints(values), len(values)) == values


def test_truncated_oversized_or_too_many_varints_are_refused():
    with pytest.raises(AedgeError):
        bitstream.unpack_varints(b"\x80", 5)
    with pytest.raises(AedgeError):
        bitstream.unpack_varints(bitstream.pack_varints([1 << 68]), 5)
    with pytest.raises(AedgeError, match="more escapes"):
        bitstream.unpack_varints(bitstream.pack_varints([1, 2, 3]), 2)
