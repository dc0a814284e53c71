"""Entropy models: integer latents <-> rANS streams, one object per latent.

    EntropyBottleneck (z): one fixed table per channel (a learned factorized density).
    GaussianConditional (y): one table per scale index; every symbol has its own index, given
        by the integer h_s, and its value is coded relative to its mean.

Both code a value v with a table of n symbols as symbol v - offset when that lies in 0..n-2,
and as the escape symbol n-1 otherwise, the value then going to a varint section. All integer
arithmetic: the same file decodes to the same latents on every machine.
"""
import numpy as np

from aedge import rans
from aedge.bitstream import Coded, pack_varints, unpack_varints
from aedge.errors import AedgeError

# Every lane ends with a 4-byte state: one lane per this many bytes of expected output keeps
# that overhead near 1%. The numpy loop takes one step per `lanes` symbols: one lane per this
# many symbols keeps it short where symbols are many and cheap.
BYTES_PER_LANE = 400
SYMBOLS_PER_LANE = 1500
MAX_LANES = 256
# A format rule, so that a file's decoding work is bounded by its size: no lane carries more
# symbols than this (the numpy loop takes one step per symbol of a lane).
MAX_SYMBOLS_PER_LANE = 4096
ESCAPE_LIMIT = 1 << 31


class _Coder:
    def __init__(self, offsets, freqs):
        self.offsets = np.asarray(offsets, np.int64)
        self.tables = rans.Tables(freqs)
        if len(self.offsets) != len(self.tables):
            raise AedgeError("entropy model: as many offsets as tables are needed")
        self.escape = self.tables.sizes - 1

    def _encode(self, values, index):
        """index: each value's table, every one a table of this model (the callers make them
        so); values: int64."""
        index = np.asarray(index, np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self.offsets)):
            raise ValueError("table index out of range")
        symbols = values - self.offsets[index]
        escape = self.escape[index]
        outside = (symbols < 0) | (symbols >= escape)
        np.copyto(symbols, escape, where=outside)
        escaped = values[outside]
        # Only an escaped value can be that large (int64's least value has no absolute value).
        if len(escaped) and (escaped.max() >= ESCAPE_LIMIT or escaped.min() <= -ESCAPE_LIMIT):
            raise AedgeError("a latent value is too large to code (the networks went astray)")
        flat = self.tables.flat(symbols, index)
        bits = self.tables.flat_information_bits(flat)
        lanes = int(np.clip(max(bits / 8 / BYTES_PER_LANE, len(symbols) / SYMBOLS_PER_LANE), 1,
                            MAX_LANES))
        lanes = max(1, min(lanes, len(symbols)), -(-len(symbols) // MAX_SYMBOLS_PER_LANE))
        stream = rans.encode_flat(flat, self.tables, lanes)
        return Coded(lanes, stream, pack_varints(int(v) for v in escaped))

    def _decode(self, coded, index):
        if coded.lanes > max(len(index), 1):
            raise AedgeError("corrupted aedge file (more rANS lanes than symbols)")
        if coded.lanes * MAX_SYMBOLS_PER_LANE < len(index):
            raise AedgeError("corrupted aedge file (too few rANS lanes for its symbols)")
        symbols = rans.decode(coded.stream, index, self.tables, coded.lanes)
        escapes = unpack_varints(coded.escapes, limit=len(index))
        outside = symbols == self.escape.take(index)
        if np.count_nonzero(outside) != len(escapes):
            raise AedgeError("corrupted aedge file (escape count mismatch)")
        if escapes and max(abs(v) for v in escapes) >= ESCAPE_LIMIT:
            raise AedgeError("corrupted aedge file (escape value out of range)")
        symbols += self.offsets.take(index)  # now the values
        symbols[outside] = escapes
        return symbols


class EntropyBottleneck(_Coder):
    """A latent whose every channel has one fixed table; coded channel by channel, each in
    raster order."""

    def compress(self, q):
        h, w, c = q.shape
        if c != len(self.offsets):
            raise AedgeError(f"latent has {c} channels, the entropy model {len(self.offsets)}")
        return self._encode(np.ascontiguousarray(q.transpose(2, 0, 1), np.int64).ravel(),
                            self._index(h, w))

    def decompress(self, coded, shape):
        h, w = shape
        values = self._decode(coded, self._index(h, w))
        return values.reshape(len(self.offsets), h, w).transpose(1, 2, 0)

    def _index(self, h, w):
        return np.repeat(np.arange(len(self.offsets), dtype=np.int64), h * w)


class GaussianConditional(_Coder):
    """A latent coded as q = round(y - mean), each value with the table of its scale index.
    Values whose index is below `skip` are not coded: they are 0. At scales that small a value
    is non-zero less than once in 300, and coding them would cost time, not bits: most of a
    latent lies there at low rates. Coded in raster order, channels innermost."""

    def __init__(self, offsets, freqs, skip):
        super().__init__(offsets, freqs)
        self.skip = skip

    def compress(self, q, indexes):
        coded = np.flatnonzero(indexes.ravel() >= self.skip)
        return self._encode(q.ravel().astype(np.int64, copy=False).take(coded),
                            indexes.ravel().take(coded))

    def decompress(self, coded, indexes):
        flat = indexes.ravel()
        coded_at = np.flatnonzero(flat >= self.skip)
        q = np.zeros(flat.shape, np.int64)
        q[coded_at] = self._decode(coded, flat.take(coded_at))
        return q.reshape(indexes.shape)
