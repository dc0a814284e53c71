"""Train every shipped quality level: `python -m aedge.train.levels --data DIR`.

Two base models are trained, one for the low rates and one for the high rates; then each level
is fine-tuned from the nearer base at its own lambda: far cheaper than training each level
from scratch, and the usual practice for families of learned codecs. Every run resumes where
it stopped if interrupted; finished runs are skipped.
"""
import subprocess
import sys
from pathlib import Path

import click

# lambda (weight of the MSE on the 0..255 scale) of each base, and of each level with the base it
# starts from: from about 0.15 to 1.5 bits per pixel on Kodak.
BASES = {"base-low": 0.013, "base-high": 0.05}
LEVELS = {1: (0.0015, "base-low"), 2: (0.006, "base-low"),
          3: (0.025, "base-high"), 4: (0.12, "base-high")}


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
@click.option("--base-steps", default=21000, show_default=True)
@click.option("--level-steps", default=1000, show_default=True)
@click.option("--level", "only", type=int, multiple=True, help="Only these levels.")
def main(data, runs, base_steps, level_steps, only):
    """Train the base model, then fine-tune one model per quality level."""
    runs = Path(runs)
    levels = {k: v for k, v in LEVELS.items() if not only or k in only}
    for name, lmbda in BASES.items():
        if any(base == name for _, base in levels.values()):
            _train(data, runs / name, lmbda, base_steps,
                   ["--lr", "4e-4", "--lr-drop-at", "0.85"])
    for level, (lmbda, base) in levels.items():
        _train(data, runs / f"q{level}", lmbda, level_steps,
               ["--init-from", str(runs / base / "final.weights.h5"), "--lr", "1e-4",
                "--lr-drop-at", "0.7"])


if __name__ == "__main__":
    main()
