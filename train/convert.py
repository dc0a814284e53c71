"""Turn weights saved by jax_train.py into a Keras run folder: `python -m aedge.train.convert
OUT/lambda-0.05.npz -o runs/gpu-0.05`.

The folder holds final.weights.h5 and config.json as train.py writes them, so that export and
`train.py --init-from` take it like any other run.
"""
import json
import os
from pathlib import Path

import click
import numpy as np


def keras_codec(npz_path, lmbda, m):
    """A Codec with the weights of the .npz, checked one by one against the Keras variables."""
    from aedge.train.model import Codec

    with np.load(npz_path) as saved:
        arrays = [saved[k] for k in sorted(saved.files)]
    codec = Codec(lmbda, m=m)
    codec.build((None, 64, 64, 3))
    if len(arrays) != len(codec.weights):
        raise click.ClickException(f"{npz_path}: {len(arrays)} arrays, the model has "
                                   f"{len(codec.weights)} variables")
    for array, variable in zip(arrays, codec.weights):
        if tuple(array.shape) != tuple(variable.shape):
            raise click.ClickException(f"{npz_path}: shape {array.shape} where {variable.name} "
                                       f"has {tuple(variable.shape)}")
    codec.set_weights(arrays)
    return codec


def _data(pack):
    if "jpeg_quality" not in pack:
        return pack["source"]
    return f"{pack['source']} (packed as JPEG 4:4:4 at quality {pack['jpeg_quality']})"


@click.command()
@click.argument("npz", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
def main(npz, out_dir):
    """Write a Keras run folder from one model trained by jax_train.py."""
    meta = json.loads((Path(npz).parent / "train.json").read_text())
    lmbda = float(Path(npz).stem.split("-", 1)[1])
    codec = keras_codec(npz, lmbda, meta["m"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "final.partial.weights.h5"
    codec.save_weights(str(tmp))
    os.replace(tmp, out / "final.weights.h5")
    config = {"lmbda": lmbda, "distortion": "mse", "n": meta["n"], "m": meta["m"],
              "steps": meta["steps"], "batch": meta["batch"], "crop": meta["crop"],
              "lr": meta["lr"], "lr_drop_at_step": meta["lr_drop_at"], "init_from": None,
              "trained_with": f"train/jax_train.py on {meta['device']}",
              "data": _data(meta["pack"]), "train_images": meta["pack_images"]}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    click.echo(f"{out}: lambda {lmbda:g}, {meta['steps']} steps")


if __name__ == "__main__":
    main()
