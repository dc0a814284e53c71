"""Working in pieces: the geometry that keeps memory bounded at any image size.

Two sizes of piece. Coding tiles (bitstream.TILE latents of y on a side) are part of the file
format: each has its own streams. Network blocks (at most BLOCK latents on a side, plus a
margin) are how the runtime calls its networks: a block is computed with enough of its
neighbours around it that its centre equals what the whole image would give, so the split is
invisible (exactly, for the float32 and int8 networks; int8-dynamic picks its activation
scales per call, so there it shifts values by a quantization step here and there).
"""
import numpy as np

# A region of at most this many latents goes through a network in one call (a Kodak image,
# 768 x 512 pixels, about 150 MB at the peak); larger ones are split into blocks of at most
# BLOCK on a side. LiteRT's peak memory grows faster than a block's area (measured on g_a:
# 62 MB at 16, 99 MB at 24, 169 MB at 32), and small blocks cost no more time than large
# ones, margins included.
MAX_CALL = 48 * 32
BLOCK = 16


def spans(lo, hi, size):
    """[lo, hi) cut into near-equal spans of at most size."""
    count = max(1, -(-(hi - lo) // size))
    edges = [lo + (hi - lo) * k // count for k in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def blocks(r0, r1, c0, c1):
    """The network calls that cover a region of latents."""
    if (r1 - r0) * (c1 - c0) <= MAX_CALL:
        return [(r0, r1, c0, c1)]
    return [(a, b, c, d) for a, b in spans(r0, r1, BLOCK) for c, d in spans(c0, c1, BLOCK)]


def grown(r0, r1, c0, c1, margin, rows, cols):
    """The region with `margin` more on every side, within (0, rows) x (0, cols)."""
    return max(r0 - margin, 0), min(r1 + margin, rows), max(c0 - margin, 0), min(c1 + margin, cols)


def gather(tile, size, r0, r1, c0, c1):
    """Rows r0..r1, columns c0..c1 of an array that exists only as tiles of size x size,
    tile(i, j) giving each."""
    rows = []
    for i in range(r0 // size, (r1 - 1) // size + 1):
        row = []
        for j in range(c0 // size, (c1 - 1) // size + 1):
            a = tile(i, j)
            row.append(a[max(r0 - i * size, 0):r1 - i * size, max(c0 - j * size, 0):c1 - j * size])
        rows.append(row[0] if len(row) == 1 else np.concatenate(row, axis=1))
    return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)


class Window:
    """Tiles made on demand, for work that sweeps a rows x cols grid of steps in raster order,
    step (i, j) reaching the tiles (i +- 1, j +- 1). A tile is forgotten after the last step
    that reaches it, so about two rows of tiles are held, never the image. With lag=1 the
    tiles serve another window's tiles, made one step ahead of the sweep."""

    def __init__(self, make, rows, cols, lag=0):
        self.make, self.kept = make, {}
        self.rows, self.cols, self.lag = rows, cols, lag

    def __call__(self, i, j):
        if (i, j) not in self.kept:
            self.kept[i, j] = self.make(i, j)
        return self.kept[i, j]

    def last_step(self, i, j):
        return (max(min(i + 1, self.rows - 1) - self.lag, 0),
                max(min(j + 1, self.cols - 1) - self.lag, 0))

    def done(self, i, j):
        """Step (i, j) is over."""
        for key in [k for k in self.kept if self.last_step(*k) <= (i, j)]:
            del self.kept[key]
