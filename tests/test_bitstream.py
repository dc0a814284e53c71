import pytest
from hypothesis import given
from hypothesis import strategies as st

from aedge import bitstream
from aedge.bitstream import Coded
from aedge.errors import AedgeError

HEADER = bitstream.Header(model_id=bytes(range(8)), width=768, height=512, mode="L", quality=42)
LATENTS = {"z": Coded(1, b"\x01\x02\x03\x04", b""), "y": Coded(3, b"\xaa\xbb" * 6, b"\x07")}


def test_round_trip():
    data = bitstream.pack(HEADER, LATENTS)
    assert bitstream.parse(data) == (HEADER, LATENTS)
    assert bitstream.parse_header(data) == HEADER


def test_layout_is_fixed():
    # The documented layout (FORMAT.md), byte for byte.
    data = bitstream.pack(HEADER, LATENTS)
    assert data.hex() == ("89414549" "02" "01" "0001020304050607" "00030000" "00020000" "2a"
                          "0100" "04000000" "00000000" "0300" "0c000000" "01000000"
                          "01020304" + "aabb" * 6 + "07" + data[-4:].hex())
    assert bitstream.HEADER_SIZE == 43
    assert len(data) == bitstream.HEADER_SIZE + 4 + 12 + 1 + 4


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"PNG!" + d[4:], "not an aedge file"),
    (lambda d: d[:4] + b"\x09" + d[5:], "format version 9"),
    (lambda d: d[:4] + b"\x01" + d[5:], "version 1, which aedge 0.1 reads"),
    (lambda d: d[:22] + b"\x00" + d[23:], "bad header"),
    (lambda d: d[:22] + b"\x65" + d[23:], "bad header"),
    (lambda d: d[:-1], "lengths"),
    (lambda d: d + b"\x00", "lengths"),
    (lambda d: d[:25] + b"\xff" + d[26:], "lengths"),
    (lambda d: d[:50] + bytes([d[50] ^ 1]) + d[51:], "CRC"),
    (lambda d: d[:12], "truncated"),
])
def test_damaged_files_are_refused(damage, message):
    data = bitstream.pack(HEADER, LATENTS)
    with pytest.raises(AedgeError, match=message):
        bitstream.parse(damage(data))


def test_zero_lanes_are_refused():
    data = bitstream.pack(HEADER, {**LATENTS, "z": Coded(0, b"", b"")})
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
