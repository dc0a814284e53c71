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
VERSION = 4
# Version 3 is version 4 without the networks byte; both are read.
READABLE = (3, 4)
# The last aedge release that reads each older format version.
OLD_VERSIONS = {1: "0.1", 2: "0.2"}
MODES = {0: "RGB", 1: "L"}  # L: a greyscale image, coded as RGB and given back as greyscale
# Which of the model's network variants encoded the file (code: its position; 0: not recorded).
# The decoder's latents never depend on it, but its pixels do: a decoder given the encoder's
# networks decodes best (README, "The optimization stage"). A code this reader does not know is
# taken as not recorded.
NETWORKS = (None, "int8-dynamic", "int8", "float32", "int16x8")
STRIDE = 16  # pixels per latent of y
HYPER_STRIDE = 64  # pixels per position of z
TILE = 64  # latents of y per tile side; z tiles are TILE / 4 on a side
# Beyond this, refuse (files and images alike): time, not memory, is what limits size.
MAX_PIXELS = 40_000_000
# magic, version, mode, model identity, width, height, quality, networks, alpha bytes, ICC bytes
_HEADER = struct.Struct("<4sBB8sIIBBII")
_HEADER_3 = struct.Struct("<4sBB8sIIBII")  # version 3: no networks byte
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
    networks: str = None  # the variant that encoded it (NETWORKS), or None: not recorded


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
    if header.networks not in NETWORKS:
        raise ValueError(f"no code for networks {header.networks!r}")
    parts = [_HEADER.pack(MAGIC, VERSION, mode, header.model_id, header.width, header.height,
                          header.quality, NETWORKS.index(header.networks), len(alpha),
                          len(icc))]
    parts += [_SECTION.pack(t[n].lanes, len(t[n].stream), len(t[n].escapes))
              for t in tiles for n in LATENTS]
    parts += [b for t in tiles for n in LATENTS for b in (t[n].stream, t[n].escapes)]
    body = b"".join(parts + [alpha, icc])
    return body + _CRC.pack(zlib.crc32(body))


def parse_header(data):
    """Header alone, checked for magic, version and sense (enough for `aedge info` and model
    lookup)."""
    return _fields(data)[0]


def alpha_size(data):
    """Bytes of the alpha section, from the header alone."""
    return _fields(data)[2]


def _fields(data):
    """(Header, header size, alpha bytes, ICC bytes), the header checked."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise AedgeError("not an aedge file (.aei)")
    if len(data) >= 5 and data[4] in OLD_VERSIONS:
        raise AedgeError(f"aedge file format version {data[4]}, which aedge "
                         f"{OLD_VERSIONS[data[4]]} reads; this aedge reads versions "
                         f"{READABLE[0]} to {VERSION}")
    if len(data) >= 5 and data[4] not in READABLE:
        raise AedgeError(f"aedge file format version {data[4]}; this aedge reads versions "
                         f"{READABLE[0]} to {VERSION}")
    layout = _HEADER if len(data) < 5 or data[4] == VERSION else _HEADER_3
    if len(data) < layout.size + _CRC.size:
        raise AedgeError("truncated aedge file")
    fields = list(layout.unpack_from(data))
    if layout is _HEADER_3:
        fields.insert(7, 0)  # networks: not recorded
    _, _, mode, model_id, width, height, quality, networks, alpha, icc = fields
    if mode not in MODES or not width or not height or not 1 <= quality <= 100:
        raise AedgeError("corrupted aedge file (bad header)")
    if width * height > MAX_PIXELS:
        raise AedgeError(f"corrupted aedge file, or an image beyond aedge's limit of "
                         f"{MAX_PIXELS // 1_000_000} megapixels ({width}x{height})")
    networks = NETWORKS[networks] if networks < len(NETWORKS) else None
    return Header(model_id, width, height, MODES[mode], quality, networks), layout.size, \
        alpha, icc


def parse(data):
    """File(header, tiles, alpha, icc). Every length is checked against the file's size, and
    the CRC, before anything is allocated from the header: the header is a claim."""
    # Sections are views of the file, not copies of it.
    data = memoryview(data if isinstance(data, (bytes, memoryview)) else bytes(data))
    header, header_size, alpha_size, icc_size = _fields(data)
    rows, cols = tile_grid(header.height, header.width)
    table_end = header_size + rows * cols * TILE_ENTRY
    if table_end + alpha_size + icc_size + _CRC.size > len(data):
        raise AedgeError("corrupted or truncated aedge file (too short for the image its "
                         "header claims)")
    sections = list(_SECTION.iter_unpack(data[header_size:table_end]))
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
