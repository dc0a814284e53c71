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


def training_batches(data_dir, crop, batch, seed=0):
    from aedge.train import data
    from aedge.train.files import find_images, split

    return iter(data.training_dataset(split(find_images(data_dir), 0.03)[0], crop, batch, seed))


def learning_rate(lr, steps):
    """Constant, then a tenth for the last fifth of the steps (as train.py)."""
    import tf_keras as keras

    return keras.optimizers.schedules.PiecewiseConstantDecay([int(steps * 0.8)], [lr, lr / 10])


def finetune(codec, batches, steps, lr=1e-5, extra_loss=None, on_step=(), log=None,
             parts=PARTS, every=25):
    """Minimises the codec's rate-distortion loss (plus extra_loss(x), if given) over `parts`.

    on_step: callables run before each step (tfmot's pruning step is one); log: a path that
    gets one JSON line every `every` steps."""
    import tensorflow as tf
    import tf_keras as keras

    variables = [v for p in parts for v in getattr(codec, p).trainable_variables]
    optimizer = keras.optimizers.Adam(learning_rate(lr, steps), clipnorm=1.0)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss, bpp, mse = codec.rd_terms(x, training=True)
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
