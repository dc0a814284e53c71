"""The seed paper's experiment ("Image Compression Research Based On Convolutional
Autoencoder", 2025): plain convolutional autoencoders with 3, 5, 7 or 10 layers, trained with
a hybrid loss = a * perceptual (VGG16) + b * (1 - SSIM) + c * MSE on 128x128 images.

    python -m aedge.train.paper --arch paper-5 --data PHOTOS -o runs/paper-5

The paper gives no channel counts or strides. Ours: every layer is a 3x3 convolution with
ReLU; three of an encoder's layers (spread evenly: the last of each third) have stride 2, so
every model maps 128x128x3 to a 16x16x12 latent (3,072 values against the image's 49,152);
the layers widen 32 -> 48 -> 64 down the encoder; the decoder mirrors it with transposed
convolutions and ends in a sigmoid. Deeper models differ in depth only, as in the paper.
Hyper-parameters are the paper's: Adam (1e-3, 0.9, 0.999, 1e-7), batch 64, 40 epochs,
EarlyStopping(patience=3) on the validation loss.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ARCHS = {"paper-3": 3, "paper-5": 5, "paper-7": 7, "paper-10": 10}
SIZE = 128
LATENT_CHANNELS = 12
WIDTHS = (32, 48, 64)
# Perceptual, SSIM, MSE. The paper gives none; these are ours, and options. Without VGG16
# weights on the machine the perceptual weight must be 0, and the others are renormalised.
LOSS_WEIGHTS = (0.2, 0.4, 0.4)
VGG_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG_LAYER = "block3_conv3"


class PaperError(Exception):
    """A bad option or a missing file: one line for the user."""


def layout(layers):
    """[(filters, stride)] of an encoder of this many layers."""
    strided = {round(k * layers / 3) - 1 for k in (1, 2, 3)}
    out = []
    for i in range(layers):
        third = min(3 * i // layers, 2)
        filters = LATENT_CHANNELS if i == layers - 1 else WIDTHS[third]
        out.append((filters, 2 if i in strided else 1))
    return out


def build(arch):
    """(autoencoder, encoder, decoder) Keras models for paper-3/5/7/10."""
    import tensorflow as tf
    if arch not in ARCHS:
        raise PaperError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    spec = layout(ARCHS[arch])
    image = tf.keras.Input((SIZE, SIZE, 3))
    x = image
    for i, (filters, stride) in enumerate(spec):
        last = i == len(spec) - 1
        x = tf.keras.layers.Conv2D(filters, 3, stride, "same", activation=None if last else "relu",
                                   name=f"enc{i}")(x)
    encoder = tf.keras.Model(image, x, name="encoder")
    latent = tf.keras.Input(x.shape[1:])
    y = latent
    widths = [f for f, _ in spec[:-1]][::-1] + [3]
    strides = [s for _, s in spec][::-1]
    for i, (filters, stride) in enumerate(zip(widths, strides)):
        last = i == len(widths) - 1
        y = tf.keras.layers.Conv2DTranspose(filters, 3, stride, "same",
                                            activation="sigmoid" if last else "relu",
                                            name=f"dec{i}")(y)
    decoder = tf.keras.Model(latent, y, name="decoder")
    autoencoder = tf.keras.Model(image, decoder(encoder(image)), name=arch)
    return autoencoder, encoder, decoder


def loss_weights(text):
    """'a,b,c' -> (a, b, c), checked to be three non-negative numbers summing to 1."""
    try:
        weights = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise PaperError(f"loss weights must be three numbers a,b,c, not {text!r}") from None
    if len(weights) != 3 or min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
        raise PaperError(f"loss weights a,b,c (perceptual, SSIM, MSE) must be three "
                         f"non-negative numbers summing to 1, not {text!r}")
    return weights


def vgg_weights_path(given):
    """The local VGG16 ImageNet weights: the given file, else the Keras cache; None if none."""
    candidates = [Path(given)] if given else [
        Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / VGG_FILE]
    for path in candidates:
        if path.is_file():
            return path
    if given:
        raise PaperError(f"no such VGG16 weights file: {given}")
    return None


def hybrid_loss(weights, vgg_path=None):
    """a * perceptual + b * (1 - SSIM) + c * MSE, on images in [0, 1]."""
    import tensorflow as tf
    a, b, c = weights
    features = None
    if a > 0:
        if vgg_path is None:
            raise PaperError("the perceptual term needs VGG16's ImageNet weights, which are "
                             "never downloaded here: pass --vgg-weights PATH (Keras' "
                             f"{VGG_FILE}), or give the perceptual weight 0")
        vgg = tf.keras.applications.VGG16(include_top=False, weights=str(vgg_path),
                                          input_shape=(SIZE, SIZE, 3))
        vgg.trainable = False
        features = tf.keras.Model(vgg.input, vgg.get_layer(VGG_LAYER).output)

    def loss(x, x_hat):
        total = 0.0
        if a > 0:
            prep = tf.keras.applications.vgg16.preprocess_input
            total += a * tf.reduce_mean(tf.square(features(prep(x * 255.0)) -
                                                  features(prep(x_hat * 255.0))))
        if b > 0:
            total += b * (1.0 - tf.reduce_mean(tf.image.ssim(x, x_hat, max_val=1.0)))
        if c > 0:
            total += c * tf.reduce_mean(tf.square(x - x_hat))
        return total
    return loss


def crops(files, count_per_file=1, seed=0, centre=False):
    """128x128 crops as float32 arrays in [0, 1]: random (training) or central (evaluation),
    from images downscaled so their short side is at most 2x the crop."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = []
    for path in files:
        with Image.open(path) as image:
            image = image.convert("RGB")
            short = min(image.size)
            if short < SIZE:
                continue
            if short > 2 * SIZE:
                factor = 2 * SIZE / short
                image = image.resize((round(image.width * factor), round(image.height * factor)),
                                     Image.LANCZOS)
            array = np.asarray(image)
        h, w = array.shape[:2]
        for _ in range(1 if centre else count_per_file):
            top, left = ((h - SIZE) // 2, (w - SIZE) // 2) if centre else (
                int(rng.integers(0, h - SIZE + 1)), int(rng.integers(0, w - SIZE + 1)))
            out.append(array[top:top + SIZE, left:left + SIZE])
    return np.stack(out).astype(np.float32) / 255.0


