"""Interleaved rANS entropy coding, in integer numpy arithmetic only.

Every symbol i is coded with its own frequency table, tables[i], from a set of static tables
(one per latent channel). Symbol i goes to lane i % lanes; all lanes advance together, one
numpy operation per step over the lanes, which is what makes pure numpy fast enough here.

State x of each lane lies in [2**16, 2**32); the stream is made of 16-bit words; frequencies
sum to 2**16. Integer arithmetic only, so a stream decodes bit-exactly on any machine.

Stream layout (little-endian uint16 words): for each lane, its final encoder state as
(low word, high word); then the renormalisation words in the order the decoder reads them.

Where the optional compiled loops (_rans.c) were built, encode and decode run them instead:
the same streams byte for byte, several times faster. AEDGE_PURE_NUMPY=1 keeps numpy.
"""
import ctypes
import importlib.machinery
import os
from pathlib import Path

import numpy as np

from aedge.errors import AedgeError

PRECISION = 16
TOTAL = 1 << PRECISION
STATE_LOW = 1 << 16  # lower bound of the state, and the state every lane starts from
WORD_MASK = 0xFFFF
# The compiled decoder finds a slot's symbol from the first symbol of its bucket of 2**6 slots
# (_rans.c): a table small enough for the cache, and at most 63 steps on from there.
COARSE_SHIFT = 6


class CorruptStream(AedgeError):
    """The stream ended early, or did not decode back to the starting states."""


def quantize_pmf(pmf, precision=PRECISION):
    """Integer frequencies summing to 2**precision, each at least 1, close to pmf in KL terms."""
    pmf = np.asarray(pmf, dtype=np.float64)
    if pmf.ndim != 1 or len(pmf) == 0 or len(pmf) > (1 << precision):
        raise ValueError("pmf must be a non-empty vector no longer than the total frequency")
    if np.any(pmf < 0) or not np.isfinite(pmf).all() or pmf.sum() <= 0:
        raise ValueError("pmf must be finite, non-negative and not all zero")
    total = 1 << precision
    pmf = pmf / pmf.sum()
    freq = np.maximum(1, np.floor(pmf * total)).astype(np.int64)
    # Hand out (or take back) the remainder one unit at a time where it costs the fewest bits.
    while freq.sum() != total:
        if freq.sum() < total:
            gain = pmf * np.log2((freq + 1) / freq)
            freq[np.argmax(gain)] += 1
        else:
            loss = np.where(freq > 1, pmf * np.log2(freq / np.maximum(freq - 1, 1)), np.inf)
            freq[np.argmin(loss)] -= 1
    return freq


