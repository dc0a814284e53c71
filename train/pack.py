"""Pack a photo folder into a small folder of training images: `python -m aedge.train.pack DIR -o PACK`.

For machines that the photos cannot reach whole (an accelerator lent with a size limit on what
travels to it). JPEG sources are downscaled as the tf.data pipeline does (a random factor from
0.5 to 0.75, kept as large as the crop needs), and everything is re-encoded as JPEG 4:4:4 at a
high quality, whose errors (about 45 dB) lie far below what the codec is trained to keep.
Validation files are left out, by the same rule as training; --held-out copies them, byte for
byte and under their own names, to a folder that serves as the trainer's --val there (the rule
picks by name, so a folder of exactly those files holds them all out again).
--max-mib keeps the pack under a size: photos are then taken in a seeded random order until the
next one would not fit, so what is left out is a uniform sample.
"""
import shutil
import json
import os
from pathlib import Path

import click
import numpy as np
from PIL import Image

from aedge.train.files import JPEG_SUFFIXES, find_images, split


def _prepared(path, crop, rng):
    with Image.open(path) as im:
        image = im.convert("RGB")
    w, h = image.size
    if Path(path).suffix.lower() in JPEG_SUFFIXES:
        scale = max(rng.uniform(0.5, 0.75), crop / min(w, h))
        if scale < 1.0:
            image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BOX)
    return image


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--crop", type=int, default=256, show_default=True,
              help="Images smaller than this on either side are left out.")
@click.option("--quality", type=int, default=95, show_default=True, help="JPEG quality.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-mib", type=float, default=0, help="Size limit of the pack (0: none).")
@click.option("--held-out", "held_out_dir", type=click.Path(file_okay=False),
              help="Also copy the held-out photos, unchanged, into this folder.")
def main(data_dir, out_dir, crop, quality, seed, max_mib, held_out_dir):
    """Downscale and re-encode the training photos of DATA_DIR into OUT."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_files, held_out = split(find_images(data_dir), 0.03)
    order = rng.permutation(len(train_files)) if max_mib else range(len(train_files))
    kept, total = 0, 0
    for i in order:
        image = _prepared(train_files[i], crop, rng)
        if min(image.size) < crop:
            continue
        target = out / f"{i:05d}.jpg"
        tmp = target.with_suffix(".tmp")
        image.save(tmp, "JPEG", quality=quality, subsampling=0)
        size = tmp.stat().st_size
        if max_mib and total + size > max_mib * 2**20:
            tmp.unlink()
            break
        os.replace(tmp, target)
        kept += 1
        total += size
    if held_out_dir:
        Path(held_out_dir).mkdir(parents=True, exist_ok=True)
        for path in held_out:
            shutil.copyfile(path, Path(held_out_dir) / Path(path).name)
    # What the pack was made from travels with it, into the trained models' recipes.
    about = {"source": str(data_dir), "images": kept, "of": len(train_files), "crop": crop,
             "jpeg_quality": quality, "seed": seed, "max_mib": max_mib}
    (out / "pack.json").write_text(json.dumps(about, indent=2))
    click.echo(f"{kept} of {len(train_files)} images, {total / 2**20:.1f} MiB, in {out}")


if __name__ == "__main__":
    main()
