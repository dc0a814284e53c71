"""The .aei file layout (documented in FORMAT.md): header, rANS stream, escapes, CRC32."""
import struct
import zlib
from dataclasses import dataclass

from aedge.errors import AedgeError

MAGIC = b"\x89AEI"
VERSION = 1
MODES = {0: "RGB", 1: "L"}  # L: a greyscale image, coded as RGB and given back as greyscale
_HEADER = struct.Struct("<4sBB8sIIHI")
HEADER_SIZE = _HEADER.size
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Header:
    model_id: bytes
    width: int
    height: int
    mode: str = "RGB"
    lanes: int = 1


@dataclass(frozen=True)
class Parsed:
    header: Header
    stream: bytes  # rANS words
    escapes: bytes  # zigzag varints of the latent values that fell outside their table


def pack(header, stream, escapes):
    mode = {v: k for k, v in MODES.items()}[header.mode]
    head = _HEADER.pack(MAGIC, VERSION, mode, header.model_id, header.width, header.height,
                        header.lanes, len(escapes))
    body = head + stream + escapes
    return body + _CRC.pack(zlib.crc32(body))


def parse_header(data):
    """Header alone, checked for magic and version (enough for `aedge info` and model lookup)."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise AedgeError("not an aedge file (.aei)")
    if len(data) < HEADER_SIZE + _CRC.size:
        raise AedgeError("truncated aedge file")
    magic, version, mode, model_id, width, height, lanes, n_escape = _HEADER.unpack_from(data)
    if version != VERSION:
        raise AedgeError(f"aedge file format version {version}; this aedge reads version {VERSION}")
    if mode not in MODES or not width or not height or not lanes:
        raise AedgeError("corrupted aedge file (bad header)")
    return Header(model_id, width, height, MODES[mode], lanes), n_escape


def parse(data):
    header, n_escape = parse_header(data)
    body, (crc,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(body) != crc:
        raise AedgeError("corrupted or truncated aedge file (CRC mismatch)")
    stream_end = len(body) - n_escape
    if stream_end < HEADER_SIZE:
        raise AedgeError("corrupted aedge file (bad escape length)")
    return Parsed(header, body[HEADER_SIZE:stream_end], body[stream_end:])


def pack_varints(values):
    """Signed integers as zigzag LEB128 varints."""
    out = bytearray()
    for v in values:
        z = (v << 1) ^ (v >> 63)
        while z >= 0x80:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


def unpack_varints(data):
    values, z, shift = [], 0, 0
    for byte in data:
        z |= (byte & 0x7F) << shift
        shift += 7
        if z >> 64:
            raise AedgeError("corrupted aedge file (bad escape value)")
        if not byte & 0x80:
            values.append((z >> 1) ^ -(z & 1))
            z, shift = 0, 0
    if shift:
        raise AedgeError("corrupted aedge file (truncated escape value)")
    return values
