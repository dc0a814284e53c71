"""The .aem model file: one ZIP archive holding everything a codec needs (see FORMAT.md).

Its identity is the first 8 bytes of the SHA-256 of what decides how a file's bytes become
latents: the integer arrays and the manifest's CONTRACT fields. Every .aei image names the
identity of the model that made it, so that no file is ever decoded with the wrong tables;
the networks are not part of it, so that the variants `make quantize` builds (int8, pruned,
distilled) each decode the files of any other.
Networks are read from the archive only when a codec first needs them.
"""
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aedge.errors import AedgeError
from aedge.files import atomic_write

FORMAT_NAME = "aedge-model"
FORMAT_VERSION = 2
OLD_VERSIONS = {1: "0.1"}  # the last aedge release that reads each older model format
MANIFEST = "manifest.json"
# Integer arrays (.npy inside the archive): the gain tables, h_s, the entropy tables.
ARRAYS = "arrays.npz"
NETWORKS = ("g_a", "h_a", "g_s")
# Network variants, in the order a codec prefers them when none is asked for: int16x8 last,
# for it runs on TFLite's reference kernels (optimize/export.py), the slowest by far.
VARIANTS = ("int8-dynamic", "int8", "float32", "int16x8")
# The variants a file's header may choose for its decoding (codec.py): not int16x8, a hundred
# times slower here, which a file must not be able to impose on whoever decodes it.
FOLLOWED = tuple(v for v in VARIANTS if v != "int16x8")
QUALITIES = 100
# The manifest's part of the identity; the rest (name, quality placement, training notes) is not.
CONTRACT = ("downsampling", "latent_channels", "hyper_channels", "h_s", "scales")
# No member of a model file is this large: a claim of more is a broken or hostile file, refused
# before anything is inflated.
MAX_MEMBER_BYTES = 64 << 20
# Bytes asked of zipfile at a time: it then inflates at most 4 KB of compressed data, which
# LZMA's worst case (about 7,000 to 1) keeps below 30 MB.
READ_CHUNK = 4096


def network_member(part, variant):
    return f"{part}.{variant}.tflite"


def float32_path(path):
    """Where a model file's float32 networks go, in a file of their own (the shipped file
    leaves them out for its size: optimize/export.py, write_split): beside it, `-float32`
    added to its name."""
    path = Path(path)
    return path.with_name(f"{path.stem}-float32{path.suffix}")


class ModelFileError(AedgeError):
    pass


@dataclass
class ModelFile:
    path: Path
    identity: bytes
    manifest: dict
    arrays: dict  # name -> int64 array
    variants: tuple
    _data: bytes = field(repr=False, default=b"")

    @property
    def name(self):
        return self.manifest["name"]

    @property
    def default_variant(self):
        return self.variants[0]

    def networks(self):
        """{(part, variant): flatbuffer} of every network the file holds."""
        return {(p, v): self.network(p, v) for p in NETWORKS for v in self.variants}

    def network(self, part, variant):
        """The TFLite flatbuffer of one network, read from the archive now."""
        try:
            with zipfile.ZipFile(io.BytesIO(self._data)) as z:
                return _read_member(z, network_member(part, variant))
        except Exception as e:  # zipfile and zlib raise their own
            raise ModelFileError(f"{self.path}: cannot read its {part} network "
                                 f"({type(e).__name__}: {e})") from None


def _read_member(archive, name):
    """The member's bytes, never inflating more than it claims. zipfile stops at the claimed
    size, but only after inflating the whole chunk it read: all of the member, for
    ZipFile.read. A lying member (LZMA turns 15 KB into 100 MB of zeros) would allocate
    that first; small reads bound what one inflates."""
    info = archive.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{name} claims more than {MAX_MEMBER_BYTES >> 20} MiB")
    out = bytearray()
    with archive.open(info) as member:
        while chunk := member.read(READ_CHUNK):
            out += chunk
    return bytes(out)


def identity_of(manifest, arrays):
    """SHA-256 of the manifest's CONTRACT (JSON, sorted keys), then of every array by name: its
    name, shape and values as little-endian int64, however the file stores them."""
    digest = hashlib.sha256(json.dumps({k: manifest.get(k) for k in CONTRACT},
                                       sort_keys=True).encode())
    for name in sorted(arrays):
        values = np.ascontiguousarray(arrays[name], dtype="<i8")
        digest.update(f"{name}{list(values.shape)}".encode() + values.tobytes())
    return digest.digest()[:8]


# Models that aedge no longer ships, by identity, with the last release that does: a file
# they made is named for what decodes it rather than merely refused.
RETIRED = {"0436a2b036bac840": "0.3", "df44006a97aab7fc": "0.3", "74ecf70f7981c001": "0.6",
           "f5ba6cb092d3b0e2": "0.7"}


def retired(identity):
    """The error for a file of a retired model, naming the release that decodes it; else None."""
    release = RETIRED.get(identity.hex())
    if release:
        return (f"file was made by model {identity.hex()}, which aedge {release} ships and this "
                f"aedge does not: decode it with aedge {release}, or put that release's "
                "models/aedge.aem in a folder named in $AEDGE_MODEL_PATH")
    return None


def identities(model):
    """The identity, then those of older releases of the same tables (aedge 0.3 hashed the
    whole file) that the model's manifest says it decodes too."""
    return [model.identity] + [bytes.fromhex(h) for h in model.manifest.get("also_decodes", [])]


