"""Train the variable-rate codec with Keras: `python -m aedge.train.train --data DIR --out runs/hyper`.

Every crop trains at a random one of the rate anchors (architecture.LAMBDAS). Resumes by itself
from OUT/backup after an interruption; --init-from starts from weights in jax_model.py's names
(.npz: what jax_train.py and this script write, or models/bases/*.npz for g_a and g_s alone).
One GPU, several (MirroredStrategy), or the CPU.
"""
import json
import os
import sys
import time
from pathlib import Path

import click
import numpy as np


def _strategy(tf):
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def save_npz(codec, path):
    tmp = Path(path).with_name(Path(path).stem + ".partial.npz")
    np.savez(tmp, **{k: v.numpy() for k, v in codec.named_variables().items()})
    os.replace(tmp, path)


def load_partial(codec, path):
    """Assigns every array of the file that the model has by name; returns their names."""
    variables = codec.named_variables()
    with np.load(path) as saved:
        found = [k for k in saved.files if k in variables]
        for k in found:
            if tuple(saved[k].shape) != tuple(variables[k].shape):
                raise click.ClickException(f"{path}: {k} has shape {saved[k].shape}, the model "
                                           f"{tuple(variables[k].shape)}")
            variables[k].assign(saved[k])
    if not found:
        raise click.ClickException(f"{path} holds none of the model's weights")
    return found


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of training photos (searched recursively).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoints, TensorBoard logs, final weights.")
@click.option("--distortion", type=click.Choice(["mse", "ms-ssim"]), default="mse",
              show_default=True, help="MSE on the 0..255 scale, or 1 - MS-SSIM (needs --crop "
                                      ">= 176).")
@click.option("--steps", type=int, default=20000, show_default=True, help="Total training steps.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True, help="Square crop size.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--lr-drop-at", type=float, default=0.8, show_default=True,
              help="Fraction of the steps after which the learning rate drops tenfold.")
@click.option("--steps-per-epoch", type=int, default=250, show_default=True,
              help="Steps between validation, checkpoint and log points.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False),
              help="Start from these weights (.npz, by name; any subset of the model's).")
@click.option("--warm-lambda", type=float, default=0.036, show_default=True,
              help="The lambda --init-from's transforms were trained at (sets the first gains).")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on a GPU.")
@click.option("--threads", type=int, default=0, help="CPU threads (0: all).")
@click.option("--seed", type=int, default=0, show_default=True)
def main(data_dir, out_dir, distortion, steps, batch, crop, lr, lr_drop_at, steps_per_epoch,
         init_from, warm_lambda, mixed_precision, threads, seed):
    """Train the variable-rate codec over all its rate anchors."""
    import tensorflow as tf
    import tf_keras as keras

    from aedge.train import data
    from aedge.train.files import find_images, split
    from aedge.train.model import Codec, build

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
        model = build(Codec(distortion=distortion, warm_lambda=warm_lambda), crop)
        warm = load_partial(model, init_from) if init_from else []
        drop = int(steps * lr_drop_at)
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([drop], [lr, lr / 10])
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0))

    config = {"lambdas": list(model.lambdas), "distortion": distortion, "steps": steps,
              "batch": batch, "crop": crop, "lr": lr, "init_from": init_from,
              "warm": len(warm), "data": str(data_dir), "train_images": len(train_files),
              "validation_images": len(val_files)}
    (out / "config.json").write_text(json.dumps(config, indent=2))

    epochs = max(1, steps // steps_per_epoch)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.TensorBoard(str(out / "logs"), update_freq=50),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
    ]
    # Every replica needs a crop of its own: a replica with an empty batch cannot run a conv.
    replicas = strategy.num_replicas_in_sync
    validation = data.validation_dataset(val_files, batch=replicas) if val_files else None
    started = time.time()
    model.fit(data.training_dataset(train_files, crop, batch, seed),
              validation_data=validation, epochs=epochs, steps_per_epoch=steps_per_epoch,
              callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
    save_npz(model, out / "weights.npz")
    click.echo(f"saved {out / 'weights.npz'} after {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
