import hashlib
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aedge import rans


COMPILED = rans._COMPILED


@pytest.fixture(autouse=True, scope="module", params=["numpy", "compiled"])
def loops(request):
    """Every test of this file runs on both rANS loops: numpy's and the compiled ones."""
    if request.param == "compiled" and COMPILED is None:
        pytest.skip("the compiled rANS loops are not built here")
    rans._COMPILED = COMPILED if request.param == "compiled" else None
    yield request.param
    rans._COMPILED = COMPILED


def test_compiled_loops_are_built_where_a_compiler_is():
    # CI installs with a C compiler: there, a build that silently fell back to numpy fails.
    if os.environ.get("AEDGE_PURE_NUMPY") or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler, or numpy asked for")
    assert COMPILED is not None


@pytest.mark.parametrize("seed", range(6))
def test_both_loops_write_and_read_the_same_bytes(seed, loops):
    if COMPILED is None:
        pytest.skip("the compiled rANS loops are not built here")
    rng = np.random.default_rng(seed)
    lanes = int(rng.integers(1, 300))
    tables, table_index, symbols = sample(seed, 64, int(rng.integers(0, 60000)))
    streams = {}
    try:
        for name, lib in (("numpy", None), ("compiled", COMPILED)):
            rans._COMPILED = lib
            streams[name] = rans.encode(symbols, table_index, tables, lanes)
        assert streams["numpy"] == streams["compiled"]
        for lib in (None, COMPILED):
            rans._COMPILED = lib
            np.testing.assert_array_equal(
                rans.decode(streams["numpy"], table_index, tables, lanes), symbols)
    finally:
        rans._COMPILED = COMPILED if loops == "compiled" else None


def random_tables(rng, count, max_size=40):
    pmfs = [rng.dirichlet(np.full(rng.integers(1, max_size), 0.4)) for _ in range(count)]
    return rans.Tables([rans.quantize_pmf(p) for p in pmfs])


def draw(rng, tables, table_index):
    p = tables.freq / rans.TOTAL
    return np.array([rng.choice(tables.sizes[t], p=p[t, :tables.sizes[t]]) for t in table_index])


def test_both_loops_agree_on_long_walks_and_one_symbol_tables(loops):
    # The compiled decoder walks from the first symbol of a bucket of 64 slots: tables of
    # frequency-1 symbols walk the longest (63 steps); a one-symbol table has frequency 2**16.
    if COMPILED is None:
        pytest.skip("the compiled rANS loops are not built here")
    ones = np.ones(rans.TOTAL, np.int64)
    rare = np.concatenate([[rans.TOTAL - 300], np.ones(300, np.int64)])
    tables = rans.Tables([[rans.TOTAL], [1, rans.TOTAL - 1], [rans.TOTAL - 1, 1], ones, rare])
    rng = np.random.default_rng(0)
    table_index = rng.integers(0, 5, 20000)
    symbols = (rng.random(20000) * tables.sizes[table_index]).astype(np.int64)
    try:
        outcomes = {}
        for name, lib in (("numpy", None), ("compiled", COMPILED)):
            rans._COMPILED = lib
            stream = rans.encode(symbols, table_index, tables, 37)
            broken = bytearray(stream)
            broken[200] ^= 0x5A
            decoded = []
            for data in (stream, bytes(broken), stream[:-2]):
                try:
                    decoded.append(rans.decode(data, table_index, tables, 37).tolist())
                except rans.CorruptStream as e:
                    decoded.append(str(e))
            outcomes[name] = stream, decoded
        assert outcomes["numpy"] == outcomes["compiled"]
        assert outcomes["numpy"][1][0] == symbols.tolist()
    finally:
        rans._COMPILED = COMPILED if loops == "compiled" else None


def sample(seed, n_tables, count):
    """Random tables, and symbols drawn from them: (tables, table_index, symbols)."""
    rng = np.random.default_rng(seed)
    tables = random_tables(rng, n_tables)
    table_index = rng.integers(0, n_tables, count)
    return tables, table_index, draw(rng, tables, table_index)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 3000),
       lanes=st.integers(1, 70), n_tables=st.integers(1, 8))
def test_round_trip(seed, count, lanes, n_tables):
    rng = np.random.default_rng(seed)
    tables = random_tables(rng, n_tables)
    table_index = rng.integers(0, n_tables, count)
    # Any in-range symbol must round-trip, likely or not.
    symbols = (rng.random(count) * tables.sizes[table_index]).astype(np.int64)
    data = rans.encode(symbols, table_index, tables, lanes)
    np.testing.assert_array_equal(rans.decode(data, table_index, tables, lanes), symbols)


