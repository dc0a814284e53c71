"""Working in pieces: the geometry that keeps memory bounded at any image size.

Two sizes of piece. Coding tiles (bitstream.TILE latents of y on a side) are part of the file
format: each has its own streams. Network blocks are how the networks run: on a fixed grid
over the image (BLOCK latents of y on a side for g_a and g_s, H_A_BLOCK positions of z for
h_a), each block computed with enough of its neighbours around it that its centre does not
depend on them. Because the grid is fixed, what a network gives for a latent depends on
neither the tiles nor the memory a machine has. With the float32 and int8 networks it is also
exactly what one call on the whole image would give; int8-dynamic picks its activations'
scales per call, so there blocks are a little better than one call (README, "Large images").
"""
import numpy as np

from aedge import bitstream

# Measured on Kodak with the int8-dynamic networks, blocks of 16 against one call per image:
# 0.03 to 0.17 dB more PSNR at the same size, and 5 ms faster; blocks of 8 gain up to 0.28 dB
# but cost 20 ms more. LiteRT's peak memory grows faster than a block's area (g_a: 62 MB at
# 16, 99 MB at 24, 169 MB at 32). Both divide bitstream.TILE, so blocks never straddle tiles.
BLOCK = 16
H_A_BLOCK = 4


class Grid:
    """Where the latents and the tiles of an image of this size lie."""

    def __init__(self, height, width):
        self.y = bitstream.latent_shape(height, width)
        self.z = bitstream.latent_shape(height, width, bitstream.HYPER_STRIDE)
        self.rows, self.cols = bitstream.tile_grid(height, width)
        self.tile = bitstream.TILE
        self.z_tile = self.tile * bitstream.STRIDE // bitstream.HYPER_STRIDE

    def steps(self):
        """Every tile, in raster order (the order of the file's tile table)."""
        return [(i, j) for i in range(self.rows) for j in range(self.cols)]

    def y_bounds(self, i, j):
        return _bounds(i, j, self.tile, *self.y)

    def z_bounds(self, i, j):
        return _bounds(i, j, self.z_tile, *self.z)

    def window(self, make, lag=0):
        return Window(make, self.rows, self.cols, lag)


def _bounds(i, j, size, rows, cols):
    """Rows and columns of tile (i, j) of a grid of size x size tiles over rows x cols."""
    return i * size, min((i + 1) * size, rows), j * size, min((j + 1) * size, cols)


def spans(lo, hi, size):
    """The cells of a fixed grid of step size that meet [lo, hi), clipped to it."""
    return [(max(a, lo), min(a + size, hi)) for a in range(lo // size * size, hi, size)]


def blocks(r0, r1, c0, c1, size):
    """The network calls that cover a region (aligned to the grid, or ending at the image's
    edge)."""
    return [(a, b, c, d) for a, b in spans(r0, r1, size) for c, d in spans(c0, c1, size)]


def by_shape(blocks, grow, first=None):
    """[(block, grow(block))], ordered by the grown region's shape, the shape `first` (the one
    the network was last given) before the others: a network re-plans its graph whenever its
    input's shape changes (about 0.8 ms in LiteRT here), and no result depends on the order of
    the calls."""
    pairs = [(block, grow(block)) for block in blocks]

    def shape(pair):
        return pair[1][1] - pair[1][0], pair[1][3] - pair[1][2]
    return sorted(pairs, key=lambda pair: (shape(pair) != first, shape(pair)))


def network_calls(region, size, margin, rows, cols, scale=1, first=None):
    """The blocks of size over a region and, for each, the input it needs (the block scaled to
    the input's grid, grown by margin within rows x cols), ordered by that input's shape."""
    return by_shape(blocks(*region, size),
                    lambda k: grown(*(scale * v for v in k), margin, rows, cols), first)


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
        # The step itself may reach its own tile after the ones it serves were made.
        return max((max(min(i + 1, self.rows - 1) - self.lag, 0),
                    max(min(j + 1, self.cols - 1) - self.lag, 0)), (i, j))

    def done(self, i, j):
        """Step (i, j) is over."""
        for key in [k for k in self.kept if self.last_step(*k) <= (i, j)]:
            del self.kept[key]
