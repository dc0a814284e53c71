"""The integer tables of the runtime's entropy models, built once at export.

z: one table per channel, from its learned density. y: one table per scale of the Gaussian
conditional. Tables are computed here in float64 and stored as integers in the model file, so
that no device ever recomputes a probability (libm's erfc differs between machines).
"""
import math

import numpy as np

from aedge.rans import quantize_pmf
from aedge.train import architecture as arch

# Probability left to each tail of a z density before values escape its table.
TAIL_MASS = 1e-6
GRID_STEP = 1 / 64
GRID_HALF_WIDTH = 1024
# A Gaussian table spans the integers within this many scales of its mean.
TAIL_SCALES = 6


def z_tables(cdf):
    """cdf(points (n,)) -> (channels, n) the CDF of each channel. Returns (offsets, freqs):
    channel c codes z_q as symbol z_q - offsets[c]; the last symbol is the escape."""
    grid = np.arange(-GRID_HALF_WIDTH, GRID_HALF_WIDTH + GRID_STEP, GRID_STEP)
    at = np.asarray(cdf(grid), np.float64)
    lows = np.floor(grid[np.argmax(at >= TAIL_MASS, axis=1)] + 0.5)
    highs = np.ceil(grid[np.argmax(at >= 1 - TAIL_MASS, axis=1)] - 0.5)
    offsets, freqs = [], []
    for c in range(len(at)):
        ks = np.arange(lows[c], highs[c] + 1)
        points = np.concatenate([ks - 0.5, ks + 0.5])
        edges = np.asarray(cdf(points), np.float64)[c]
        pmf = np.maximum(edges[len(ks):] - edges[:len(ks)], 0.0)
        escape = max(1.0 - pmf.sum(), 1e-9)
        offsets.append(int(lows[c]))
        freqs.append(quantize_pmf(np.append(pmf, escape)))
    return np.array(offsets, np.int64), freqs


def gaussian_tables():
    """(offsets, freqs) for the scales of architecture.py: table k codes q in -R..R (R about
    TAIL_SCALES scales) as symbol q + R, anything else as the escape."""
    offsets, freqs = [], []
    for k in range(arch.N_SCALES):
        scale = arch.scale_of(k)
        r = max(1, math.ceil(TAIL_SCALES * scale))
        mass = lambda v: 0.5 * math.erfc(v / (scale * math.sqrt(2)))
        pmf = np.array([mass(abs(q) - 0.5) - mass(abs(q) + 0.5) for q in range(-r, r + 1)])
        escape = max(1.0 - pmf.sum(), 1e-9)
        offsets.append(-r)
        freqs.append(quantize_pmf(np.append(pmf, escape)))
    return np.array(offsets, np.int64), freqs
