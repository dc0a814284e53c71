import numpy as np
import pytest

from aedge import tiles


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 7), (5, 1), (3, 4), (4, 3)])
def test_windows_make_each_tile_once_and_hold_few(rows, cols):
    """The decoder's chain: a sweep reaching one tile around it in a window of y tiles, each
    made from the z tiles around it in a lagging window."""
    made = {"z": [], "y": []}

    def z(i, j):
        made["z"].append((i, j))
        return (i, j)

    zwin = tiles.Window(z, rows, cols, lag=1)

    def y(i, j):
        made["y"].append((i, j))
        for a in range(max(i - 1, 0), min(i + 2, rows)):
            for b in range(max(j - 1, 0), min(j + 2, cols)):
                assert zwin(a, b) == (a, b)
        return (i, j)

    ywin = tiles.Window(y, rows, cols)
    most = 0
    for i in range(rows):
        for j in range(cols):
            for a in range(max(i - 1, 0), min(i + 2, rows)):
                for b in range(max(j - 1, 0), min(j + 2, cols)):
                    assert ywin(a, b) == (a, b)
            ywin.done(i, j)
            zwin.done(i, j)
            most = max(most, len(ywin.kept) + len(zwin.kept))
    for name in made:
        assert sorted(made[name]) == [(i, j) for i in range(rows) for j in range(cols)], name
    assert most <= 4 * cols + 8
    assert not ywin.kept and not zwin.kept


def test_gather_joins_tiles():
    whole = np.arange(10 * 13).reshape(10, 13)
    tile = lambda i, j: whole[4 * i:4 * i + 4, 4 * j:4 * j + 4]
    np.testing.assert_array_equal(tiles.gather(tile, 4, 1, 9, 2, 13), whole[1:9, 2:13])
    np.testing.assert_array_equal(tiles.gather(tile, 4, 5, 6, 5, 6), whole[5:6, 5:6])


def test_calls_are_grouped_by_shape():
    """Every block once, and each input shape in one run: the network re-plans only when the
    shape changes, at most once per distinct shape."""
    blocks = tiles.blocks(0, 48, 0, 70, 16)
    grow = lambda k: tiles.grown(*k, 2, 48, 70)
    pairs = tiles.by_shape(blocks, grow)
    assert sorted(b for b, _ in pairs) == sorted(blocks)
    assert all(g == grow(b) for b, g in pairs)
    shapes = [(g[1] - g[0], g[3] - g[2]) for _, g in pairs]
    runs = sum(1 for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1])
    assert runs == len(set(shapes)) < len(blocks)


def test_the_shape_a_network_has_goes_first():
    """A network keeps the plan of its last shape: calls of that shape first save a re-plan."""
    blocks = tiles.blocks(0, 48, 0, 70, 16)
    grow = lambda k: tiles.grown(*k, 2, 48, 70)
    plain = tiles.by_shape(blocks, grow)
    last = (plain[-1][1][1] - plain[-1][1][0], plain[-1][1][3] - plain[-1][1][2])
    pairs = tiles.by_shape(blocks, grow, first=last)
    assert sorted(pairs) == sorted(plain)
    shapes = [(g[1] - g[0], g[3] - g[2]) for _, g in pairs]
    assert shapes[0] == last and shapes[-1] != last
    runs = sum(1 for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1])
    assert runs == len(set(shapes))


def test_blocks_lie_on_a_fixed_grid():
    covered = np.zeros((100, 130), int)
    for a, b, c, d in tiles.blocks(16, 100, 0, 130, 16):
        assert a % 16 == 0 and c % 16 == 0 and b - a <= 16 and d - c <= 16
        covered[a:b, c:d] += 1
    assert (covered[16:] == 1).all() and (covered[:16] == 0).all()
    # A region that starts off the grid is cut where the grid cuts it.
    assert tiles.blocks(5, 20, 0, 3, 16) == [(5, 16, 0, 3), (16, 20, 0, 3)]
