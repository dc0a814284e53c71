"""Entropy models with per-symbol tables: exact round trips, and sizes near the information."""
import math

import numpy as np
import pytest

from aedge import rans
from aedge.entropy_models import EntropyBottleneck, GaussianConditional
from aedge.errors import AedgeError


def gaussian_tables(scales):
    offsets, freqs = [], []
    for s in scales:
        r = max(1, math.ceil(6 * s))
        mass = lambda v: 0.5 * math.erfc(v / (s * math.sqrt(2)))
        pmf = [mass(abs(q) - 0.5) - mass(abs(q) + 0.5) for q in range(-r, r + 1)]
        offsets.append(-r)
        freqs.append(rans.quantize_pmf(pmf + [max(1 - sum(pmf), 1e-9)]))
    return offsets, freqs


SCALES = 0.11 * 2 ** (np.arange(24) / 3)


@pytest.fixture(scope="module")
def gaussian():
    return GaussianConditional(*gaussian_tables(SCALES), skip=1)


def test_gaussian_round_trip_with_a_table_per_symbol(gaussian):
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(SCALES), (20, 30, 16))
    q = np.rint(rng.normal(0, SCALES[index])).astype(np.int64)
    q[index == 0] = 0  # index 0 is not coded: the encoder sends 0 there
    q[3, 4, 5], q[7, 8, 9] = 5000, -70000  # escapes
    index[3, 4, 5] = index[7, 8, 9] = 5
    coded = gaussian.compress(q, index)
    np.testing.assert_array_equal(gaussian.decompress(coded, index), q)


def test_indices_below_skip_are_not_coded():
    model = GaussianConditional(*gaussian_tables(SCALES), skip=4)
    index = np.full((8, 8, 4), 3, np.int64)
    index[0, 0, 0] = 10
    q = np.zeros_like(index)
    q[0, 0, 0] = 3
    q[1, 1, 1] = 2  # at a skipped index: not sent, decoded as 0
    coded = model.compress(q, index)
    assert coded.lanes == 1 and len(coded.stream) == 4  # one symbol: the lane's state
    expected = q.copy()
    expected[1, 1, 1] = 0
    np.testing.assert_array_equal(model.decompress(coded, index), expected)


def test_values_too_large_to_code_are_refused(gaussian):
    index = np.full((2, 2, 1), 5, np.int64)
    q = np.array([[[1], [2]], [[-(1 << 40)], [0]]])
    with pytest.raises(AedgeError, match="too large"):
        gaussian.compress(q, index)


def test_size_is_within_one_percent_of_the_information(gaussian):
    rng = np.random.default_rng(1)
    index = rng.integers(1, len(SCALES), 400_000)
    q = np.rint(rng.normal(0, SCALES[index])).astype(np.int64)
    coded = gaussian.compress(q, index)
    table = gaussian.tables
    symbols = q - gaussian.offsets[index]
    information = table.information_bits(symbols, index) / 8
    assert not coded.escapes
    assert information < len(coded.stream) < 1.01 * information
    # And the model's own entropy: the tables cost little against exact probabilities.
    exact = -np.log2([0.5 * math.erfc((abs(v) - 0.5) / (s * math.sqrt(2)))
                      - 0.5 * math.erfc((abs(v) + 0.5) / (s * math.sqrt(2)))
                      for v, s in zip(q[:20000], SCALES[index[:20000]])]).sum() / 8
    assert table.information_bits(symbols[:20000], index[:20000]) / 8 < 1.01 * exact


def test_bottleneck_round_trip():
    rng = np.random.default_rng(2)
    offsets = [-3, -10, 0]
    freqs = [rans.quantize_pmf(rng.random(n) + 0.01) for n in (8, 21, 2)]
    model = EntropyBottleneck(offsets, freqs)
    z = rng.integers(-12, 12, (5, 7, 3))
    coded = model.compress(z)
    np.testing.assert_array_equal(model.decompress(coded, (5, 7)), z)


def test_damaged_streams_are_refused(gaussian):
    rng = np.random.default_rng(3)
    index = rng.integers(1, len(SCALES), (10, 10, 8))
    q = np.rint(rng.normal(0, SCALES[index])).astype(np.int64)
    coded = gaussian.compress(q, index)
    from dataclasses import replace
    for bad in (replace(coded, stream=coded.stream[:-2]),
                replace(coded, lanes=coded.lanes + 1000),
                replace(coded, escapes=b"\x05")):
        with pytest.raises(AedgeError):
            gaussian.decompress(bad, index)
