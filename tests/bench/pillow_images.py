"""Does aedge compress what Pillow opens? Every file of a folder (Pillow's own test images:
Tests/images of its source) that Pillow opens and decodes is read the way `aedge compress`
reads it, coded and decoded; the output must have the input's size, and its alpha exactly.

    python tests/bench/pillow_images.py path/to/Pillow/Tests/images
"""
import collections
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import aedge
from aedge import images
from aedge.errors import AedgeError


def main(folder):
    codec = aedge.load()
    counts, refusals, failures = collections.Counter(), collections.Counter(), []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as image:
                    image.load()
        except Exception:
            counts["Pillow cannot read"] += 1
            continue
        counts["Pillow reads"] += 1
        try:
            picture = images.load(path.read_bytes(), path.name)
        except AedgeError as e:
            counts["refused"] += 1
            refusals[str(e).split(": ", 1)[-1].split(" (")[0]] += 1
            continue
        try:
            back = codec.decompress(codec.compress(picture.array))
        except AedgeError as e:
            failures.append(f"{path.name}: {e}")
            continue
        if back.shape != picture.array.shape or (
                back.ndim == 3 and back.shape[2] in (2, 4) and
                not np.array_equal(back[..., -1], picture.array[..., -1])):
            failures.append(f"{path.name}: came back {back.shape}, not {picture.array.shape}")
            continue
        counts["round trip"] += 1
        counts["with a note"] += bool(picture.notes)
        counts["with alpha"] += picture.array.ndim == 3 and picture.array.shape[2] in (2, 4)
    print(dict(counts))
    for reason, n in refusals.most_common():
        print(f"  refused {n}: {reason}")
    for line in failures:
        print(f"  FAILED {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