class Tables:
    """A set of frequency tables of varied lengths, padded into 2D arrays for gathers."""

    def __init__(self, freqs):
        freqs = [np.asarray(f, dtype=np.int64) for f in freqs]
        if not freqs:
            raise ValueError("at least one table is needed")
        for f in freqs:
            if f.ndim != 1 or f.sum() != TOTAL or np.any(f < 1):
                raise ValueError(f"each table needs frequencies >= 1 summing to {TOTAL}")
        self.sizes = np.array([len(f) for f in freqs], dtype=np.int64)
        width = int(self.sizes.max())
        self.freq = np.zeros((len(freqs), width), dtype=np.int64)
        self.start = np.full((len(freqs), width), TOTAL, dtype=np.int64)
        for k, f in enumerate(freqs):
            self.freq[k, :len(f)] = f
            self.start[k, :len(f)] = np.concatenate([[0], np.cumsum(f)[:-1]])
        self._flat_freq = self.freq.ravel()
        self._plain_starts = self.start.ravel()
        self._slots = None
        self._bits = None
        self._packed = None
        self._coarse = None
        self._row_offset = np.arange(len(freqs), dtype=np.int64) * width

    def __len__(self):
        return len(self.sizes)

    def slot_table(self):
        """For every table and every slot 0..2**16-1, the (flat) symbol whose interval holds
        it: one gather per decoding step instead of a search. Built on first use."""
        if self._slots is None:
            flat = np.arange(self.freq.size, dtype=np.int32)
            self._slots = np.repeat(flat, self.freq.ravel())
        return self._slots

    def packed(self):
        """What both compiled loops read (_rans.c): start | (freq - 1) << 16 of every flat
        symbol, 32 bits each. Built on first use."""
        if self._packed is None:
            # Padding (zero frequency) becomes a word nothing reads: no slot lies in it.
            self._packed = ((self._plain_starts & WORD_MASK) |
                            ((np.maximum(self._flat_freq, 1) - 1) << 16)).astype(np.uint32)
        return self._packed

    def coarse(self):
        """What the compiled decoder reads besides: for every table, the flat symbol that
        holds the first slot of each bucket of 2**COARSE_SHIFT slots. Built on first use, by
        decoding only."""
        if self._coarse is None:
            firsts = np.arange(0, TOTAL, 1 << COARSE_SHIFT)
            ends = np.where(self.freq > 0, self.start + self.freq, TOTAL)
            self._coarse = np.concatenate([
                np.searchsorted(row, firsts, side="right") + k * self.freq.shape[1]
                for k, row in enumerate(ends)]).astype(np.int32)
        return self._coarse

    def flat(self, symbols, table_index):
        """Each symbol's index in the tables' flat arrays."""
        return table_index * self.freq.shape[1] + symbols

    def information_bits(self, symbols, table_index):
        """Ideal code length of the symbols, in bits."""
        return self.flat_information_bits(self.flat(symbols, table_index))

    def flat_information_bits(self, flat):
        if self._bits is None:  # each symbol's cost, once: a gather instead of a logarithm
            with np.errstate(divide="ignore"):
                self._bits = (PRECISION - np.log2(self.freq)).ravel()
        return float(np.sum(self._bits.take(flat)))


def _load_compiled():
    if os.environ.get("AEDGE_PURE_NUMPY"):
        return None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = Path(__file__).with_name("_rans" + suffix)
        if path.is_file():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:
                return None
            p = ctypes.c_void_p
            i64 = ctypes.c_int64
            lib.aedge_rans_encode.argtypes = [p, p, i64, i64, p, p, p]
            lib.aedge_rans_encode.restype = i64
            lib.aedge_rans_decode.argtypes = [p, i64, p, p, ctypes.c_int32, p, i64, i64, i64,
                                              p, p]
            lib.aedge_rans_decode.restype = ctypes.c_int
            return lib
    return None


_COMPILED = _load_compiled()


def compiled():
    """Whether the compiled loops are in use."""
    return _COMPILED is not None


def _ptr(array):
    return array.ctypes.data_as(ctypes.c_void_p)