def read(path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read model {path}: {e.strerror or e}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            manifest = json.loads(_read_member(z, MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
                raise ModelFileError(f"{path} is not an aedge model file")
            version = manifest.get("format_version")
            if version != FORMAT_VERSION:
                old = f", which aedge {OLD_VERSIONS[version]} reads" \
                    if version in OLD_VERSIONS else ""
                raise ModelFileError(f"{path} has model format version {version}{old}; this "
                                     f"aedge reads version {FORMAT_VERSION}")
            names = set(z.namelist())
            variants = tuple(v for v in VARIANTS
                             if all(network_member(p, v) in names for p in NETWORKS))
            with np.load(io.BytesIO(_read_member(z, ARRAYS)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        _check(manifest, variants, arrays)
        arrays = {k: v.astype(np.int64) for k, v in arrays.items()}
    except ModelFileError:
        raise
    except Exception as e:  # zipfile, zlib, json and numpy each raise their own
        raise ModelFileError(f"{path} is not a valid aedge model file ({type(e).__name__}: "
                             f"{e})") from None
    return ModelFile(path, identity_of(manifest, arrays), manifest, arrays, variants, data)


def _check(manifest, variants, arrays):
    """Refuses at load time what would otherwise fail in the middle of coding an image."""
    for key, kind in (("name", str), ("downsampling", int), ("latent_channels", int),
                      ("hyper_channels", int), ("default_quality", int), ("h_s", list)):
        if not isinstance(manifest.get(key), kind):
            raise ValueError(f"manifest needs {key!r}")
    if not variants:
        raise ValueError(f"needs the networks {', '.join(NETWORKS)} in at least one variant")
    if manifest["downsampling"] != 16:
        raise ValueError("downsampling must be 16")
    scales = manifest.get("scales")
    if not isinstance(scales, dict) or not all(
            isinstance(scales.get(k), int) for k in ("count", "per_octave", "log2_min", "skip")):
        raise ValueError("manifest needs 'scales' with count, per_octave, log2_min and skip")
    also = manifest.get("also_decodes", [])
    if not isinstance(also, list) or not all(
            isinstance(h, str) and re.fullmatch("[0-9a-f]{16}", h) for h in also):
        raise ValueError("also_decodes must list identities of 16 hex digits")
    if not 1 <= manifest["default_quality"] <= QUALITIES:
        raise ValueError("default_quality must lie in 1..100")
    m, z = manifest["latent_channels"], manifest["hyper_channels"]
    shapes = {"gain_y": (QUALITIES, m), "gain_y_inverse": (QUALITIES, m),
              "log2_gain_y": (QUALITIES, m), "gain_z": (QUALITIES, z),
              "gain_z_inverse": (QUALITIES, z), "z_offsets": (z,),
              "y_offsets": (manifest["scales"]["count"],),
              "z_freqs": None, "y_freqs": None}
    for name, shape in shapes.items():
        if name not in arrays or arrays[name].dtype.kind not in "iu":
            raise ValueError(f"needs the integer array {name}")
        if shape and arrays[name].shape != shape:
            raise ValueError(f"{name} has shape {arrays[name].shape}, not {shape}")
    for name in ("gain_y", "gain_y_inverse", "gain_z", "gain_z_inverse"):
        if arrays[name].min() < 1:
            raise ValueError(f"{name} must be positive")


def pack_tables(freqs):
    """Tables of different lengths as one (tables, longest + 1) array: length, then values."""
    width = max(len(f) for f in freqs)
    out = np.zeros((len(freqs), width + 1), np.int64)
    for k, f in enumerate(freqs):
        out[k, 0] = len(f)
        out[k, 1:len(f) + 1] = f
    return out


def unpack_tables(packed):
    if packed.ndim != 2 or packed.shape[1] < 2:
        raise AedgeError("frequency tables have the wrong shape")
    lengths = packed[:, 0]
    if lengths.min() < 1 or lengths.max() > packed.shape[1] - 1:
        raise AedgeError("frequency tables have bad lengths")
    return [packed[k, 1:n + 1] for k, n in enumerate(lengths)]


def write(path, manifest, networks, arrays, compression=zipfile.ZIP_DEFLATED):
    """Writes atomically, byte for byte the same for the same inputs (fixed ZIP timestamps).
    networks: {(part, variant): flatbuffer}; arrays: {name: integer array}.

    compression: deflate by default, which a codec inflates in a few milliseconds when it
    first needs a network. zipfile.ZIP_LZMA makes files that are smaller where size is the
    point (the pruned models: deflate codes their scattered zeros poorly) and slower to open."""
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest}
    npz = io.BytesIO()
    np.savez(npz, **{k: _narrowest(v) for k, v in sorted(arrays.items())})
    members = [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())]
    members += [(network_member(p, v), networks[p, v]) for p, v in sorted(networks)]
    members.append((ARRAYS, _stable_npz(npz.getvalue())))
    archive = io.BytesIO()
    if compression not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA):
        raise ValueError("a model file is deflated or LZMA-compressed")
    with zipfile.ZipFile(archive, "w") as z:
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = compression
            z.writestr(info, payload, compresslevel=9)
    atomic_write(path, archive.getvalue(), force=True)


def _narrowest(array):
    """The smallest signed integer type that holds the values: int64 would triple the
    deflated size of the tables."""
    array = np.asarray(array, np.int64)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if array.size == 0 or (info.min <= array.min() and array.max() <= info.max):
            return array.astype(dtype)
    return array


def _stable_npz(data):
    """np.savez stamps the time into its members; rewrite them with a fixed one."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(source.namelist()):
            z.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), source.read(name))
    return out.getvalue()