def train(arch, data, out, weights=None, vgg=None, epochs=40, batch=64, patience=3,
          max_images=None, minutes=None, seed=0):
    """weights None: the defaults, the perceptual one dropped (and said so) where no VGG16
    weights exist; weights given: exactly those, a perceptual one needing the VGG16 file."""
    import tensorflow as tf
    from aedge.train.files import find_images, split
    vgg_path = vgg_weights_path(vgg)
    note = None
    if weights is None:
        weights = LOSS_WEIGHTS
        if vgg_path is None:
            rest = weights[1] + weights[2]
            weights = (0.0, weights[1] / rest, weights[2] / rest)
        note = (f"no VGG16 weights ({VGG_FILE}) on this machine: perceptual weight 0, "
                f"SSIM and MSE weights renormalised to {weights[1]:.3g} and {weights[2]:.3g}")
        print(note)
    tf.keras.utils.set_random_seed(seed)
    train_files, val_files = split(find_images(data), 0.1)
    train_files = train_files[:max_images] if max_images else train_files
    val_files = val_files[:max(1, max_images // 10)] if max_images else val_files
    x_train, x_val = crops(train_files, seed=seed), crops(val_files, centre=True)
    autoencoder, encoder, decoder = build(arch)
    autoencoder.compile(optimizer=tf.keras.optimizers.Adam(1e-3, 0.9, 0.999, 1e-7),
                        loss=hybrid_loss(weights, vgg_path))
    callbacks = [tf.keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)]
    if minutes:
        callbacks.append(_TimeLimit(minutes * 60))
    start = time.time()
    history = autoencoder.fit(x_train, x_train, batch_size=batch, epochs=epochs,
                              validation_data=(x_val, x_val), callbacks=callbacks, verbose=2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    autoencoder.save_weights(out / "model.weights.h5")
    record = {"arch": arch, "layout": layout(ARCHS[arch]), "loss_weights": weights,
              "vgg16": str(vgg_path) if vgg_path else None, "note": note,
              "train_crops": len(x_train), "val_crops": len(x_val), "batch": batch,
              "epochs_asked": epochs, "epochs_run": len(history.history["loss"]),
              "patience": patience, "minutes": minutes,
              "stopped_early": len(history.history["loss"]) < epochs,
              "best_val_loss": float(min(history.history["val_loss"])),
              "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
              "seconds": time.time() - start, "parameters": autoencoder.count_params()}
    (out / "train.json").write_text(json.dumps(record, indent=1))
    return record


def load(arch, folder):
    autoencoder, encoder, decoder = build(arch)
    autoencoder.load_weights(Path(folder) / "model.weights.h5")
    return encoder, decoder


class _TimeLimit:
    """Stops training after the epoch that passes a wall-clock budget (recorded as an early
    stop in train.json)."""

    def __new__(cls, seconds):
        import tensorflow as tf

        class TimeLimit(tf.keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.time()

            def on_epoch_end(self, epoch, logs=None):
                if time.time() - self.start > seconds:
                    self.model.stop_training = True
        return TimeLimit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="paper-3", choices=sorted(ARCHS))
    parser.add_argument("--data", required=True, help="a folder of photos")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--loss-weights",
                        help="a,b,c: perceptual, SSIM and MSE weights, summing to 1 (default "
                             f"{','.join(map(str, LOSS_WEIGHTS))}, the perceptual one at 0 "
                             "where no VGG16 weights exist)")
    parser.add_argument("--vgg-weights", help=f"VGG16 ImageNet weights ({VGG_FILE})")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--max-images", type=int, help="only this many training photos")
    parser.add_argument("--minutes", type=float, help="stop after the epoch past this budget")
    args = parser.parse_args(argv)
    try:
        weights = loss_weights(args.loss_weights) if args.loss_weights else None
        record = train(args.arch, args.data, args.out, weights,
                       args.vgg_weights, args.epochs, args.batch, args.patience,
                       args.max_images, args.minutes)
    except (PaperError, FileNotFoundError) as e:
        raise SystemExit(f"paper: {e}") from None
    print(f"{args.arch}: {record['epochs_run']} epochs, best validation loss "
          f"{record['best_val_loss']:.4f}, {record['seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
