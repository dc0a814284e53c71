"""Two model files timed against each other, interleaved image by image on one warm machine:
rows of a table measured minutes apart differ by what the host did in between.

    python tests/bench/interleaved.py ../shared/data/kodak build/quantize/aedge.aem \
        build/quantize/aedge-fast.aem --limit 6

Per image and quality, in-process, the median encode and the median decode of --runs, the two
models taking turns (aedge.bench.interleaved); then the mean over images and qualities of
encode + decode, and the ratio.
"""
import click

import aedge
from aedge.bench import interleaved, pictures


@click.command()
@click.argument("kodak", type=click.Path(exists=True, file_okay=False))
@click.argument("first", type=click.Path(exists=True, dir_okay=False))
@click.argument("second", type=click.Path(exists=True, dir_okay=False))
@click.option("--limit", type=int, default=6, show_default=True, help="Only the first N images.")
@click.option("--runs", type=int, default=5, show_default=True)
@click.option("-q", "--quality", "qualities", type=int, multiple=True,
              default=(1, 45, 82, 100), show_default=True)
def main(kodak, first, second, limit, runs, qualities):
    # By the paths as given: a build's aedge.aem and the shipped one share a file name.
    codecs = {m: aedge.load(model=m) for m in (first, second)}
    photos = pictures(kodak, limit)
    times = interleaved(codecs, photos, qualities, runs)
    means = {name: t["encode_ms"] + t["decode_ms"] for name, t in times.items()}
    a, b = means
    click.echo(f"{len(photos)} images x {len(qualities)} qualities, "
               f"encode + decode: {a} {means[a]:.1f} ms, {b} {means[b]:.1f} ms, "
               f"{a} / {b} = {means[a] / means[b]:.2f}")


if __name__ == "__main__":
    main()
