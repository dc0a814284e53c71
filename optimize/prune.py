"""Magnitude pruning with tensorflow-model-optimization.

Every convolution kernel of g_a, h_a and g_s (the one inside each sub-pixel convolution too)
is pruned to the target sparsity on a polynomial schedule while the rate-distortion loss
fine-tunes the rest; GDN's few weights are left alone. The pruned chains are copies: the
codec they came from keeps its weights.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot works on tf_keras, as train/ does

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

from aedge.optimize.equalize import InputScale  # noqa: E402
from aedge.train.model import GDN, SubpixelConv  # noqa: E402

S = tfmot.sparsity.keras
PRUNED_SHARE = 0.6  # of the fine-tune that moves the sparsity; the rest recovers at the target


class PrunableSubpixelConv(SubpixelConv, S.PrunableLayer):
    """SubpixelConv, telling tfmot which of its weights to prune."""

    def get_prunable_weights(self):
        return [self.conv.kernel]


def _input_channels(layer):
    # From the weights: a layer called on several shapes (equalization does) has no one
    # input_shape.
    if isinstance(layer, InputScale):
        return layer.channels
    if isinstance(layer, GDN):
        return layer.beta_root.shape[0]
    if isinstance(layer, keras.layers.ReLU):
        return 1
    return getattr(layer, "conv", layer).kernel.shape[-2]


def _copy(layer):
    """A new layer with the same configuration and weights."""
    cls = PrunableSubpixelConv if isinstance(layer, SubpixelConv) else type(layer)
    twin = cls.from_config(layer.get_config())
    twin(tf.zeros((1, 8, 8, _input_channels(layer))))  # SubpixelConv makes its weights on a call
    twin.set_weights(layer.get_weights())
    return twin


def schedule(sparsity, steps):
    """Polynomial from 0 to `sparsity` over the first PRUNED_SHARE of the steps; the last
    update falls exactly on end_step, so that the target is reached, not approached (with
    tfmot's default frequency of 100, a short fine-tune stopped at 0.4948 of 0.5)."""
    frequency = max(1, int(steps * PRUNED_SHARE) // 50)
    end = max(frequency, int(steps * PRUNED_SHARE) // frequency * frequency)
    return S.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                             end_step=end, frequency=frequency)


def prune_part(sequential, channels, sparsity, steps):
    """A pruning copy of one chain (functional, with PruneLowMagnitude wrappers)."""
    inputs = keras.Input((None, None, channels))
    x = inputs
    for layer in sequential.layers:
        twin = _copy(layer)
        if isinstance(twin, (keras.layers.Conv2D, SubpixelConv)):
            twin = S.prune_low_magnitude(twin, pruning_schedule=schedule(sparsity, steps))
        x = twin(x)
    return keras.Model(inputs, x, name=sequential.name)


def prune_codec(codec, sparsity, steps):
    """Puts pruning copies of g_a, h_a and g_s into the codec; returns the hooks that advance
    tfmot's pruning step, one to call before each training step."""
    from aedge.train import architecture as arch

    hooks = []
    for part, channels in (("g_a", 3), ("h_a", arch.M_LATENT), ("g_s", arch.M_LATENT)):
        model = prune_part(getattr(codec, part), channels, sparsity, steps)
        setattr(codec, part, model)
        callback = S.UpdatePruningStep()
        callback.set_model(model)
        callback.on_train_begin()
        hooks.append(lambda c=callback: c.on_train_batch_begin(batch=-1))
    return hooks


def strip(codec):
    """Applies the final masks (the last optimizer step moved pruned weights again) and removes
    the wrappers."""
    for part in ("g_a", "h_a", "g_s"):
        model = getattr(codec, part)
        for layer in model.layers:
            if hasattr(layer, "pruning_vars"):  # a PruneLowMagnitude wrapper
                for weight, mask, _ in layer.pruning_vars:
                    weight.assign(weight * mask)
        setattr(codec, part, S.strip_pruning(model))
    return codec


def kernels(codec):
    """The convolution kernels of g_a, h_a and g_s, by part."""
    out = {}
    for part in ("g_a", "h_a", "g_s"):
        for layer in getattr(codec, part).layers:
            conv = getattr(layer, "conv", layer)
            if isinstance(conv, keras.layers.Conv2D):
                out.setdefault(part, []).append(conv.kernel.numpy())
    return out


def sparsity(codec):
    """Share of zeros among the convolution weights of g_a, h_a and g_s."""
    flat = np.concatenate([k.ravel() for ks in kernels(codec).values() for k in ks])
    return float(np.mean(flat == 0))
