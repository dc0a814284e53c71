"""Short rate-distortion fine-tunes of the networks, for quantization-aware training, pruning
and distillation.

Only g_a, h_a and g_s learn. h_s, the density of z and the gains stay as they are: they are
what a decoder's tables come from (the model's identity, see runtime/modelfile.py), so every
model built here reads and writes the same files as the model it started from.
"""
import json
import time
from pathlib import Path

import numpy as np

PARTS = ("g_a", "h_a", "g_s")
# MS-SSIM's five scales need crops of at least 176 pixels.
MS_SSIM_CROP = 256


def training_batches(data_dir, crop, batch, seed=0):
    from aedge.train import data
    from aedge.train.files import find_images, split

    return iter(data.training_dataset(split(find_images(data_dir), 0.03)[0], crop, batch, seed))


def learning_rate(lr, steps):
    """Constant, then a tenth for the last fifth of the steps (as train.py)."""
    import tf_keras as keras

    return keras.optimizers.schedules.PiecewiseConstantDecay([int(steps * 0.8)], [lr, lr / 10])


def draw_positions(codec, count, over="anchors"):
    """Where each of `count` crops is coded: at one of the anchors (integers), or
    over="qualities": at positions drawn evenly over the span qualities 1..100 take
    (export.quality_positions), between the anchors and below them, where the bench and `-q`
    code. No lambda is defined there, so only losses without one can use them."""
    import tensorflow as tf

    if over == "qualities":
        from aedge.optimize.export import EXTRAPOLATED_ANCHORS

        return tf.random.uniform((count,), -EXTRAPOLATED_ANCHORS, len(codec.lambdas) - 1.0)
    if over != "anchors":
        raise ValueError(f"over must be 'anchors' or 'qualities', not {over!r}")
    return tf.random.uniform((count,), 0, len(codec.lambdas), tf.int32)


def _both_errors(codec, x, over="anchors"):
    """(anchor, bpp, MSE in 255ths squared, 1 - MS-SSIM) per crop, as training sees the
    codec, at positions drawn by draw_positions."""
    import tensorflow as tf

    anchor = draw_positions(codec, tf.shape(x)[0], over)
    x_hat, bits = codec((x, anchor), training=True)
    bpp = bits / tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    mse = tf.reduce_mean(tf.square(x - x_hat), axis=(1, 2, 3)) * 255.0 ** 2
    error = 1 - tf.image.ssim_multiscale(x, tf.clip_by_value(x_hat, 0.0, 1.0), 1.0)
    return anchor, bpp, mse, error


def decibels(codec, x, msssim_weight, over="anchors"):
    """(-(PSNR + msssim_weight * MS-SSIM), bpp, mse) per crop, both qualities in dB
    (MS-SSIM as -10 log10(1 - MS-SSIM), as the bench compares it). For a fine-tune of g_s
    alone, where the rate cannot change: it trades the two measures aedge is judged on at
    the weight given, where the rate-distortion loss knows only MSE. Crops of at least 176
    pixels (MS-SSIM's five scales). over: see draw_positions; no lambda is needed here, so the
    crops may sit between anchors."""
    import tensorflow as tf

    _, bpp, mse, error = _both_errors(codec, x, over)
    db = lambda e: -10 * tf.math.log(tf.maximum(e, 1e-10)) / np.log(10)
    return -(db(mse / 255.0 ** 2) + msssim_weight * db(error)), bpp, mse


def rate_distortion_msssim(codec, x, msssim_weight):
    """(loss, bpp, mse) per crop: the rate-distortion loss with MS-SSIM in its distortion, for
    a fine-tune of the encoder as well, where the rate moves. The distortion is
    (MSE + w x (MSE / (1 - MS-SSIM)) x (1 - MS-SSIM)) / (1 + w), the ratio held fixed (no
    gradient): its gradient is MSE's times that of (log MSE + w x log(1 - MS-SSIM)) / (1 + w),
    so at each anchor the rate is traded against PSNR + w x MS-SSIM, both in dB (as
    `decibels` weighs them), a dB of the mix worth what a dB of PSNR was. Without that
    1 / (1 + w) every anchor would buy more quality and more bits, and the quality scale's
    span would move (measured: w = 1 raised quality 1's rate on Kodak by a quarter). At
    w = 0, the plain loss. Crops of at least 176 pixels."""
    import tensorflow as tf

    anchor, bpp, mse, error = _both_errors(codec, x)
    error = tf.maximum(error, 1e-8)
    distortion = (mse + msssim_weight * tf.stop_gradient(mse / error) * error) / (
        1 + msssim_weight)
    return bpp + tf.gather(tf.constant(codec.lambdas), anchor) * distortion, bpp, mse


def finetune(codec, batches, steps, lr=1e-5, extra_loss=None, on_step=(), log=None,
             parts=PARTS, every=25, loss=None):
    """Minimises the codec's rate-distortion loss (or loss(codec, x), which gives the same
    (loss, bpp, mse) per crop as rd_terms; plus extra_loss(x), if given) over `parts`.

    on_step: callables run before each step (tfmot's pruning step is one); log: a path that
    gets one JSON line every `every` steps."""
    import tensorflow as tf
    import tf_keras as keras

    variables = [v for p in parts for v in getattr(codec, p).trainable_variables]
    optimizer = keras.optimizers.Adam(learning_rate(lr, steps), clipnorm=1.0)
    terms = loss or (lambda codec, x: codec.rd_terms(x, training=True))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss, bpp, mse = terms(codec, x)
            total = tf.reduce_mean(loss)
            if extra_loss is not None:
                total += extra_loss(x)
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return total, tf.reduce_mean(bpp), tf.reduce_mean(mse)

    started, sums = time.time(), np.zeros(3)
    for i in range(1, steps + 1):
        for hook in on_step:
            hook()
        sums += [float(t) for t in step(next(batches))]
        if log and (i % every == 0 or i == steps):
            n = every if i % every == 0 else i % every
            loss, bpp, mse = sums / n
            entry = {"step": i, "loss": round(loss, 5), "bpp": round(bpp, 5),
                     "psnr": round(10 * np.log10(255 ** 2 / mse), 3),
                     "seconds": round(time.time() - started, 1)}
            with Path(log).open("a") as f:
                f.write(json.dumps(entry) + "\n")
            sums[:] = 0
    return codec
