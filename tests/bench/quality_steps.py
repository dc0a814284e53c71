"""`make bench-steps`: does every quality step up give a bigger file and a better image?

Codes every image of a folder (Kodak) at every quality 1..100 with the default networks and
checks each pair (q, q + STEP): the file must grow and PSNR must rise. The issue's criterion is
five steps; a user comparing neighbouring qualities meets the one-step pairs too, so both are
counted.

    python tests/bench/quality_steps.py ../shared/data/kodak -o bench-results/steps
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import aedge
from aedge import metrics

STEPS = (5, 1)


def curves(folder, codec, progress):
    """{image name: [(bytes, psnr) for quality 1..100]}"""
    out = {}
    paths = sorted(Path(folder).glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images in {folder}")
    for n, path in enumerate(paths):
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        points = []
        for q in range(1, 101):
            data = codec.compress(image, quality=q)
            points.append((len(data), float(metrics.psnr(image, codec.decompress(data)))))
        out[path.name] = points
        progress(n + 1, len(paths))
    return out


def violations(points_by_image, step):
    """Every pair (q, q + step) whose file does not grow or whose PSNR does not rise."""
    bad = []
    for name, points in points_by_image.items():
        for q in range(1, 101 - step):
            (b0, p0), (b1, p1) = points[q - 1], points[q - 1 + step]
            if b1 <= b0 or p1 <= p0:
                bad.append({"image": name, "from": q, "to": q + step, "bytes": [b0, b1],
                            "psnr": [round(p0, 3), round(p1, 3)]})
    return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("-o", "--output", default="bench-results/steps")
    args = parser.parse_args()
    codec = aedge.load()
    started = time.time()
    points = curves(args.folder, codec, lambda n, total: print(
        f"{n}/{total} images ({time.time() - started:.0f} s)", flush=True))
    report = {"model": codec.identity.hex(), "variant": codec.variant, "images": len(points),
              "curves": points}
    lines = []
    for step in STEPS:
        bad = violations(points, step)
        pairs = len(points) * (100 - step)
        report[f"step_{step}"] = {"pairs": pairs, "violations": bad}
        lines.append(f"{step} quality step(s) up: {len(bad)} of {pairs} pairs where the file "
                     "did not grow or PSNR did not rise"
                     + "".join(f"\n  {b['image']} q{b['from']}->q{b['to']}: {b['bytes'][0]}->"
                               f"{b['bytes'][1]} bytes, {b['psnr'][0]}->{b['psnr'][1]} dB"
                               for b in bad[:20]))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.json").write_text(json.dumps(report))
    (out / "steps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
