"""Pack a photo folder into a small folder of training images: `python -m aedge.train.pack DIR -o PACK`.

For machines that the photos cannot reach whole (an accelerator lent with a size limit on what
travels to it). JPEG sources are downscaled as the tf.data pipeline does (a random factor from
0.5 to 0.75, kept as large as the crop needs), and everything is re-encoded as JPEG 4:4:4 at a
high quality, whose errors (about 45 dB) lie far below what the codec is trained to keep.
Validation files are left out, by the same rule as training.
"""
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
def main(data_dir, out_dir, crop, quality, seed):
    """Downscale and re-encode the training photos of DATA_DIR into OUT."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_files, _ = split(find_images(data_dir), 0.03)
    kept, total = 0, 0
    for i, path in enumerate(train_files):
        image = _prepared(path, crop, rng)
        if min(image.size) < crop:
            continue
        target = out / f"{i:05d}.jpg"
        tmp = target.with_suffix(".tmp")
        image.save(tmp, "JPEG", quality=quality, subsampling=0)
        os.replace(tmp, target)
        kept += 1
        total += target.stat().st_size
    # What the pack was made from travels with it, into the trained models' recipes.
    about = {"source": str(data_dir), "images": kept, "crop": crop, "jpeg_quality": quality,
             "seed": seed}
    (out / "pack.json").write_text(json.dumps(about, indent=2))
    click.echo(f"{kept} of {len(train_files)} images, {total / 2**20:.1f} MiB, in {out}")


if __name__ == "__main__":
    main()
