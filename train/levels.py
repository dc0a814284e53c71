"""Train every shipped quality level: `python -m aedge.train.levels --data DIR`.

One base model is trained at a middle trade-off, then each level is fine-tuned from it at its
own lambda: far cheaper than training each level from scratch, and the usual practice
for families of learned codecs. Each step resumes if interrupted; finished steps are skipped.
"""
import subprocess
import sys
from pathlib import Path

import click

# lambda per level (MSE on 0..255 scale): from about 0.15 to 1.5 bits per pixel on Kodak.
LEVELS = {1: 0.0025, 2: 0.008, 3: 0.025, 4: 0.08}
BASE_LAMBDA = 0.013


def _train(data, out, lmbda, steps, extra):
    if (out / "final.weights.h5").exists():
        click.echo(f"{out}: done already")
        return
    command = [sys.executable, "-m", "aedge.train.train", "--data", str(data), "--out", str(out),
               "--lmbda", str(lmbda), "--steps", str(steps), *extra]
    click.echo(" ".join(command))
    subprocess.run(command, check=True)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--base-steps", default=16000, show_default=True)
@click.option("--level-steps", default=4000, show_default=True)
@click.option("--level", "only", type=int, multiple=True, help="Only these levels.")
def main(data, runs, base_steps, level_steps, only):
    """Train the base model, then fine-tune one model per quality level."""
    runs = Path(runs)
    _train(data, runs / "base", BASE_LAMBDA, base_steps, ["--lr", "2e-4", "--lr-drop-at", "0.85"])
    for level, lmbda in LEVELS.items():
        if only and level not in only:
            continue
        _train(data, runs / f"q{level}", lmbda, level_steps,
               ["--init-from", str(runs / "base" / "final.weights.h5"), "--lr", "1e-4",
                "--lr-drop-at", "0.7"])


if __name__ == "__main__":
    main()
