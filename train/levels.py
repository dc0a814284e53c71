"""Train every shipped quality level: `python -m aedge.train.levels --data DIR`.

Two base models are trained, one for the low rates and one for the high rates; then each level
is fine-tuned from the nearer base at its own lambda: far cheaper than training each level
from scratch, and the usual practice for families of learned codecs. A base is trained in
stages, each starting from the weights of the one before; that is how the shipped models were
made across several sessions, and `--init-from` lets a stage start from weights trained
elsewhere (models/bases/). Every run resumes where it stopped if interrupted; finished runs
are skipped.
"""
import subprocess
import sys
from pathlib import Path

import click

# Stages of each base: (run name, lambda, steps, when the learning rate drops from 4e-4 to
# 4e-5, as a fraction of the steps). Lambda weighs the MSE on the 0..255 scale.
BASES = {
    "base-low": [("base-low", 0.013, 21000, 0.85), ("base-low-2", 0.004, 18000, 0.8)],
    "base-high": [("base-high", 0.05, 21000, 0.85), ("base-high-2", 0.05, 18000, 0.8)],
}
# Each level: (lambda, the base it starts from): from about 0.15 to 1.5 bits per pixel on Kodak.
LEVELS = {1: (0.0012, "base-low"), 2: (0.004, "base-low"),
          3: (0.018, "base-high"), 4: (0.15, "base-high")}
LEVEL_STEPS = 5000
LEVEL_LR = ["--lr", "1e-4", "--lr-drop-at", "0.7"]


def _train(data, out, lmbda, steps, extra):
    if (out / "final.weights.h5").exists():
        click.echo(f"{out}: done already")
        return
    command = [sys.executable, "-m", "aedge.train.train", "--data", str(data), "--out", str(out),
               "--lmbda", str(lmbda), "--steps", str(steps), *extra]
    click.echo(" ".join(command))
    subprocess.run(command, check=True)


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--level", "only", type=int, multiple=True, help="Only these levels.")
@click.option("--init-from", "init_dir", type=click.Path(exists=True, file_okay=False),
              help="Go on from the weights in DIR (e.g. models/bases): each base resumes "
                   "after its latest stage found there as DIR/<stage>.weights.h5.")
@click.option("--threads", type=int, default=0, help="CPU threads per run (0: all).")
def main(data, runs, only, init_dir, threads):
    """Train the base models, then fine-tune one model per quality level."""
    runs = Path(runs)
    common = ["--threads", str(threads)] if threads else []
    levels = {k: v for k, v in LEVELS.items() if not only or k in only}
    finals = {}  # base -> weights at the end of its last stage
    for base, stages in BASES.items():
        if not any(b == base for _, b in levels.values()):
            continue
        previous = None
        if init_dir:
            # Go on after the latest stage whose weights DIR holds (DIR/<stage>.weights.h5).
            for i, (name, *_) in enumerate(stages):
                if (Path(init_dir) / f"{name}.weights.h5").is_file():
                    previous, start = Path(init_dir) / f"{name}.weights.h5", i + 1
            if previous is None:
                raise click.ClickException(f"{init_dir} has no weights for {base}")
            stages = stages[start:]
        for name, lmbda, steps, drop in stages:
            init = ["--init-from", str(previous)] if previous else []
            _train(data, runs / name, lmbda, steps,
                   ["--lr", "4e-4", "--lr-drop-at", str(drop)] + init + common)
            previous = runs / name / "final.weights.h5"
        finals[base] = previous
    for level, (lmbda, base) in levels.items():
        _train(data, runs / f"q{level}", lmbda, LEVEL_STEPS,
               LEVEL_LR + ["--init-from", str(finals[base])] + common)


if __name__ == "__main__":
    main()
