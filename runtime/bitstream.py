"""The .aei file layout (documented in FORMAT.md): header, the coded z and y, CRC-32."""
import struct
import zlib
from dataclasses import dataclass

from aedge.errors import AedgeError

MAGIC = b"\x89AEI"
VERSION = 2
# The last aedge release that reads each older format version.
OLD_VERSIONS = {1: "0.1"}
MODES = {0: "RGB", 1: "L"}  # L: a greyscale image, coded as RGB and given back as greyscale
LATENTS = ("z", "y")  # in file order: the decoder needs z to know how y was coded
_HEADER = struct.Struct("<4sBB8sIIB")
_LATENT = struct.Struct("<HII")  # rANS lanes, stream bytes, escape bytes
HEADER_SIZE = _HEADER.size + len(LATENTS) * _LATENT.size
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Coded:
    """One latent's share of a file."""
    lanes: int
    stream: bytes  # rANS words
    escapes: bytes  # zigzag varints of the values that fell outside their table


@dataclass(frozen=True)
class Header:
    model_id: bytes
    width: int
    height: int
    mode: str = "RGB"
    quality: int = 75


def pack(header, latents):
    """latents: {name: Coded} for each of LATENTS."""
    mode = {v: k for k, v in MODES.items()}[header.mode]
    parts = [_HEADER.pack(MAGIC, VERSION, mode, header.model_id, header.width, header.height,
                          header.quality)]
    parts += [_LATENT.pack(latents[n].lanes, len(latents[n].stream), len(latents[n].escapes))
              for n in LATENTS]
    parts += [b for n in LATENTS for b in (latents[n].stream, latents[n].escapes)]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def parse_header(data):
    """Header alone, checked for magic, version and sense (enough for `aedge info` and model
    lookup)."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise AedgeError("not an aedge file (.aei)")
    if len(data) >= 5 and data[4] in OLD_VERSIONS:
        raise AedgeError(f"aedge file format version {data[4]}, which aedge "
                         f"{OLD_VERSIONS[data[4]]} reads; this aedge reads version {VERSION}")
    if len(data) >= 5 and data[4] != VERSION:
        raise AedgeError(f"aedge file format version {data[4]}; this aedge reads version "
                         f"{VERSION}")
    if len(data) < HEADER_SIZE + _CRC.size:
        raise AedgeError("truncated aedge file")
    _, _, mode, model_id, width, height, quality = _HEADER.unpack_from(data)
    if mode not in MODES or not width or not height or not 1 <= quality <= 100:
        raise AedgeError("corrupted aedge file (bad header)")
    return Header(model_id, width, height, MODES[mode], quality)


def parse(data):
    """(header, {name: Coded}); the section lengths are checked against the file's size and
    the CRC before anything else is read."""
    header = parse_header(data)
    sizes = [_LATENT.unpack_from(data, _HEADER.size + i * _LATENT.size)
             for i in range(len(LATENTS))]
    if HEADER_SIZE + sum(s + e for _, s, e in sizes) + _CRC.size != len(data):
        raise AedgeError("corrupted or truncated aedge file (section lengths do not add up)")
    body, (crc,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(body) != crc:
        raise AedgeError("corrupted or truncated aedge file (CRC mismatch)")
    latents, at = {}, HEADER_SIZE
    for name, (lanes, stream, escapes) in zip(LATENTS, sizes):
        if not lanes:
            raise AedgeError("corrupted aedge file (no rANS lanes)")
        latents[name] = Coded(lanes, body[at:at + stream], body[at + stream:at + stream + escapes])
        at += stream + escapes
    return header, latents


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


def unpack_varints(data, limit):
    """At most `limit` values: a file cannot hold more escapes than it has symbols."""
    values, z, shift = [], 0, 0
    for byte in data:
        z |= (byte & 0x7F) << shift
        shift += 7
        if z >> 64:
            raise AedgeError("corrupted aedge file (bad escape value)")
        if not byte & 0x80:
            values.append((z >> 1) ^ -(z & 1))
            z, shift = 0, 0
            if len(values) > limit:
                raise AedgeError("corrupted aedge file (more escapes than symbols)")
    if shift:
        raise AedgeError("corrupted aedge file (truncated escape value)")
    return values
