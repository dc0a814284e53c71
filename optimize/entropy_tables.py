"""Turn the learned densities into the integer tables the runtime's rANS coder uses."""
import numpy as np
import tensorflow as tf

from aedge.rans import PRECISION, quantize_pmf

# Probability left to each tail before values escape the table (they are then coded apart).
TAIL_MASS = 1e-5
# A channel whose most likely value has at least this probability is not coded at all: the
# decoder takes its median. It saves both time and the bits of tables that say nothing.
DEAD_CHANNEL = 0.9995
GRID_STEP = 1 / 64
GRID_HALF_WIDTH = 2048


def _cdf(bottleneck, values):
    """CDF of every channel at the same points: values (n,) -> (channels, n)."""
    channels = bottleneck.matrices[0].shape[0]
    x = tf.tile(tf.constant(values, tf.float32)[None, None, :], (channels, 1, 1))
    return tf.sigmoid(bottleneck.logits_cdf(x))[:, 0, :].numpy().astype(np.float64)


def _cdf_at(bottleneck, points):
    """CDF of channel c at points[c]: points (channels, n) -> (channels, n)."""
    x = tf.constant(points[:, None, :], tf.float32)
    return tf.sigmoid(bottleneck.logits_cdf(x))[:, 0, :].numpy().astype(np.float64)


def build(bottleneck):
    """Returns (medians, offsets, freqs): channel c codes q = round(y - medians[c]) as symbol
    q - offsets[c] of freqs[c]; the last symbol of a table with more than one is the escape."""
    grid = np.arange(-GRID_HALF_WIDTH, GRID_HALF_WIDTH + GRID_STEP, GRID_STEP)
    cdf = _cdf(bottleneck, grid)
    index = lambda level: np.argmax(cdf >= level, axis=1)
    medians = grid[index(0.5)]
    lows = np.floor(grid[index(TAIL_MASS)] - medians + 0.5)
    highs = np.ceil(grid[index(1 - TAIL_MASS)] - medians - 0.5)
    width = int(np.max(highs - lows)) + 1
    ks = lows[:, None] + np.arange(width)[None, :]
    upper = _cdf_at(bottleneck, medians[:, None] + ks + 0.5)
    lower = _cdf_at(bottleneck, medians[:, None] + ks - 0.5)
    offsets, freqs = [], []
    for c in range(len(medians)):
        n = int(highs[c] - lows[c]) + 1
        pmf = np.maximum(upper[c, :n] - lower[c, :n], 0.0)
        if pmf.max() >= DEAD_CHANNEL:
            offsets.append(0)
            freqs.append(np.array([1 << PRECISION]))
            continue
        escape = max(1.0 - pmf.sum(), 1e-9)
        offsets.append(int(lows[c]))
        freqs.append(quantize_pmf(np.append(pmf, escape)))
    return medians.astype(np.float32), np.array(offsets, np.int32), freqs
