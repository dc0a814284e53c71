"""The .aei file layout (documented in FORMAT.md): header, tile table, the coded tiles, the
alpha and ICC sections, CRC-32.

The image is coded in tiles of TILE x TILE latents of y (1024 x 1024 pixels), each with its own
z and y streams, so that neither side ever holds more than a few tiles' worth of latents.
"""
import struct
import zlib
from dataclasses import dataclass

from aedge.errors import AedgeError

MAGIC = b"\x89AEI"
VERSION = 3
# The last aedge release that reads each older format version.
OLD_VERSIONS = {1: "0.1", 2: "0.2"}
MODES = {0: "RGB", 1: "L"}  # L: a greyscale image, coded as RGB and given back as greyscale
STRIDE = 16  # pixels per latent of y
HYPER_STRIDE = 64  # pixels per position of z
TILE = 64  # latents of y per tile side; z tiles are TILE / 4 on a side
# Beyond this, refuse (files and images alike): time, not memory, is what limits size.
MAX_PIXELS = 40_000_000
# magic, version, mode, model identity, width, height, quality, alpha bytes, ICC bytes
_HEADER = struct.Struct("<4sBB8sIIBII")
_SECTION = struct.Struct("<HII")  # rANS lanes, stream bytes, escape bytes
LATENTS = ("z", "y")  # in file order within a tile: the decoder needs z to know how y was coded
HEADER_SIZE = _HEADER.size
TILE_ENTRY = len(LATENTS) * _SECTION.size
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Coded:
    """One latent's share of a tile."""
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


@dataclass(frozen=True)
class File:
    header: Header
    tiles: list  # [{"z": Coded, "y": Coded}] in raster order of tile_grid(header)
    alpha: bytes = b""  # the alpha plane as a greyscale PNG, or nothing
    icc: bytes = b""  # the colour profile of the original, or nothing


def latent_shape(height, width, stride=STRIDE):
    return -(-height // stride), -(-width // stride)


def tile_grid(height, width):
    """(rows, columns) of tiles for an image of this size."""
    rows, cols = latent_shape(height, width)
    return -(-rows // TILE), -(-cols // TILE)


def pack(header, tiles, alpha=b"", icc=b""):
    rows, cols = tile_grid(header.height, header.width)
    if len(tiles) != rows * cols:
        raise ValueError(f"a {header.width}x{header.height} image has {rows * cols} tiles")
    mode = {v: k for k, v in MODES.items()}[header.mode]
    parts = [_HEADER.pack(MAGIC, VERSION, mode, header.model_id, header.width, header.height,
                          header.quality, len(alpha), len(icc))]
    parts += [_SECTION.pack(t[n].lanes, len(t[n].stream), len(t[n].escapes))
              for t in tiles for n in LATENTS]
    parts += [b for t in tiles for n in LATENTS for b in (t[n].stream, t[n].escapes)]
    body = b"".join(parts + [alpha, icc])
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
    _, _, mode, model_id, width, height, quality, _, _ = _HEADER.unpack_from(data)
    if mode not in MODES or not width or not height or not 1 <= quality <= 100:
        raise AedgeError("corrupted aedge file (bad header)")
    if width * height > MAX_PIXELS:
        raise AedgeError(f"corrupted aedge file, or an image beyond aedge's limit of "
                         f"{MAX_PIXELS // 1_000_000} megapixels ({width}x{height})")
    return Header(model_id, width, height, MODES[mode], quality)


def parse(data):
    """File(header, tiles, alpha, icc). Every length is checked against the file's size, and
    the CRC, before anything is allocated from the header: the header is a claim."""
    # Sections are views of the file, not copies of it.
    data = memoryview(data if isinstance(data, (bytes, memoryview)) else bytes(data))
    header = parse_header(data)
    alpha_size, icc_size = _HEADER.unpack_from(data)[-2:]
    rows, cols = tile_grid(header.height, header.width)
    table_end = HEADER_SIZE + rows * cols * TILE_ENTRY
    if table_end + alpha_size + icc_size + _CRC.size > len(data):
        raise AedgeError("corrupted or truncated aedge file (too short for the image its "
                         "header claims)")
    sections = list(_SECTION.iter_unpack(data[HEADER_SIZE:table_end]))
    if table_end + sum(s + e for _, s, e in sections) + alpha_size + icc_size + _CRC.size \
            != len(data):
        raise AedgeError("corrupted or truncated aedge file (section lengths do not add up)")
    body, (crc,) = data[:-_CRC.size], _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(body) != crc:
        raise AedgeError("corrupted or truncated aedge file (CRC mismatch)")
    coded, at = [], table_end
    for lanes, stream, escapes in sections:
        # Every lane ends in a 4-byte state, and the stream is made of 16-bit words.
        if not lanes or stream < 4 * lanes or stream % 2:
            raise AedgeError("corrupted aedge file (bad rANS lanes)")
        coded.append(Coded(lanes, body[at:at + stream], body[at + stream:at + stream + escapes]))
        at += stream + escapes
    tiles = [dict(zip(LATENTS, coded[k:k + len(LATENTS)]))
             for k in range(0, len(coded), len(LATENTS))]
    return File(header, tiles, bytes(body[at:at + alpha_size]),
                bytes(body[at + alpha_size:at + alpha_size + icc_size]))


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
    for byte in bytes(data):
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
