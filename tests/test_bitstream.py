import pytest
from hypothesis import given
from hypothesis import strategies as st

from aedge import bitstream
from aedge.errors import AedgeError

HEADER = bitstream.Header(model_id=bytes(range(8)), width=768, height=512, mode="L", lanes=5)


def test_round_trip():
    data = bitstream.pack(HEADER, b"\x01\x02" * 10, b"\x07")
    parsed = bitstream.parse(data)
    assert parsed == bitstream.Parsed(HEADER, b"\x01\x02" * 10, b"\x07")


def test_layout_is_fixed():
    # The documented layout (FORMAT.md), byte for byte.
    data = bitstream.pack(HEADER, b"\xaa\xbb", b"")
    assert data.hex() == ("89414549" "01" "01" "0001020304050607" "00030000" "00020000"
                          "0500" "00000000" "aabb" + data[-4:].hex())
    assert len(data) == bitstream.HEADER_SIZE + 2 + 4


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"PNG!" + d[4:], "not an aedge file"),
    (lambda d: d[:4] + b"\x09" + d[5:], "format version 9"),
    (lambda d: d[:-1], "CRC"),
    (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "CRC"),
    (lambda d: d[:12], "truncated"),
])
def test_damaged_files_are_refused(damage, message):
    data = bitstream.pack(HEADER, b"\x01\x02" * 10, b"")
    with pytest.raises(AedgeError, match=message):
        bitstream.parse(damage(data))


@given(st.lists(st.integers(-2**40, 2**40)))
def test_varints_round_trip(values):
    assert bitstream.unpack_varints(bitstream.pack_varints(values)) == values


def test_truncated_or_oversized_varint_is_refused():
    with pytest.raises(AedgeError):
        bitstream.unpack_varints(b"\x80")
    with pytest.raises(AedgeError):
        bitstream.unpack_varints(bitstream.pack_varints([1 << 68]))
