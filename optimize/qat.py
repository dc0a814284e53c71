"""Quantization-aware training with tensorflow-model-optimization.

g_a, h_a and g_s are nested models of the codec: each is quantized on its own (annotated layer
by layer, then quantize_apply) and put back, so that the rate-distortion loss trains them
through tfmot's fake quantization. They are then converted to full-integer int8 networks from
the ranges training learned, with no calibration set.

The integer graph is the one post-training calibration builds (optimize/export.py): the
convolutions int8 with one scale per output channel, GDN computed in float between them, and
in float too the convolutions that produce a latent or read one, and the one that makes the
pixels, whose values one int8 scale per tensor cannot hold.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot works on tf_keras, as train/ does

import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

from aedge.optimize.equalize import InputScale, equalize_outputs  # noqa: E402
from aedge.train.model import GDN, SubpixelConv  # noqa: E402

Q = tfmot.quantization.keras

# Chain layers (positions in architecture.py's lists) kept in float, as export.py keeps them.
FLOAT_LAYERS = {"g_a": (3,), "h_a": (0, 2), "g_s": (0, 3)}


def _activation_quantizer():
    return Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                               narrow_range=False)


def _kernel_quantizer():
    # What the TFLite converter writes for a convolution: symmetric, per output channel.
    return Q.quantizers.LastValueQuantizer(num_bits=8, per_axis=True, symmetric=True,
                                           narrow_range=True)


class GDNQuantizeConfig(Q.QuantizeConfig):
    """GDN runs in float (XNNPACK has no int8 square root); its output feeds an int8
    convolution, so that is quantized."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_activation_quantizer()]

    def get_config(self):
        return {}


class SubpixelQuantizeConfig(GDNQuantizeConfig):
    """The convolution inside SubpixelConv, quantized as Conv2D is; depth_to_space only moves
    values, so the output's range is the convolution's."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.conv.kernel, _kernel_quantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.conv.kernel = quantize_weights[0]


def scope():
    return Q.quantize_scope({"GDN": GDN, "SubpixelConv": SubpixelConv, "InputScale": InputScale,
                             "GDNQuantizeConfig": GDNQuantizeConfig,
                             "SubpixelQuantizeConfig": SubpixelQuantizeConfig})


def quantize_part(sequential, channels, float_layers):
    """A quantization-aware functional copy of one chain, starting from its weights."""
    inputs = keras.Input((None, None, channels))
    x, position = inputs, -1
    for layer in sequential.layers:
        if isinstance(layer, InputScale):  # equalization's multiply, in float
            x = layer(x)
            continue
        if not isinstance(layer, (GDN, keras.layers.ReLU)):
            position += 1
        if position in float_layers and not isinstance(layer, (GDN, keras.layers.ReLU)):
            x = layer(x)
        elif isinstance(layer, GDN) and position + 1 in float_layers:
            # Read by a float convolution: rounding its output to int8 would only lose
            # (export.without_round_trips), so training does not round it either.
            x = layer(x)
        elif isinstance(layer, GDN):
            x = Q.quantize_annotate_layer(layer, GDNQuantizeConfig())(x)
        elif isinstance(layer, SubpixelConv):
            x = Q.quantize_annotate_layer(layer, SubpixelQuantizeConfig())(x)
        else:
            x = Q.quantize_annotate_layer(layer)(x)
    with scope():
        return Q.quantize_apply(keras.Model(inputs, x, name=sequential.name))


def set_ranges(quantized, sequential, inputs):
    """Starts every activation range where the float chain's values lie on `inputs` (the mean
    of each input's minimum and maximum, what the moving average tends to). tfmot starts them
    at -6..6 and moves them by 0.1% a step: a short fine-tune would end with ranges several
    times too wide. The input's range is set too, where the chain quantizes its input."""
    import numpy as np

    values = [np.asarray(x) for x in inputs]
    lows, highs = [np.mean([v.min() for v in values])], [np.mean([v.max() for v in values])]
    for layer in sequential.layers:
        values = [layer(v).numpy() for v in values]
        lows.append(np.mean([v.min() for v in values]))
        highs.append(np.mean([v.max() for v in values]))
    position = 0
    for layer in quantized.layers[1:]:
        if type(layer).__name__ != "QuantizeLayer":
            position += 1
        for v in layer.weights:
            name = v.name.split("/")[-1]
            if name.endswith(("output_min:0", "quantize_layer_min:0")):
                v.assign(min(lows[position], 0.0))
            elif name.endswith(("output_max:0", "quantize_layer_max:0")):
                v.assign(max(highs[position], 0.0))


def quantize_codec(codec, images):
    """Puts quantization-aware g_a, h_a and g_s into the codec, their ranges set on `images`
    (and on the latents they lead to); returns the codec. The convolutions before GDN first
    get outputs that share one range (equalize.equalize_outputs), which int8 needs and
    int8-dynamic does not."""
    from aedge.optimize.export import decoder_inputs
    from aedge.train import architecture as arch

    latents = [codec.g_a(x).numpy() for x in images]
    decoded = decoder_inputs(codec, latents)
    equalize_outputs(codec.g_a, images)
    equalize_outputs(codec.g_s, decoded)
    parts = {"g_a": (3, images), "h_a": (arch.M_LATENT, latents),
             "g_s": (arch.M_LATENT, decoded)}
    for part, (channels, inputs) in parts.items():
        float_part = getattr(codec, part)
        quantized = quantize_part(float_part, channels, FLOAT_LAYERS[part])
        set_ranges(quantized, float_part, inputs)
        setattr(codec, part, quantized)
    return codec


def to_int8(part_model, channels):
    """The full-integer flatbuffer of a quantization-aware part, from its learned ranges."""
    from aedge.optimize.export import to_tflite

    with scope():
        return to_tflite(part_model, channels, dynamic=True)
