"""`make bench-memory`: does tiling change anything, and what do large images cost?

1. Every image of a folder (Kodak), coded as shipped, with smaller coding tiles, and with one
   call per network on the whole image: same integers, same pixels? For each variant.
2. `aedge compress` and `aedge decompress` in fresh processes on 12 MP and 24 MP mosaics of
   the folder's images and on a 1 x 4,000,000 strip: maximum resident memory and time, and,
   for scale, a Pillow AVIF encode of one image in a fresh process.

    python tests/bench/memory.py ../shared/data/kodak -o bench-results/memory
"""
import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import aedge
from aedge.bench import cpu_model
from aedge.optimize.cards import replace_between
from aedge import bitstream, metrics, modelfile, registry, tiles


MARKERS = ("<!-- memory:start -->", "<!-- memory:end -->")


def pieces_against_whole(folder):
    """For each variant the shipped model has: the shipped way (tiles of 64 latents, network
    blocks on a fixed grid) against smaller tiles (16), and against one call per network on
    the whole image."""
    rows = []
    paths = sorted(Path(folder).glob("*.png"))
    one_call = lambda r0, r1, c0, c1, size: [(r0, r1, c0, c1)]
    for variant in modelfile.read(registry.default_model()).variants:
        codec = aedge.load(variant=variant)
        for other, patch in (("tiles of 16", {"TILE": 16}), ("one call", {"blocks": one_call})):
            same_latents = same_pixels = worst = 0
            size_change, psnr_change = [], []
            for path in paths:
                image = np.asarray(Image.open(path).convert("RGB"))
                ours = codec.compress(image)
                saved = bitstream.TILE, tiles.blocks
                try:
                    bitstream.TILE = patch.get("TILE", bitstream.TILE)
                    tiles.blocks = patch.get("blocks", tiles.blocks)
                    theirs = codec.compress(image)
                    their_latents, their_pixels = codec.latents(theirs), codec.decompress(theirs)
                finally:
                    bitstream.TILE, tiles.blocks = saved
                pixels = codec.decompress(ours)
                same_latents += all(np.array_equal(a, b) for a, b in
                                    zip(codec.latents(ours), their_latents))
                same_pixels += np.array_equal(pixels, their_pixels)
                worst = max(worst, int(np.abs(pixels.astype(int) - their_pixels).max()))
                size_change.append(len(theirs) / len(ours) - 1)
                psnr_change.append(metrics.psnr(image, their_pixels) - metrics.psnr(image, pixels))
            rows.append({"variant": variant, "against": other, "images": len(paths),
                         "same_latents": same_latents, "same_pixels": same_pixels,
                         "largest_pixel_difference": worst,
                         "size_change_percent": 100 * float(np.mean(size_change)),
                         "psnr_change_db": float(np.mean(psnr_change))})
    return rows


