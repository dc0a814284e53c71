"""The mean-scale hyperprior codec, described once: the Keras model, the JAX trainer and the
runtime's integer h_s are all built from these tables.

    x --g_a--> y --*gain[q]--> round(. - mean) ------------------------> y_hat --/gain[q]--> g_s
               y --h_a--> z --*hgain[q]--> round --> z_hat --h_s (integer)--> mean, scale index

g_a, g_s: as in Ballé et al. 2018 (four stride-2 stages, GDN), sub-pixel convolutions upward.
h_a, h_s: Minnen et al. 2018's hyper-analysis and mean-scale hyper-synthesis, slimmed so that h_s
costs a few milliseconds per Kodak image in numpy.
Variable rate: one gain vector per anchor lambda for y and one for z (Cui et al. 2021); a quality
between two anchors interpolates their gains geometrically.

Each layer is (kind, kernel, out_channels) with kind one of
  conv:  kernel x kernel convolution, stride 2, "same" padding  (downsampling by 2)
  conv1: kernel x kernel convolution, stride 1, "same" padding
  up:    kernel x kernel convolution to 4x the channels, then depth_to_space (upsampling by 2)
followed by an optional nonlinearity: gdn, igdn, relu or None.
This file imports nothing but the standard library: the JAX trainer runs it alone.
"""
# Channels of g_a's and g_s's three inner stages, from the highest resolution down. Wider where
# the pixels are fewer: the shipped model grew from 64 at every stage (aedge 0.7) on an
# accelerator (jax_train.py --filters), for 1.7 times the arithmetic.
N_FILTERS = (64, 96, 128)
# The distilled "fast" model (make quantize): the same chains, narrower, per stage from the
# highest resolution down. Its time goes where the pixels are, so the student narrows the
# highest-resolution stages most. A third of the teacher's multiply-accumulates in g_a + g_s
# (see macs_per_pixel), not half: h_s and entropy coding (about 40 ms of a Kodak image here)
# do not shrink with it. Timed here with int8-dynamic networks on a whole Kodak image,
# g_a + g_s took 72 ms at the teacher's widths, 32 at (32, 48, 96) (37% of its arithmetic:
# about 1.6x in all, too close), 23.5 at these (33%: 3.1x; 1.71x in all, measured by
# make variants), 13 at (16, 32, 64), aedge 0.7's student (17%).
STUDENT_FILTERS = (24, 48, 96)
M_LATENT = 192  # channels of y
GDN_BETA_FLOOR = 1e-6  # added to GDN's beta (both trainers; equalization keeps it)
N_HYPER = 64  # h_a and h_s
Z_LATENT = 96  # channels of z
STRIDE = 16  # of y against the image; z is at STRIDE * 4



def widths(filters):
    """Channels of the three inner stages, from the highest resolution down: one number for
    all three, or one per stage."""
    if isinstance(filters, int):
        return (filters,) * 3
    if len(filters) != 3:
        raise ValueError(f"filters: one number or three, not {filters!r}")
    return tuple(int(f) for f in filters)


def widths_in(shapes):
    """The widths of trained weights, {name: shape} as both trainers name them: the output
    channels of g_a's first three kernels."""
    return tuple(int(shapes[f"g_a.{i}.kernel"][-1]) for i in range(3))


def g_a(filters=N_FILTERS):
    w = widths(filters)
    return [("conv", 4, w[0], "gdn"), ("conv", 4, w[1], "gdn"),
            ("conv", 4, w[2], "gdn"), ("conv", 4, M_LATENT, None)]


def g_s(filters=N_FILTERS):
    w = widths(filters)
    return [("up", 3, w[2], "igdn"), ("up", 3, w[1], "igdn"),
            ("up", 3, w[0], "igdn"), ("up", 3, 3, None)]


G_A, G_S = g_a(), g_s()
H_A = [("conv1", 3, N_HYPER, "relu"), ("conv", 4, N_HYPER, "relu"), ("conv", 4, Z_LATENT, None)]
# The last layer gives, per channel of y, its mean and the log2 of its scale (first all means,
# then all log-scales). It is 1x1 because a 3x3 layer at y's resolution would cost five times
# as much as the rest of h_s put together.
H_S = [("conv1", 3, N_HYPER, "relu"), ("up", 3, N_HYPER, "relu"), ("up", 3, N_HYPER, "relu"),
       ("conv1", 1, 2 * M_LATENT, None)]

# The factorized density of z (Ballé et al. 2018, appendix 6.1).
EB_FILTERS, EB_INIT_SCALE = (3, 3, 3), 10.0

# Rate anchors: the lambdas (weight of the MSE on the 0..255 scale) the gains are trained at.
# From about 0.1 bpp on Kodak to past JPEG's quality 95 PSNR.
LAMBDAS = (0.0015, 0.003, 0.006, 0.012, 0.024, 0.048, 0.096, 0.19)

# The integer h_s (runtime/hyper.py computes it, training imitates it exactly):
# activations are integers a standing for a / 2**ACT_FRAC_BITS, clipped to +-ACT_LIMIT, weights
# integers of at most WEIGHT_LIMIT in magnitude with one power-of-two scale per output channel.
# Products stay below 2**32 and sums of up to 2**20 of them below 2**53, exact in float64.
ACT_FRAC_BITS = 8
ACT_LIMIT = (1 << 16) - 1
WEIGHT_LIMIT = (1 << 15) - 1
MAX_WEIGHT_SHIFT = 40
# Gains go to the runtime as integers too: gain * 2**GAIN_FRAC_BITS and log2(gain) in
# ACT_FRAC_BITS fixed point, so that the scale index of every symbol is integer arithmetic.
GAIN_FRAC_BITS = 16

# The Gaussian conditional's scale tables: scale k is 2**(LOG2_SCALE_MIN + k / SCALES_PER_OCTAVE).
# Symbols whose scale index is below SKIP are not coded at all: their value is the mean (q = 0).
# Below scale 0.158 (index 3.5) a value is non-zero less than once in 300; at low rates most of
# y lies there. Training skips them too.
N_SCALES = 64
SKIP = 4
SCALES_PER_OCTAVE = 6
LOG2_SCALE_MIN = -3.25  # 0.105, about CompressAI's lower bound of 0.11


def scale_of(index):
    return 2.0 ** (LOG2_SCALE_MIN + index / SCALES_PER_OCTAVE)


SCALE_MIN, SCALE_MAX = scale_of(0), scale_of(N_SCALES - 1)


def stages(layers):
    """Resolution factor of a chain: >1 downsamples, <1 upsamples."""
    f = 1.0
    for kind, *_ in layers:
        f *= {"conv": 2, "conv1": 1, "up": 0.5}[kind]
    return f


def in_channels(layers, first):
    """Input channels of each layer, given the chain's input channels."""
    chans = [first]
    for _, _, out, _ in layers[:-1]:
        chans.append(out)
    return chans


def macs_per_pixel(layers, first, at=1.0):
    """Multiply-accumulates per image pixel; `at` is the input's resolution as a fraction of the
    image's side (1 for g_a, 1/16 for h_a and g_s...)."""
    total, res = 0.0, at
    for (kind, k, out, _), cin in zip(layers, in_channels(layers, first)):
        if kind == "conv":
            res /= 2
            total += res * res * k * k * cin * out
        elif kind == "conv1":
            total += res * res * k * k * cin * out
        else:
            total += res * res * k * k * cin * out * 4
            res *= 2
    return total
