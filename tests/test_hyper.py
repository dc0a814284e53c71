"""The integer h_s: exact, and the same as a plain reference written with Python integers."""
import numpy as np
import pytest

from aedge import hyper
from aedge.errors import AedgeError

LAYERS = [("conv1", 3, 5, "relu"), ("up", 3, 4, "relu"), ("conv1", 1, 6, None)]


def random_weights(rng, layers, cin):
    weights = []
    for kind, k, out, _ in layers:
        cout = out * 4 if kind == "up" else out
        kernel = rng.normal(0, 0.3, (k, k, cin, cout))
        weights.append(hyper.quantize_layer(kernel, rng.normal(0, 0.5, cout)))
        cin = out
    return weights


def reference(layers, weights, a):
    """Convolutions as loops over Python integers (unbounded, exact), TF's "same" padding."""
    a = [[[int(v) for v in px] for px in row] for row in a]
    for (kind, k, out, act), (kernel, bias, shift) in zip(layers, weights):
        h, w, cin = len(a), len(a[0]), len(a[0][0])
        before = (k - 1) // 2
        cout = kernel.shape[3]
        res = [[[0] * cout for _ in range(w)] for _ in range(h)]
        for i in range(h):
            for j in range(w):
                for o in range(cout):
                    acc = int(bias[o])
                    for di in range(k):
                        for dj in range(k):
                            y, x = i + di - before, j + dj - before
                            if 0 <= y < h and 0 <= x < w:
                                for c in range(cin):
                                    acc += int(kernel[di, dj, c, o]) * a[y][x][c]
                    s = int(shift[o])
                    v = (acc + (1 << (s - 1))) >> s if s else acc
                    res[i][j][o] = v
        if kind == "up":
            c = cout // 4
            res = [[[res[i // 2][j // 2][(2 * (i % 2) + j % 2) * c + ch] for ch in range(c)]
                    for j in range(2 * w)] for i in range(2 * h)]
        limit = hyper.ACT_LIMIT
        a = [[[min(max(max(v, 0) if act == "relu" else v, -limit), limit) for v in px]
              for px in row] for row in res]
    return np.array(a, np.int64)


def test_integer_h_s_equals_a_plain_reference():
    rng = np.random.default_rng(0)
    weights = random_weights(rng, LAYERS, 3)
    net = hyper.HyperSynthesis(LAYERS, weights)
    a = rng.integers(-3000, 3000, (3, 4, 3))
    out = net(a)
    assert out.shape == (6, 8, 6)
    np.testing.assert_array_equal(out, reference(LAYERS, weights, a))
    floats = net.floats(a)  # what the codec takes on with, in float64
    assert floats.dtype == np.float64
    np.testing.assert_array_equal(floats, out)


@pytest.mark.parametrize("threads", [2, 3, 40])
def test_threads_sharing_the_rows_give_the_same_integers(threads):
    # 3 x 5 positions at the first layer: shares of unequal sizes, and more threads than rows.
    rng = np.random.default_rng(threads)
    weights = random_weights(rng, LAYERS, 3)
    net = hyper.HyperSynthesis(LAYERS, weights)
    a = rng.integers(-3000, 3000, (3, 5, 3))
    np.testing.assert_array_equal(net(a, threads), reference(LAYERS, weights, a))
    np.testing.assert_array_equal(net.floats(a, threads), net.floats(a))


@pytest.mark.parametrize("crop", [(0, 28, 0, 36), (0, 1, 0, 1), (27, 28, 35, 36), (5, 11, 3, 30),
                                  (13, 14, 0, 36), (2, 26, 17, 18)])
def test_a_crop_is_computed_alone_to_the_same_integers(crop):
    # Two upsamplings, as the model's h_s: odd crop edges fall between the positions of a
    # layer's input, and the crops touch every edge of the output, or none.
    layers = [("conv1", 3, 4, "relu"), ("up", 3, 3, "relu"), ("up", 3, 5, None),
              ("conv1", 1, 6, None)]
    rng = np.random.default_rng(crop[0] + crop[3])
    weights = random_weights(rng, layers, 3)
    net = hyper.HyperSynthesis(layers, weights)
    a = rng.integers(-3000, 3000, (7, 9, 3))
    top, bottom, left, right = crop
    whole = net.floats(a)
    np.testing.assert_array_equal(net.floats(a, 2, crop), whole[top:bottom, left:right])
    np.testing.assert_array_equal(net(a, 1, crop), reference(layers, weights, a)[
        top:bottom, left:right])


@pytest.mark.parametrize("threads, crop", [(1, None), (2, (1, 5, 2, 7)), (3, (0, 6, 0, 8)),
                                           (40, (3, 4, 0, 5))])
def test_the_output_in_parts_is_the_whole_output_cut_along_its_channels(threads, crop):
    rng = np.random.default_rng(threads)
    weights = random_weights(rng, LAYERS, 3)
    net = hyper.HyperSynthesis(LAYERS, weights)
    a = rng.integers(-3000, 3000, (3, 4, 3))
    top, bottom, left, right = crop or (0, 6, 0, 8)
    whole = reference(LAYERS, weights, a)[top:bottom, left:right]
    for parts in (2, 3):
        cut = net.floats(a, threads, crop, parts=parts)
        assert len(cut) == parts
        run = 6 // parts
        for p, part in enumerate(cut):
            # A stride-1 last layer computes just the crop: each part is one contiguous array.
            assert part.flags.c_contiguous
            np.testing.assert_array_equal(part, whole[..., p * run:(p + 1) * run])


def test_parts_that_do_not_divide_the_channels_or_follow_an_upsampling_are_refused():
    net = hyper.HyperSynthesis(LAYERS, random_weights(np.random.default_rng(0), LAYERS, 3))
    for parts in (4, 0):
        with pytest.raises(ValueError, match=f"into {parts} parts"):
            net.floats(np.zeros((3, 5, 3)), parts=parts)
    up_last = LAYERS[:2]
    net = hyper.HyperSynthesis(up_last, random_weights(np.random.default_rng(0), up_last, 3))
    with pytest.raises(ValueError, match="2 parts"):
        net.floats(np.zeros((3, 5, 3)), parts=2)


def test_a_crop_outside_the_output_is_refused():
    net = hyper.HyperSynthesis(LAYERS, random_weights(np.random.default_rng(0), LAYERS, 3))
    with pytest.raises(ValueError, match="outside"):
        net.floats(np.zeros((3, 5, 3)), crop=(0, 7, 0, 4))


def test_saturated_inputs_stay_exact():
    # The largest activations and weights the format allows: sums far beyond float32's 2**24.
    layers = [("conv1", 3, 2, None)]
    kernel = np.full((3, 3, 8, 2), hyper.WEIGHT_LIMIT, np.int64)
    kernel[..., 1] *= -1
    weights = [(kernel, np.array([12345, -6789]), np.array([0, 7]))]
    net = hyper.HyperSynthesis(layers, weights)
    a = np.full((3, 3, 8), hyper.ACT_LIMIT - 1, np.int64)
    a[0, 0, 0] = -hyper.ACT_LIMIT
    np.testing.assert_array_equal(net(a), reference(layers, weights, a))
    assert abs(int(a.sum()) * hyper.WEIGHT_LIMIT) > 2 ** 24


def test_quantized_layer_is_within_rounding_of_the_float_one():
    rng = np.random.default_rng(2)
    kernel, bias = rng.normal(0, 0.2, (3, 3, 4, 5)), rng.normal(0, 1, 5)
    w, b, shift = hyper.quantize_layer(kernel, bias)
    assert np.abs(w).max() <= hyper.WEIGHT_LIMIT and np.abs(w).max() > hyper.WEIGHT_LIMIT // 2
    np.testing.assert_allclose(w / 2.0 ** shift, kernel, atol=2.0 ** -shift.min())
    np.testing.assert_allclose(b / 2.0 ** (shift + hyper.ACT_FRAC_BITS), bias, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda w: [(w[0][0], w[0][1], w[0][2][:-1])] + w[1:], "do not match"),
    (lambda w: [(w[0][0] * 4, w[0][1], w[0][2])] + w[1:], "exact range"),
    (lambda w: w[:-1], "as many"),
])
def test_bad_weights_are_refused(change, message):
    weights = random_weights(np.random.default_rng(3), LAYERS, 3)
    with pytest.raises(AedgeError, match=message):
        hyper.HyperSynthesis(LAYERS, change(weights))


