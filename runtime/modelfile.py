"""The .aem model file: one ZIP archive holding everything a codec needs (see FORMAT.md).

Its identity is the first 8 bytes of the SHA-256 of the whole file; every .aei image names the
identity of the model that made it, so that no file is ever decoded with the wrong tables.
"""
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aedge.errors import AedgeError
from aedge.files import atomic_write

FORMAT_NAME = "aedge-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENTROPY = "entropy.json"
# Network variants, in the order a codec prefers them when none is asked for.
VARIANTS = ("int8-dynamic", "int8", "float32")


def network_member(part, variant):
    return f"{part}.{variant}.tflite"


class ModelFileError(AedgeError):
    pass


@dataclass
class ModelFile:
    path: Path
    identity: bytes
    manifest: dict
    networks: dict  # (part, variant) -> TFLite flatbuffer bytes
    medians: np.ndarray
    offsets: np.ndarray
    freqs: list

    @property
    def name(self):
        return self.manifest["name"]

    @property
    def default_variant(self):
        """The first of VARIANTS this model has: older files may lack the newer variants."""
        return next(v for v in VARIANTS if ("encoder", v) in self.networks)


def identity_of(data):
    return hashlib.sha256(data).digest()[:8]


def read(path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"cannot read model {path}: {e.strerror or e}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            manifest = json.loads(z.read(MANIFEST))
            if manifest.get("format") != FORMAT_NAME:
                raise ModelFileError(f"{path} is not an aedge model file")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(f"{path} has model format version "
                                     f"{manifest.get('format_version')}; this aedge reads "
                                     f"version {FORMAT_VERSION}")
            networks = {}
            for part in ("encoder", "decoder"):
                for variant in VARIANTS:
                    member = network_member(part, variant)
                    if member in z.namelist():
                        networks[part, variant] = z.read(member)
            entropy = json.loads(z.read(ENTROPY))
            medians = np.array(entropy["medians"], np.float32)
            offsets = np.array(entropy["offsets"], np.int64)
            freqs = [np.array(f, np.int64) for f in entropy["freqs"]]
        _check(manifest, networks, medians, offsets, freqs)
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError, OSError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a valid aedge model file ({e})") from None
    return ModelFile(path, identity_of(data), manifest, networks, medians, offsets, freqs)


def _check(manifest, networks, medians, offsets, freqs):
    """Refuses at load time what would otherwise fail in the middle of coding an image."""
    for key, kind in (("name", str), ("level", int), ("downsampling", int),
                      ("latent_channels", int)):
        if not isinstance(manifest.get(key), kind):
            raise ValueError(f"manifest needs {key!r}")
    variants = {v for _, v in networks}
    if not variants or any(("encoder", v) not in networks or ("decoder", v) not in networks
                           for v in variants):
        raise ValueError("needs an encoder and a decoder for each variant")
    channels = manifest["latent_channels"]
    if not len(medians) == len(offsets) == len(freqs) == channels:
        raise ValueError(f"entropy tables do not cover the {channels} latent channels")
    for f in freqs:
        if f.ndim != 1 or len(f) == 0 or f.sum() != 1 << 16 or f.min() < 1:
            raise ValueError("a frequency table does not sum to 65536")


def write(path, manifest, networks, medians, offsets, freqs):
    """Writes atomically, byte for byte the same for the same inputs (fixed ZIP timestamps)."""
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest}
    entropy = {"medians": [float(m) for m in np.asarray(medians, np.float32)],
               "offsets": [int(o) for o in offsets],
               "freqs": [[int(v) for v in f] for f in freqs]}
    members = [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())]
    members += [(network_member(p, v), networks[p, v]) for p, v in sorted(networks)]
    members.append((ENTROPY, json.dumps(entropy).encode()))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, payload)
    atomic_write(path, archive.getvalue(), force=True)
