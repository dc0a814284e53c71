"""The hyper-synthesis h_s in exact integer arithmetic: the same scale indices on every CPU.

The scale index picks the table that codes each symbol of y; one float rounding difference
between two machines would pick another table and wreck the rest of the image. So h_s is
computed here in integers only, with numpy: integer weights, products summed in float64
(every partial sum stays below 2**53, where float64 is exact whatever the summation order),
and requantization by integer shifts. Training (train/jax_model.py) rounds the same way.

Activations are integers a standing for a / 2**ACT_FRAC_BITS. A layer's weights are integers
w_int = round(w * 2**shift[c]), one shift per output channel, its biases
round(b * 2**(shift[c] + ACT_FRAC_BITS)); its output is (sum + 2**(shift-1)) >> shift.
"""
import concurrent.futures
import functools
import operator
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from aedge.errors import AedgeError

ACT_FRAC_BITS = 8
ACT_LIMIT = (1 << 16) - 1
WEIGHT_LIMIT = (1 << 15) - 1
GAIN_FRAC_BITS = 16
MAX_SHIFT = 40
EXACT = 1 << 53
# h_s is a few million multiply-adds a layer: beyond a few threads, the shares get too small
# to be worth a thread each.
MAX_THREADS = 8


class HyperSynthesis:
    """layers: [(kind, kernel, out_channels, activation)] as in train/architecture.py;
    weights: [(kernel int HWIO, bias int, shift int per output channel)] for each layer."""

    def __init__(self, layers, weights):
        self.layers = [tuple(layer) for layer in layers]
        if len(weights) != len(self.layers):
            raise AedgeError("h_s has as many weight sets as layers")
        self.weights = []
        cin = None
        for (kind, k, out, act), (kernel, bias, shift) in zip(self.layers, weights):
            kernel = np.asarray(kernel, np.int64)
            bias, shift = np.asarray(bias, np.int64), np.asarray(shift, np.int64)
            if kind not in ("conv1", "up") or act not in ("relu", None) or \
                    type(k) is not int or type(out) is not int or not 1 <= k <= 7 or out < 1:
                raise AedgeError(f"h_s layer {kind}/{k}/{out}/{act} is not one the runtime "
                                 "computes")
            cout = out * 4 if kind == "up" else out
            if kernel.ndim != 4 or kernel.shape[:2] != (k, k) or kernel.shape[3] != cout or \
                    bias.shape != (cout,) or shift.shape != (cout,) or \
                    cin not in (None, kernel.shape[2]):
                raise AedgeError("h_s weights do not match its layers")
            cin = out
            if np.abs(kernel).max(initial=0) > WEIGHT_LIMIT or shift.min() < 0 or \
                    shift.max() > MAX_SHIFT or np.abs(bias).max(initial=0) >= EXACT // 4:
                raise AedgeError("h_s weights are out of the exact range")
            # Sums of k*k*cin products below 2**31 each must stay below 2**53.
            if k * k * kernel.shape[2] * (WEIGHT_LIMIT * ACT_LIMIT) >= EXACT // 4:
                raise AedgeError("h_s layer too wide to be summed exactly")
            # Requantization in float64, exactly: adding the rounding half and scaling by a
            # power of two are exact for integers below 2**53, and so is the floor after them.
            # The scale goes into the kernel and the bias: every product and partial sum is
            # then the integer one times that power of two, as exact, and each layer's output
            # takes one pass less.
            half = np.where(shift > 0, 2.0 ** (shift - 1), 0.0)
            scale = 2.0 ** -shift
            self.weights.append((kernel.reshape(-1, cout).astype(np.float64) * scale,
                                 (bias.astype(np.float64) + half) * scale))

    @property
    def upsampling(self):
        return 2 ** sum(kind == "up" for kind, *_ in self.layers)

    @property
    def in_channels(self):
        return self.weights[0][0].shape[0] // (self.layers[0][1] ** 2)

    def __call__(self, a, threads=1, crop=None):
        """a: int64 (h, w, channels) -> int64 (h * 2**ups, w * 2**ups, out_channels); with
        crop=(top, bottom, left, right), only those rows and columns of it."""
        return self.floats(a, threads, crop).astype(np.int64)

    def floats(self, a, threads=1, crop=None, parts=1):
        """The same integers, left in float64 (exact): the caller's next steps are exact in
        float64 too, and converting the largest array of h_s costs as much as a layer.
        threads: how many threads share each layer's rows. crop: as in __call__; each layer
        then computes only what the crop depends on, the same integers as the whole output
        has there. parts > 1: a list of that many arrays, the output's channels cut into
        equal runs (the codec's means and log-scales), each contiguous, from a product of its
        own: the codec's passes over the strided halves of one array cost it 1.5 ms a side on
        a Kodak image."""
        parts = operator.index(parts)
        if parts != 1 and (parts < 1 or self.layers[-1][0] != "conv1" or
                           self.weights[-1][0].shape[1] % parts):
            raise ValueError(f"h_s's output cannot be cut into {parts} parts")
        # One BLAS thread: OpenBLAS's workers spin for a while after each product (numpy's
        # wheels bundle it), on the cores that the networks' XNNPACK threads run on next.
        # Measured on a Kodak image here: g_s 76-94 ms after h_s with two BLAS threads,
        # 46-51 with one, and h_s itself a millisecond slower.
        # The limit is the process's: while h_s runs, other threads get one BLAS thread too.
        # One h_s at a time: two threads limiting at once would each restore the other's
        # limit, and leave the caller's BLAS on one thread for good.
        # The rows are shared among threads of our own instead, each multiplying on one BLAS
        # thread, which sleep when done: h_s of a Kodak image alone took 4.5-6.0 ms on two
        # threads here, 7.3 on one.
        with _BLAS_LOCK, _blas().limit(limits=1, user_api="blas"):
            a = np.asarray(a, np.float64)
            up = self.upsampling
            crop = crop or (0, a.shape[0] * up, 0, a.shape[1] * up)
            out = self._floats(a, self._plan(crop, a.shape[:2]), crop,
                               min(max(1, threads), MAX_THREADS), parts)
            return out if parts != 1 else out[0]

    def _plan(self, crop, size):
        """For each layer, the rows and columns of its input it reads and of its outputs (before
        depth_to_space) it computes, from the crop wanted back to the input. At a tile's h_s
        this is most of the work saved: the tile's z comes with 3 positions of z around it,
        for a tile of 8 positions of z."""
        top, bottom, left, right = crop
        h, w = size
        if not (0 <= top < bottom <= h * self.upsampling and
                0 <= left < right <= w * self.upsampling):
            raise ValueError(f"crop {crop} is outside h_s's output")
        extents, f = [], 1
        for kind, *_ in self.layers:  # each layer's input size
            extents.append((h * f, w * f))
            f *= 2 if kind == "up" else 1
        plan, need = [], (top, bottom, left, right)
        for (kind, k, *_), (rows, cols) in reversed(list(zip(self.layers, extents))):
            if kind == "up":  # conv output (r, c) gives outputs (2r..2r+1, 2c..2c+1)
                need = (need[0] // 2, -(-need[1] // 2), need[2] // 2, -(-need[3] // 2))
            before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
            reads = (max(need[0] - before, 0), min(need[1] + after, rows),
                     max(need[2] - before, 0), min(need[3] + after, cols))
            plan.append((reads, need))
            need = reads
        return plan[::-1]

    def _floats(self, a, plan, crop, threads, parts):
        wanted = (0, a.shape[0], 0, a.shape[1])  # the rows and columns `a` holds
        a = [a]  # each layer's output as its runs of channels (only the last has several)
        for n, ((kind, k, out, act), (kernel, bias), (reads, computes)) in enumerate(zip(
                self.layers, self.weights, plan)):
            a = a[0][reads[0] - wanted[0]:reads[1] - wanted[0],
                     reads[2] - wanted[2]:reads[3] - wanted[2]]
            # As one (positions, k*k*cin) matrix: numpy multiplies an (h, w, n) array row by
            # row of h, three to four times slower here; any order of the sum is exact. Zero
            # padding at the edges of what is read is right where they are the input's edges,
            # and elsewhere reaches only outputs that are not computed.
            top, left = computes[0] - reads[0], computes[2] - reads[2]
            h, w = computes[1] - computes[0], computes[3] - computes[2]
            patches = _patches(a, k)[top:top + h, left:left + w].reshape(h * w, kernel.shape[0])
            cut = parts if n == len(self.layers) - 1 else 1
            step = kernel.shape[1] // cut
            runs = [slice(p * step, (p + 1) * step) for p in range(cut)]
            outs = [np.empty((h * w, step)) for _ in runs]
            low = 0 if act == "relu" else -ACT_LIMIT
            bounds = np.linspace(0, h * w, min(threads, h * w) + 1).astype(int)
            jobs = [(patches[i:j], [(kernel[:, r], bias[r], o[i:j]) for r, o in zip(runs, outs)],
                     low) for i, j in zip(bounds[:-1], bounds[1:])]
            shares = [_pool(threads - 1).submit(_layer, *job) for job in jobs[1:]]
            try:
                if jobs:
                    _layer(*jobs[0])  # the calling thread takes the first share
            finally:  # no share may outlive the BLAS limit and the lock, even on an error
                concurrent.futures.wait(shares)
            for share in shares:
                share.result()
            a = [o.reshape(h, w, step) for o in outs]
            wanted = computes
            if kind == "up":
                a = [depth_to_space(o) for o in a]
                wanted = tuple(2 * v for v in computes)
        top, bottom, left, right = crop
        return [o[top - wanted[0]:bottom - wanted[0], left - wanted[2]:right - wanted[2]]
                for o in a]


def _layer(patches, products, low):
    """products: (kernel, bias, out) for each run of the output's channels."""
    for kernel, bias, out in products:
        np.matmul(patches, kernel, out=out)
        # In place: on a Kodak image the last layer's output is 590,000 values, and each
        # temporary of that size costs about as much as its matrix product.
        out += bias
        np.floor(out, out=out)
        np.clip(out, low, ACT_LIMIT, out=out)  # before depth_to_space: it only moves values


@functools.cache
def _pool(workers):
    return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="aedge-h_s")