def test_shift_round_rounds_halves_up():
    assert list(hyper.shift_round(np.array([-3, -2, -1, 0, 1, 2, 3]), 1)) == [-1, -1, 0, 0, 1, 1, 2]


def test_sums_near_the_exact_limit_stay_exact():
    # A 1x1 layer 65536 channels wide at the largest weights, activations and biases the
    # runtime accepts: sums near 2**47 and biases near 2**49, every shift it allows.
    cin = 1 << 16
    shifts = np.array([34, 35, 36, 39, 40])  # outputs within the activation range
    kernel = np.full((1, 1, cin, len(shifts)), hyper.WEIGHT_LIMIT, np.int64)
    kernel[0, 0, ::3, 1::2] *= -1
    bias = np.array([1 << 49, -(1 << 49) + 12345, 7, -3, (1 << 49) - 1])
    weights = [(kernel, bias, shifts)]
    layers = [("conv1", 1, len(shifts), None)]
    a = np.full((1, 1, cin), hyper.ACT_LIMIT, np.int64)
    a[0, 0, ::5] = -hyper.ACT_LIMIT
    out = hyper.HyperSynthesis(layers, weights)(a)
    sums = (kernel[0, 0] * a[0, 0, :, None]).sum(axis=0) + bias
    expected = [int(s) if k == 0 else (int(s) + (1 << (k - 1))) >> k for s, k in zip(sums, shifts)]
    expected = np.clip(expected, -hyper.ACT_LIMIT, hyper.ACT_LIMIT)
    np.testing.assert_array_equal(out[0, 0], expected)
    assert abs(int(sums[0])) > 1 << 48 and np.abs(out).max() < hyper.ACT_LIMIT


def test_a_chain_whose_channels_do_not_follow_is_refused():
    rng = np.random.default_rng(4)
    weights = random_weights(rng, LAYERS, 3)
    other = random_weights(rng, [("up", 3, 4, "relu")], 7)[0]
    with pytest.raises(AedgeError, match="do not match"):
        hyper.HyperSynthesis(LAYERS, [weights[0], other, weights[2]])


def test_h_s_multiplies_on_one_blas_thread_and_gives_the_others_back(monkeypatch):
    # OpenBLAS's idle workers spin on the cores the networks run on next (runtime/hyper.py).
    import threadpoolctl  # a dependency of the runtime, as hyper.py imports it

    def blas_threads():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]
    seen = []
    patches = hyper._patches

    def spying(a, k):
        seen.append(blas_threads())
        return patches(a, k)
    monkeypatch.setattr(hyper, "_patches", spying)
    rng = np.random.default_rng(1)
    net = hyper.HyperSynthesis(LAYERS, random_weights(rng, LAYERS, 3))
    # Two threads to start from, whatever this machine's default, so that the test can fail.
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        if not before or max(before) < 2:
            pytest.skip("numpy here uses no BLAS library that threadpoolctl can limit")
        net(rng.integers(-9, 9, (3, 4, 3)))
        after = blas_threads()
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert after == before