def test_size_within_one_percent_of_information_content():
    tables, table_index, symbols = sample(7, 16, 20000)
    lanes = 8
    bits = 8 * len(rans.encode(symbols, table_index, tables, lanes))
    ideal = tables.information_bits(symbols, table_index)
    assert ideal > 10000
    assert bits <= 1.01 * ideal


def test_skewed_tables_cost_almost_nothing():
    # One near-certain symbol: 20,000 of them should take a few bytes, not 2,500.
    tables = rans.Tables([rans.quantize_pmf([1.0, 1e-9, 1e-9])])
    data = rans.encode(np.zeros(20000, int), np.zeros(20000, int), tables, 1)
    assert len(data) < 16


def reference_encode(symbols, table_index, tables, lanes):
    """Textbook rANS, one symbol at a time in plain Python: an independent check of the
    vectorised coder. Each renormalisation word is tagged (step, lane), the decoder's order."""
    states = [rans.STATE_LOW] * lanes
    tagged = []
    for i in reversed(range(len(symbols))):
        f = int(tables.freq[table_index[i], symbols[i]])
        c = int(tables.start[table_index[i], symbols[i]])
        x = states[i % lanes]
        if x >= f << 16:
            tagged.append((i // lanes, i % lanes, x & 0xFFFF))
            x >>= 16
        states[i % lanes] = (x // f << 16) + x % f + c
    words = [w for x in states for w in (x & 0xFFFF, x >> 16)]
    words += [w for _, _, w in sorted(tagged)]
    return b"".join(w.to_bytes(2, "little") for w in words)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 400), lanes=st.integers(1, 9))
def test_matches_textbook_rans(seed, count, lanes):
    tables, table_index, symbols = sample(seed, 3, count)
    assert rans.encode(symbols, table_index, tables, lanes) == reference_encode(
        symbols, table_index, tables, lanes)


# Known answer: fixed tables and symbols -> these exact bytes, on every machine, forever
# (a change here breaks every file already written).
KAT_TABLES = [[40000, 20000, 5536], [1, 65534, 1], [16384] * 4]
KAT_SYMBOLS = [0, 1, 3, 2, 1, 0, 1, 2, 2, 2, 1, 1, 0, 0, 1, 1, 2, 3, 1, 1]
KAT_INDEX = [i % 3 for i in range(20)]
KAT_HEX = {1: "0f934c04ffff01b71f68e3f1", 3: "005d133c0900020000c058130300ffff0300"}


@pytest.mark.parametrize("lanes", sorted(KAT_HEX))
def test_known_answer(lanes):
    tables = rans.Tables(KAT_TABLES)
    data = rans.encode(KAT_SYMBOLS, KAT_INDEX, tables, lanes)
    assert data.hex() == KAT_HEX[lanes]
    np.testing.assert_array_equal(rans.decode(data, KAT_INDEX, tables, lanes), KAT_SYMBOLS)


def test_known_answer_large():
    tables, table_index, symbols = sample(2024, 12, 50000)
    data = rans.encode(symbols, table_index, tables, 16)
    assert hashlib.sha256(data).hexdigest()[:16] == "cc11a920bb8adc8b"


def test_truncated_or_altered_stream_is_an_error():
    tables, table_index, symbols = sample(3, 4, 5000)
    data = rans.encode(symbols, table_index, tables, 8)
    with pytest.raises(rans.CorruptStream):
        rans.decode(data[:-2], table_index, tables, 8)
    with pytest.raises(rans.CorruptStream):
        rans.decode(data[:10], table_index, tables, 8)
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0x5A
    with pytest.raises(rans.CorruptStream):
        rans.decode(bytes(altered), table_index, tables, 8)


@pytest.mark.parametrize("lanes", [0, -1, 1 << 16])
def test_impossible_lane_counts_are_refused_before_decoding(lanes):
    tables = rans.Tables(KAT_TABLES)
    with pytest.raises(rans.CorruptStream):
        rans.decode(bytes.fromhex(KAT_HEX[1]), KAT_INDEX, tables, lanes)


def test_rejects_out_of_range_symbols():
    tables = rans.Tables(KAT_TABLES)
    with pytest.raises(ValueError):
        rans.encode([3], [0], tables, 1)
    with pytest.raises(ValueError):
        rans.encode([0], [3], tables, 1)


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=300))
def test_quantize_pmf_is_a_valid_table(pmf):
    if sum(pmf) <= 0:
        return
    freq = rans.quantize_pmf(pmf)
    assert freq.sum() == rans.TOTAL and freq.min() >= 1 and len(freq) == len(pmf)
