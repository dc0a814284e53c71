"""Cross-layer equalization (Nagel et al. 2019, "Data-free quantization") through GDN, for the
int8 networks.

Both int8 variants round each convolution's input to 8 bits with one scale for the whole
tensor (int8-dynamic: per image, at run time; full-integer int8: fixed at conversion). The
channels of a tensor do not share a range: on training crops the widest of y's 192 channels
spans 18 times the median one, and behind g_s's first IGDN the ratio is 6. One scale per
tensor leaves the narrow channels a handful of levels.

GDN's output channel i can be scaled by any s_i > 0 through its own parameters: beta_i and
gamma's column i divided by s_i**2 (multiplied, for IGDN). The next convolution's input
channel i is divided by s_i, and the float network computes what it computed. s_i =
sqrt(w_i / r_i), with r_i channel i's range on calibration images and w_i the largest weight
reading it, makes the two equal (r_i * s_i == w_i / s_i): the activations share one range
without putting the next kernel's per-output-channel scale on a few inputs (Nagel et al.'s
balance, with the activation's range where they have the previous kernel's).

Why inside GDN and not on the convolution before it, as Nagel et al. do with ReLU: GDN's
sum of gamma * x**2 is a 1x1 convolution, int8 too in the int8-dynamic networks, and scaling
GDN's input rescales that kernel's input channels by s**2; so measured, int8-dynamic went
from +8.5% to +37% against float32 (4 Kodak images). y has no GDN before it, and its own scale
belongs to the model's gains and h_s (its tables, and so its identity): g_s starts with an
InputScale instead, a per-channel multiply in float that costs nothing beside the
convolutions.

Measured on the 24 Kodak images, BD-rate against the float32 networks, the weights as trained
and converted to int8-dynamic by TFLite: +11.3% as they are, +4.8% equalized (+3.8% after
quantization-aware training from there, optimize/dynamic_qat.py). g_s's ranges are taken on
what it reads (export.decoder_inputs); taken on y rounded alone, as aedge 0.8's networks
were, the wider model's weights converted to int8-dynamic measured +6.6% against float32 on
held-out crops, where they measure +5.6%.
"""
import numpy as np
import tf_keras as keras

from aedge.optimize.export import decoder_inputs
from aedge.train import architecture as arch
from aedge.train.model import GDN, SubpixelConv

# Ranges below this fraction of a tensor's widest channel count as that fraction: a channel
# that is always zero (y has some) would otherwise get an unbounded scale.
RANGE_FLOOR = 1e-3


class InputScale(keras.layers.Layer):
    """x * scale, one factor per channel, in float (not trained)."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        # Made here, not in build(): Keras may build a layer again inside a graph (seen once,
        # in Sequential.build), and a new weight there would undo the scale.
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones",
                                     trainable=False)

    def call(self, x):
        return x * self.scale

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _layers(chain):
    """A chain's layers in order, whether a Sequential or a functional copy (pruning makes
    those)."""
    return [layer for layer in chain.layers if not isinstance(layer, keras.layers.InputLayer)]


def is_equalized(codec):
    return isinstance(_layers(codec.g_s)[0], InputScale)


def _conv(layer):
    return layer.conv if isinstance(layer, SubpixelConv) else layer


def _floor(r):
    return np.maximum(r, RANGE_FLOOR * r.max())


def _peaks(x):
    """Each channel's largest |value|."""
    return np.abs(np.asarray(x)).reshape(-1, x.shape[-1]).max(0)


def channel_ranges(layers, inputs):
    """Per layer of a chain, the mean over `inputs` of each output channel's largest |value|."""
    sums = None
    for x in inputs:
        peaks = []
        for layer in layers:
            x = layer(x)
            peaks.append(_peaks(x))
        sums = peaks if sums is None else [s + p for s, p in zip(sums, peaks)]
    return [s / len(inputs) for s in sums]


def balancing_scales(activation_range, kernel):
    """s with activation_range * s == (kernel's range per input channel) / s, geometric mean 1."""
    weight_range = _floor(np.abs(kernel).max(axis=(0, 1, 3)))
    s = np.sqrt(weight_range / _floor(activation_range))
    return (s / np.exp(np.mean(np.log(s)))).astype(np.float32)


def _scale_gdn_output(gdn, s):
    """GDN's output channel i times s_i: its beta_i and gamma's column i divided by s_i**2
    (multiplied, for IGDN). GDN's own input is left as it is."""
    f = s if gdn.inverse else 1 / s
    gdn.gamma_root.assign(gdn.gamma_root.numpy() * f)
    beta = f ** 2 * (gdn.beta_root.numpy() ** 2 + arch.GDN_BETA_FLOOR) - arch.GDN_BETA_FLOOR
    gdn.beta_root.assign(np.sqrt(np.maximum(beta, 0.0)))


