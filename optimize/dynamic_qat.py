"""Quantization-aware training for the int8-dynamic networks, the default ones.

TFLite's dynamic-range kernels (XNNPACK's qd8) round each convolution twice: its weights to
int8, symmetric, one scale per output channel (at conversion), and its input to int8,
asymmetric, one scale per image, from that image's own range (at run time). tfmot models
neither: its quantizers learn fixed ranges for the outputs. So here every convolution of g_a,
h_a and g_s is wrapped to see its kernel and its input rounded that way, with straight-through
gradients, and the rate-distortion fine-tune (optimize/finetune.py) learns around the rounding.
Unwrapped, the same weights convert to int8-dynamic networks as before.
"""
import tensorflow as tf
import tf_keras as keras

from aedge.train.model import SubpixelConv

PARTS = ("g_a", "h_a", "g_s")


def _ste(x, rounded):
    return x + tf.stop_gradient(rounded - x)


def round_input(x):
    """int8, asymmetric, one range per image (always holding 0), as XNNPACK's qd8 rounds."""
    axes = list(range(1, len(x.shape)))
    low = tf.minimum(tf.reduce_min(x, axis=axes, keepdims=True), 0.0)
    high = tf.maximum(tf.reduce_max(x, axis=axes, keepdims=True), 0.0)
    scale = tf.maximum((high - low) / 255.0, 1e-12)
    zero = tf.round(-low / scale) - 128.0
    q = tf.clip_by_value(tf.round(x / scale) + zero, -128.0, 127.0)
    return _ste(x, (q - zero) * scale)


def round_kernel(kernel):
    """int8, symmetric, one scale per output channel, as the TFLite converter writes it."""
    peak = tf.reduce_max(tf.abs(kernel), axis=[0, 1, 2], keepdims=True)
    scale = tf.maximum(peak / 127.0, 1e-12)
    return _ste(kernel, tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale)


def convolutions(codec, parts=PARTS):
    for part in parts:
        for layer in getattr(codec, part).layers:
            layer = getattr(layer, "layer", layer)  # inside a pruning wrapper
            if isinstance(layer, SubpixelConv):
                yield layer.conv
            elif isinstance(layer, keras.layers.Conv2D):
                yield layer


def wrap(codec):
    """Makes every convolution of the parts round as int8-dynamic does; returns the undo."""
    originals = []
    for conv in convolutions(codec):
        op = conv.convolution_op
        originals.append((conv, op))
        conv.convolution_op = (lambda op: lambda x, kernel: op(round_input(x),
                                                               round_kernel(kernel)))(op)

    def unwrap():
        for conv, op in originals:
            conv.convolution_op = op
    return unwrap
