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

# Stages of each base: (run name, lambda, steps). Lambda weighs the MSE on the 0..255 scale.
BASES = {
    "base-low": [("base-low", 0.013, 21000), ("base-low-2", 0.004, 18000)],
    "base-high": [("base-high", 0.05, 21000), ("base-high-2", 0.05, 18000)],
}
BASE_LR = ["--lr", "4e-4", "--lr-drop-at", "0.8"]
# Each level: (lambda, the base it starts from): from about 0.15 to 1.5 bits per pixel on Kodak.
LEVELS = {1: (0.0012, "base-low"), 2: (0.004, "base-low"),
          3: (0.018, "base-high"), 4: (0.15, "base-high")}
LEVEL_STEPS = 4000
LEVEL_LR = ["--lr", "1e-4", "--lr-drop-at", "0.7"]


def _train(data, out, lmbda, steps, extra):
    if (out / "final.weights.h5").exists():
        click.echo(f"{out}: done already")
        return
    command = [sys.executable, "-m", "aedge.train.train", "--data", str(data), "--out", str(out),
               "--lmbda", str(lmbda), "--steps", str(steps), *extra]
    click.echo(" ".join(command))
    subprocess.run(command, check=True)


def _final(runs, base):
    """Weights at the end of a base's last stage."""
    return runs / BASES[base][-1][0] / "final.weights.h5"


@click.command()
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--runs", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--level", "only", type=int, multiple=True, help="Only these levels.")
@click.option("--init-from", "init_dir", type=click.Path(exists=True, file_okay=False),
              help="Start each base from DIR/<base>.weights.h5 (e.g. models/bases) "
                   "instead of its first stage.")
@click.option("--threads", type=int, default=0, help="CPU threads per run (0: all).")
def main(data, runs, only, init_dir, threads):
    """Train the base models, then fine-tune one model per quality level."""
    runs = Path(runs)
    common = ["--threads", str(threads)] if threads else []
    levels = {k: v for k, v in LEVELS.items() if not only or k in only}
    for base, stages in BASES.items():
        if not any(b == base for _, b in levels.values()):
            continue
        previous = None
        if init_dir:
            previous, stages = Path(init_dir) / f"{base}.weights.h5", stages[1:]
        for name, lmbda, steps in stages:
            init = ["--init-from", str(previous)] if previous else []
            _train(data, runs / name, lmbda, steps, BASE_LR + init + common)
            previous = runs / name / "final.weights.h5"
    for level, (lmbda, base) in levels.items():
        _train(data, runs / f"q{level}", lmbda, LEVEL_STEPS,
               LEVEL_LR + ["--init-from", str(_final(runs, base))] + common)


if __name__ == "__main__":
    main()