_BLAS_LOCK = threading.Lock()


@functools.cache
def _blas():
    # Finding the BLAS libraries numpy loaded walks the process's shared objects: once.
    return ThreadpoolController()


def _patches(a, k):
    """(h, w, c) -> (h, w, k*k*c): each pixel's k x k neighbourhood, zero-padded as
    TensorFlow's "same" convolution pads, in the (row, column, channel) order of HWIO kernels."""
    if k == 1:
        return a
    h, w, _ = a.shape
    before = (k - 1) // 2
    padded = np.pad(a, ((before, k - 1 - before), (before, k - 1 - before), (0, 0)))
    return np.concatenate([padded[i:i + h, j:j + w] for i in range(k) for j in range(k)],
                          axis=-1)


def depth_to_space(x):
    """TensorFlow's order: output[2h+i, 2w+j, c] = input[h, w, (2i+j)C + c]."""
    h, w, c4 = x.shape
    c = c4 // 4
    return x.reshape(h, w, 2, 2, c).transpose(0, 2, 1, 3, 4).reshape(2 * h, 2 * w, c)


def quantize_layer(kernel, bias):
    """Float weights of one layer -> (kernel int, bias int, shift), as training rounds them."""
    kernel = np.asarray(kernel, np.float64)
    peak = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    shift = np.floor(np.log2(WEIGHT_LIMIT / np.maximum(peak, 1e-30)))
    shift = np.clip(shift, 0, MAX_SHIFT).astype(np.int64)
    w = np.rint(kernel * 2.0 ** shift).astype(np.int64)
    b = np.rint(np.asarray(bias, np.float64) * 2.0 ** (shift + ACT_FRAC_BITS)).astype(np.int64)
    return w, b, shift


def fixed_point(values, bits):
    """round(values * 2**bits) as int64: how gains travel in a model file."""
    return np.rint(np.asarray(values, np.float64) * 2.0 ** bits).astype(np.int64)


def shift_round(values, bits):
    """round(values / 2**bits) for integers, halves rounded up, as the h_s layers requantize."""
    return (np.asarray(values, np.int64) + (1 << (bits - 1))) >> bits