def make_inputs(folder, out):
    pictures = [Image.open(p).convert("RGB") for p in sorted(Path(folder).glob("*.png"))]
    pictures = [p for p in pictures if p.width > p.height]
    made = {}
    for name, (width, height) in {"12mp": (4000, 3000), "24mp": (6000, 4000)}.items():
        canvas = Image.new("RGB", (width, height))
        k = 0
        for top in range(0, height, pictures[0].height):
            for left in range(0, width, pictures[0].width):
                canvas.paste(pictures[k % len(pictures)], (left, top))
                k += 1
        made[name] = out / f"{name}.png"
        canvas.save(made[name], compress_level=1)
    row = np.asarray(pictures[0])[pictures[0].height // 2]
    strip = np.tile(row, (4_000_000 // len(row) + 1, 1))[:4_000_000][None]
    made["strip"] = out / "strip.png"
    Image.fromarray(strip).save(made["strip"], compress_level=1)
    return made


def measured(command):
    """(seconds, max resident MB) of a command run as a child. ru_maxrss of children is the
    largest of them all, so memory is measured in a process of its own (--measure)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def large_images(folder, out):
    rows = []
    avif = ("import io, sys; from PIL import Image; Image.open(sys.argv[1]).save(io.BytesIO(), "
            "'AVIF')")
    aedge_cli = [sys.executable, "-m", "aedge"]
    kodak = sorted(Path(folder).glob("*.png"))[0]
    for name, command in (("Kodak, aedge compress", aedge_cli + ["compress", str(kodak), "-o",
                                                                str(out / "k.aei"), "-f"]),
                          ("Kodak, Pillow AVIF encode", [sys.executable, "-c", avif,
                                                         str(kodak)])):
        seconds = min(measured(command)[0] for _ in range(3))
        rows.append({"image": name, "seconds": seconds})
    for name, path in make_inputs(folder, out).items():
        coded, back = out / f"{name}.aei", out / f"{name}.back.png"
        for way, command in (("compress", aedge_cli + ["compress", str(path), "-o", str(coded),
                                                       "-f"]),
                             ("decompress", aedge_cli + ["decompress", str(coded), "-o",
                                                         str(back), "-f"])):
            # One fresh measuring process each, so that ru_maxrss is this command's alone.
            probe = subprocess.run([sys.executable, __file__, "--measure", *command],
                                   check=True, capture_output=True, text=True)
            seconds, peak = json.loads(probe.stdout)
            with Image.open(path) as image:
                pixels = image.width * image.height
            rows.append({"image": name, "way": way, "megapixels": pixels / 1e6,
                         "seconds": seconds, "max_rss_mb": peak,
                         "file_bytes": coded.stat().st_size})
    return rows


def markdown(report):
    lines = ["As shipped (tiles of 64 latents, networks in blocks on a fixed grid) against tiles "
             "of 16 and against one call per network on the whole image (its size and PSNR "
             "change):", "",
             "| networks | against | images | same integers | same pixels | largest pixel "
             "difference | size change | PSNR change |", "|---|---|---|---|---|---|---|---|"]
    for r in report["pieces"]:
        lines.append(f"| {r['variant']} | {r['against']} | {r['images']} | {r['same_latents']} | "
                     f"{r['same_pixels']} | {r['largest_pixel_difference']} | "
                     f"{r['size_change_percent']:+.2f}% | {r['psnr_change_db']:+.3f} dB |")
    lines += ["", "Large images through the CLI (fresh process each, default networks):", "",
              "| image | megapixels | command | seconds | max RSS MB |", "|---|---|---|---|---|"]
    for r in report["large"]:
        if "way" in r:
            lines.append(f"| {r['image']} | {r['megapixels']:.1f} | aedge {r['way']} | "
                         f"{r['seconds']:.1f} | {r['max_rss_mb']:.0f} |")
        else:
            lines.append(f"| {r['image']} | 0.4 | | {r['seconds']:.2f} | |")
    lines.append(f"\n{report['machine']}")
    return "\n".join(lines) + "\n"


def main():
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measured(sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("-o", "--output", default="bench-results/memory")
    parser.add_argument("--readme", help="put the tables between this file's memory markers")
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": f"{cpu_model()}, "
                         f"{__import__('os').cpu_count()} cores, Python "
                         f"{platform.python_version()}",
              "pieces": pieces_against_whole(args.folder)}
    # The mosaics and their codings are hundreds of MB: scratch, never beside the results.
    with tempfile.TemporaryDirectory() as scratch:
        report["large"] = large_images(args.folder, Path(scratch))
    (out / "memory.json").write_text(json.dumps(report, indent=1))
    (out / "memory.md").write_text(markdown(report))
    print(markdown(report))
    if args.readme:
        replace_between(Path(args.readme), MARKERS, "Measured with `make bench-memory` "
                        f"(`tests/bench/memory.py`):\n\n{markdown(report)}")


if __name__ == "__main__":
    main()
