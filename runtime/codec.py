"""The codec on the device: TFLite transforms around a numpy rANS coder.

    codec = aedge.load(level=3)           # or aedge.load("my-model.aem")
    data = codec.compress(array)          # uint8 HxWx3 (or HxW greyscale) -> bytes
    array = codec.decompress(data)        # bytes -> uint8 HxWx3 (or HxW)
"""
import os

import numpy as np

from aedge import bitstream, modelfile, rans
from aedge.errors import AedgeError
from aedge.interpreter import Network

# 40 megapixels take about 10 GB to code (the networks' activations dominate): beyond that,
# and for hostile headers, refuse rather than be killed by the out-of-memory reaper.
MAX_PIXELS = 40_000_000
ESCAPE_LIMIT = 1 << 31


class Codec:
    """One model, loaded once: its networks stay warm for every image of the same size."""

    def __init__(self, model, variant=None, threads=None):
        self.model = model if isinstance(model, modelfile.ModelFile) else modelfile.read(model)
        variant = variant or self.model.default_variant
        if ("encoder", variant) not in self.model.networks:
            raise AedgeError(f"model {self.model.name} has no {variant} networks")
        self.variant = variant
        threads = threads or os.cpu_count() or 1
        self._encoder = Network(self.model.networks["encoder", variant], threads)
        self._decoder = Network(self.model.networks["decoder", variant], threads)
        self.stride = int(self.model.manifest["downsampling"])
        self.medians = self.model.medians.astype(np.float32)
        self.offsets = self.model.offsets.astype(np.int64)
        # Channels whose table holds a single value carry no information: they are not coded.
        sizes = np.array([len(f) for f in self.model.freqs])
        self.coded = np.flatnonzero(sizes > 1)
        # modelfile.read has checked the tables; a model with nothing coded gets a dummy one.
        self.tables = rans.Tables([self.model.freqs[c] for c in self.coded] or [[1 << 16]])

    @property
    def identity(self):
        return self.model.identity

    def compress(self, image):
        image, mode = _as_rgb(image)
        height, width = image.shape[:2]
        y = self._encoder(self._pad(image))[0]  # (h, w, channels)
        q = np.rint(y - self.medians).astype(np.int64)
        symbols, escapes = self._symbols(q)
        table_index = self._table_index(q.shape[:2])
        lanes = rans.default_lanes(len(symbols))
        stream = rans.encode(symbols, table_index, self.tables, lanes)
        header = bitstream.Header(self.identity, width, height, mode, lanes)
        return bitstream.pack(header, stream, bitstream.pack_varints(escapes))

    def decompress(self, data):
        parsed = bitstream.parse(bytes(data))
        header = parsed.header
        if header.model_id != self.identity:
            raise AedgeError(f"file was made by model {header.model_id.hex()}, not by "
                             f"{self.identity.hex()} ({self.model.name})")
        if header.width * header.height > MAX_PIXELS:
            raise AedgeError(f"image too large ({header.width}x{header.height})")
        h, w = (-(-header.height // self.stride), -(-header.width // self.stride))
        table_index = self._table_index((h, w))
        symbols = rans.decode(parsed.stream, table_index, self.tables, header.lanes)
        escapes = bitstream.unpack_varints(parsed.escapes)
        if any(abs(v) >= ESCAPE_LIMIT for v in escapes):
            raise AedgeError("corrupted aedge file (escape value out of range)")
        q = self._values(symbols, escapes, (h, w))
        y_hat = (q + self.medians).astype(np.float32)
        x_hat = self._decoder(y_hat[None])[0, :header.height, :header.width]
        image = np.clip(np.rint(x_hat * 255), 0, 255).astype(np.uint8)
        return image[..., 0] if header.mode == "L" else image

    def _pad(self, image):
        """Pads to a multiple of the stride by repeating edges (cheaper to code than black)."""
        h, w = image.shape[:2]
        ph, pw = -h % self.stride, -w % self.stride
        x = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")
        return (x.astype(np.float32) / 255.0)[None]

    def _table_index(self, shape):
        """Symbols go channel by channel, each channel in raster order."""
        return np.repeat(np.arange(len(self.coded)), shape[0] * shape[1])

    def _symbols(self, q):
        coded = q[..., self.coded].transpose(2, 0, 1).reshape(len(self.coded), -1)
        symbols = coded - self.offsets[self.coded, None]
        escape = (self.tables.sizes - 1)[:, None]
        outside = (symbols < 0) | (symbols >= escape)
        symbols = np.where(outside, escape, symbols)
        return symbols.ravel(), [int(v) for v in coded[outside]]

    def _values(self, symbols, escapes, shape):
        symbols = symbols.reshape(len(self.coded), -1)
        escape = (self.tables.sizes - 1)[:, None]
        outside = symbols == escape
        if int(outside.sum()) != len(escapes):
            raise AedgeError("corrupted aedge file (escape count mismatch)")
        coded = symbols + self.offsets[self.coded, None]
        coded[outside] = escapes
        q = np.zeros(shape + (len(self.medians),), dtype=np.int64)
        q[..., self.coded] = coded.reshape(len(self.coded), *shape).transpose(1, 2, 0)
        return q


def _as_rgb(image):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise AedgeError(f"images must be uint8 arrays, not {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise AedgeError(f"images must be HxW or HxWx3 arrays, not shape {image.shape}")
    if min(image.shape[:2]) < 1 or image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AedgeError(f"image size {image.shape[1]}x{image.shape[0]} is out of range "
                         f"(1 to {MAX_PIXELS // 1_000_000} megapixels)")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2), "L"
    return image, "RGB"