def _scale_input(layer, s):
    conv = _conv(layer)
    conv.kernel.assign(conv.kernel.numpy() / s[None, None, :, None])


def equalize_chain(chain, inputs):
    """Equalizes every convolution -> GDN -> convolution of a chain on `inputs`, in place."""
    layers = _layers(chain)
    ranges = channel_ranges(layers, inputs)
    for i, layer in enumerate(layers):
        if isinstance(layer, GDN):
            s = balancing_scales(ranges[i], _conv(layers[i + 1]).kernel.numpy())
            _scale_gdn_output(layer, s)
            _scale_input(layers[i + 1], s)


def _scale_gdn_input(gdn, t):
    """GDN computing on t * x (t_k for input channel k) what it computed on x. IGDN,
    x_i * sqrt(beta_i + sum_k gamma_ki x_k**2): beta_i over t_i**2, gamma_ki over (t_k t_i)**2;
    GDN, x_i / sqrt(...): beta_i times t_i**2, gamma_ki times (t_i / t_k)**2. The caller picks t
    so that beta only grows: beta has a floor (architecture.GDN_BETA_FLOOR) that a shrunken
    beta could fall under."""
    i, k = t[None, :], t[:, None]  # gamma_root[0, 0, k, i]
    beta = gdn.beta_root.numpy() ** 2 + arch.GDN_BETA_FLOOR
    if gdn.inverse:
        factor, root = 1 / t ** 2, 1 / (k * i)
    else:
        factor, root = t ** 2, i / k
    if np.any(factor < 1 - 1e-6):
        raise ValueError("GDN's input scaled so that its beta would shrink")
    gdn.gamma_root.assign(gdn.gamma_root.numpy() * root[None, None].astype(np.float32))
    gdn.beta_root.assign(np.sqrt(np.maximum(factor * beta - arch.GDN_BETA_FLOOR, 0.0))
                         .astype(np.float32))


def equalize_outputs(chain, inputs):
    """For the full-integer int8 networks only: every convolution -> GDN of a chain scaled so
    that the convolution's output channels share one range, in place, on `inputs`; the float
    network computes what it did.

    An int8 convolution writes its output with one scale for all channels, and GDN reads it in
    float. Those channels do not share a range: behind g_s's second convolution the median
    GDN channel spans 0.16 of the widest, and so got about 40 of the 256 levels. The
    convolution's output channel i (each of its four sub-pixel channels) is scaled by t_i and
    GDN's beta and gamma take the inverse (_scale_gdn_input), which costs nothing in the int8
    networks, where GDN runs in float. Not in the int8-dynamic ones: there GDN's sum of
    gamma * x**2 is an int8 convolution too, and scaling x rescales its input channels by t**2
    (the module's docstring: +37%)."""
    layers = _layers(chain)
    ranges = channel_ranges(layers, inputs)
    for i, (layer, gdn) in enumerate(zip(layers, layers[1:])):
        if not isinstance(gdn, GDN) or isinstance(layer, (GDN, InputScale)):
            continue
        r = _floor(ranges[i])
        t = (r.min() / r if gdn.inverse else r.max() / r).astype(np.float32)
        conv = _conv(layer)
        per_output = np.tile(t, conv.kernel.shape[-1] // len(t))  # depth_to_space's order
        conv.kernel.assign(conv.kernel.numpy() * per_output)
        conv.bias.assign(conv.bias.numpy() * per_output)
        _scale_gdn_input(gdn, t)


def equalize(codec, images):
    """Equalizes g_a and g_s of a float codec in place, on `images` (0..1 floats, batches of
    one) and the latents they lead to at every anchor; returns the codec. A codec already
    equalized is returned as it is: fine-tunes that learned around the int8 rounding keep the
    scales they learned with."""
    if is_equalized(codec):
        return codec
    decoded = decoder_inputs(codec, [codec.g_a(x).numpy() for x in images])
    equalize_chain(codec.g_a, images)
    equalize_chain(codec.g_s, decoded)

    first = _layers(codec.g_s)[0]
    y_range = np.mean([_peaks(d) for d in decoded], 0)
    s = balancing_scales(y_range, _conv(first).kernel.numpy())
    _scale_input(first, s)
    scale = InputScale(len(s), name="input_scale")
    scale.scale.assign(s)
    codec.g_s = keras.Sequential([scale, *_layers(codec.g_s)], name="g_s")
    codec.g_s.build((None, None, None, len(s)))
    return codec