def encode(symbols, table_index, tables, lanes):
    """Codes symbols[i] with tables[table_index[i]]; returns the stream as bytes."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    if symbols.shape != table_index.shape:
        raise ValueError("symbols and table_index differ in length")
    if len(symbols) and (table_index.min() < 0 or table_index.max() >= len(tables)):
        raise ValueError("table index out of range")
    if len(symbols) and (symbols.min() < 0 or np.any(symbols >= tables.sizes[table_index])):
        raise ValueError("symbol out of its table's range")
    return encode_flat(tables.flat(symbols, table_index), tables, lanes)


def encode_flat(flat, tables, lanes):
    """encode, for symbols given as flat indexes (Tables.flat) that their caller has checked:
    each a symbol of its table (one past a table's end would make a stream that does not
    decode). Only what keeps the loops inside the tables' memory is checked here."""
    flat = np.asarray(flat, dtype=np.int64).ravel()
    if not 1 <= lanes <= 0xFFFF:
        raise ValueError("lanes must be in 1..65535")
    if len(flat) and (flat.min() < 0 or flat.max() >= tables.freq.size):
        raise ValueError("symbol out of the tables")
    if _COMPILED is not None:
        n = len(flat)
        out = np.empty(2 * lanes + n, np.uint16)
        scratch = np.empty(max(n, 1), np.uint16)
        count = _COMPILED.aedge_rans_encode(_ptr(flat), _ptr(tables.packed()), n, lanes,
                                            _ptr(out), _ptr(scratch),
                                            _ptr(np.empty(lanes, np.uint32)))
        return out[:count].astype("<u2", copy=False).tobytes()
    freq = tables._flat_freq.take(flat)
    start = tables._plain_starts.take(flat)
    limit = freq << 16  # a state at or above its symbol's limit first gives out 16 bits
    x = np.full(lanes, STATE_LOW, dtype=np.int64)
    chunks = []
    for first in range((len(flat) - 1) // lanes * lanes, -1, -lanes):
        n = min(lanes, len(flat) - first)
        xs = x if n == lanes else x[:n]
        emit = xs >= limit[first:first + n]
        if emit.any():
            chunks.append((xs[emit] & WORD_MASK)[::-1])
            xs = np.where(emit, xs >> 16, xs)
        quotient, remainder = np.divmod(xs, freq[first:first + n])
        x[:n] = (quotient << PRECISION) + remainder + start[first:first + n]
    body = np.concatenate(chunks)[::-1] if chunks else np.zeros(0, np.int64)
    head = np.stack([x & WORD_MASK, x >> 16], axis=1).ravel()
    return np.concatenate([head, body]).astype("<u2").tobytes()


def decode(data, table_index, tables, lanes):
    """Inverse of encode: the symbols, given the same table indices and lane count."""
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    if not 1 <= lanes <= 0xFFFF:
        raise CorruptStream("entropy-coded data has an impossible lane count")
    if len(data) % 2:
        raise CorruptStream("entropy-coded data has an odd length")
    words = np.frombuffer(data, dtype="<u2")
    if len(words) < 2 * lanes:
        raise CorruptStream("entropy-coded data is truncated")
    x = words[0:2 * lanes:2].astype(np.int64) | (words[1:2 * lanes:2].astype(np.int64) << 16)
    if np.any(x < STATE_LOW):
        raise CorruptStream("entropy-coded data is corrupted")
    if len(table_index) and (table_index.min() < 0 or table_index.max() >= len(tables)):
        raise ValueError("table index out of range")
    if _COMPILED is not None:
        packed, coarse = tables.packed(), tables.coarse()
        symbols = np.empty(len(table_index), np.int64)
        words = np.ascontiguousarray(words, np.uint16)  # native order for C
        status = _COMPILED.aedge_rans_decode(
            _ptr(words), len(words), _ptr(table_index), _ptr(coarse), COARSE_SHIFT,
            _ptr(packed), tables.freq.shape[1], len(table_index), lanes, _ptr(symbols),
            _ptr(np.empty(lanes, np.uint32)))
        if status == -1:
            raise CorruptStream("entropy-coded data is truncated")
        if status != 0:
            raise CorruptStream("entropy-coded data is corrupted")
        return symbols
    keys = table_index << PRECISION
    lut, freqs, plain = tables.slot_table(), tables._flat_freq, tables._plain_starts
    words = words.astype(np.int64)
    pos = 2 * lanes
    # Everything that does not depend on the states is computed once, outside the loop: the
    # loop's cost is numpy's per-call overhead, a dozen calls per step whatever the lanes.
    flat = np.empty(len(table_index), dtype=np.int64)
    for first in range(0, len(table_index), lanes):
        n = min(lanes, len(table_index) - first)
        xs = x if n == lanes else x[:n]
        slot = xs & (TOTAL - 1)
        found = lut[keys[first:first + n] + slot]
        flat[first:first + n] = found
        xs = freqs[found] * (xs >> PRECISION) + slot - plain[found]
        need = np.flatnonzero(xs < STATE_LOW)
        if need.size:
            if pos + need.size > len(words):
                raise CorruptStream("entropy-coded data is truncated")
            xs[need] = (xs[need] << 16) | words[pos:pos + need.size]
            pos += need.size
        x[:n] = xs
    if pos != len(words) or np.any(x != STATE_LOW):
        raise CorruptStream("entropy-coded data is corrupted")
    return flat - tables._row_offset[table_index]
