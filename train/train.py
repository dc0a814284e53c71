"""Train one quality level: `python -m aedge.train.train --data DIR --lmbda 0.0067 --out runs/q2`.

Resumes by itself from runs/q2/backup after an interruption; --init-from starts from another
level's weights (the usual way to get several rate points without training each from scratch).
"""
import json
import os
import sys
import time
from pathlib import Path

import click


def _strategy(tf):
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of training photos (searched recursively).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, TensorBoard logs, final weights.")
@click.option("--lmbda", type=float, required=True,
              help="Rate-distortion trade-off: the weight of the distortion.")
@click.option("--distortion", type=click.Choice(["mse", "ms-ssim"]), default="mse",
              show_default=True, help="MSE on the 0..255 scale, or 1 - MS-SSIM (needs --crop "
                                      ">= 176).")
@click.option("--steps", type=int, default=20000, show_default=True, help="Total training steps.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True, help="Square crop size.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--lr-drop-at", type=float, default=0.8, show_default=True,
              help="Fraction of the steps after which the learning rate drops tenfold.")
@click.option("--steps-per-epoch", type=int, default=250, show_default=True,
              help="Steps between validation, checkpoint and log points.")
@click.option("--latent-channels", type=int, default=0,
              help="Channels of the latent (0: the model's default, 192). More of them raise "
                   "the quality the transforms can reach at high rates.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False),
              help="Start from these weights (.weights.h5) instead of random ones.")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on a GPU.")
@click.option("--threads", type=int, default=0, help="CPU threads (0: all).")
@click.option("--seed", type=int, default=0, show_default=True)
def main(data_dir, out_dir, lmbda, distortion, steps, batch, crop, lr, lr_drop_at,
         steps_per_epoch, latent_channels, init_from, mixed_precision, threads, seed):
    """Train the codec at one rate-distortion trade-off."""
    import tensorflow as tf
    import tf_keras as keras

    from aedge.train import data
    from aedge.train.files import find_images, split
    from aedge.train.model import M_LATENT, Codec

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(seed)
    if distortion == "ms-ssim" and crop < 176:
        raise click.ClickException("MS-SSIM over 5 scales needs --crop 176 or more")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        files = find_images(data_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    train_files, val_files = split(files, 0.03)
    click.echo(f"{len(train_files)} training and {len(val_files)} validation images; "
               f"{len(tf.config.list_physical_devices('GPU'))} GPU(s)")

    strategy = _strategy(tf)
    with strategy.scope():
        model = Codec(lmbda, m=latent_channels or M_LATENT, distortion=distortion)
        model.build((None, crop, crop, 3))
        if init_from:
            model.load_weights(init_from)
        drop = int(steps * lr_drop_at)
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([drop], [lr, lr / 10])
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))

    config = {"lmbda": lmbda, "distortion": distortion, "n": model.n, "m": model.m,
              "steps": steps, "batch": batch, "crop": crop, "lr": lr, "init_from": init_from,
              "data": str(data_dir), "train_images": len(train_files), "validation_images": len(val_files)}
    (out / "config.json").write_text(json.dumps(config, indent=2))

    epochs = max(1, steps // steps_per_epoch)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.TensorBoard(str(out / "logs"), update_freq=50),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    started = time.time()
    model.fit(data.training_dataset(train_files, crop, batch, seed),
              validation_data=data.validation_dataset(val_files) if val_files else None,
              epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
              verbose=1 if sys.stdout.isatty() else 2)
    final = out / "final.weights.h5"
    tmp = out / "final.partial.weights.h5"
    model.save_weights(str(tmp))
    os.replace(tmp, final)
    click.echo(f"saved {final} after {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
