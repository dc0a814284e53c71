"""Train every shipped quality level: `python -m aedge.train.levels --data DIR`.

First a few base models, each trained from scratch at its own lambda; then each level is
fine-tuned from one of them (the next one up in lambda where it lies between two) at the
level's lambda, on the photos themselves. Fine-tuning moves a model to a nearby lambda far
more cheaply than training it anew, the usual practice for families of learned codecs.

The bases want an accelerator: 37,975 steps of 16 crops of 256x256 each (all four took eight
minutes together on an H200; about a day each on a 2-core CPU, extrapolated). The shipped ones
were trained with jax_train.py (the same model, loss and optimiser, in JAX) on a lent GPU that
had no TensorFlow; models/bases holds them, and `--init-from models/bases` starts from there
instead of training them again. Every run resumes where it stopped if interrupted; finished
runs are skipped, and finished runs of another recipe are refused.
"""
import json
import subprocess
import sys
from pathlib import Path

import click

LATENT_CHANNELS = 192
# Each base: its lambda (the weight of the MSE on the 0..255 scale). All share one recipe.
BASES = {"base-0.0018": 0.0018, "base-0.008": 0.008, "base-0.036": 0.036, "base-0.16": 0.16}
BASE_RECIPE = ["--steps", "37975", "--steps-per-epoch", "245", "--batch", "16", "--crop", "256",
               "--lr", "4e-4", "--lr-drop-at", "0.85"]
# Each level: (lambda, the base it starts from): from about 0.15 to 1.7 bits per pixel on Kodak.
# base-0.16 (2.1 bpp) ships no level of its own: at that rate JPEG is better than the int8
# networks; it is the starting point of level 5.
LEVELS = {1: (0.0018, "base-0.0018"), 2: (0.008, "base-0.008"), 3: (0.017, "base-0.036"),
          4: (0.036, "base-0.036"), 5: (0.075, "base-0.16")}
# A level at its base's lambda is only refined on the photos themselves (the bases saw a JPEG
# pack of them); a level between two bases has to move its rate, with more and larger steps.
REFINE = ["--steps", "3000", "--lr", "5e-5", "--lr-drop-at", "0.7"]
MOVE = ["--steps", "5000", "--lr", "2e-4", "--lr-drop-at", "0.7"]


def _train(data, out, lmbda, extra):
    if (out / "final.weights.h5").exists():
        config = out / "config.json"
        done = json.loads(config.read_text()) if config.is_file() else {}
        if (done.get("lmbda"), done.get("m")) != (lmbda, LATENT_CHANNELS):
            raise click.ClickException(
                f"{out} holds a finished run of another recipe (lambda {done.get('lmbda')}, "
                f"{done.get('m')} latent channels): move it away, or choose another --runs")
        click.echo(f"{out}: done already")
        return
    command = [sys.executable, "-m", "aedge.train.train", "--data", str(data), "--out", str(out),
               "--lmbda", str(lmbda), "--latent-channels", str(LATENT_CHANNELS), *extra]
    click.echo(" ".join(command))
    subprocess.run(command, check=True)


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--level", "only", type=int, multiple=True, help="Only these levels.")
@click.option("--init-from", "init_dir", type=click.Path(exists=True, file_okay=False),
              help="Take the bases from DIR (e.g. models/bases) as DIR/<base>.weights.h5 "
                   "instead of training them.")
@click.option("--threads", type=int, default=0, help="CPU threads per run (0: all).")
def main(data, runs, only, init_dir, threads):
    """Train the base models, then fine-tune one model per quality level."""
    runs = Path(runs)
    common = ["--threads", str(threads)] if threads else []
    levels = {k: v for k, v in LEVELS.items() if not only or k in only}
    bases = {}
    for base in sorted({b for _, b in levels.values()}, key=list(BASES).index):
        if init_dir:
            bases[base] = Path(init_dir) / f"{base}.weights.h5"
            if not bases[base].is_file():
                raise click.ClickException(f"{init_dir} has no {base}.weights.h5")
        else:
            _train(data, runs / base, BASES[base], BASE_RECIPE + common)
            bases[base] = runs / base / "final.weights.h5"
    for level, (lmbda, base) in levels.items():
        recipe = REFINE if lmbda == BASES[base] else MOVE
        _train(data, runs / f"q{level}", lmbda,
               recipe + ["--init-from", str(bases[base])] + common)


if __name__ == "__main__":
    main()
