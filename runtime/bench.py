"""`aedge bench DIR`: rate, quality and speed of aedge against JPEG, WebP and AVIF.

Every codec runs in this process on the same decoded pixels; times are wall-clock per image
after one warm-up, so interpreter set-up is not counted (a device keeps its codec loaded).
Each time is the median of RUNS encodings and decodings in a row, and a codec's qualities take
turns image by image: a host that slows for a moment changes no median, and one that slows
for a minute slows every row of a codec a little, not a few rows a lot. The codecs do not take
turns with each other: each runs warm, as on a device that does nothing else.
SSIM is scikit-image's with the settings of Wang et al. 2004 (Gaussian window, sigma 1.5).
"""
import io
import os
import platform
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image

from aedge import images, metrics, registry
from aedge.errors import AedgeError

QUALITIES = {
    "jpeg": (5, 10, 15, 20, 25, 35, 45, 50, 60, 75, 85, 95),
    "webp": (5, 10, 15, 25, 35, 45, 50, 60, 75, 85, 95),
    "avif": (5, 15, 25, 35, 45, 60, 75, 85, 95),
}
AEDGE_QUALITIES = (1, 15, 30, 45, 60, 75, 90, 100)
PILLOW_OPTIONS = {"jpeg": {}, "webp": {"method": 6}, "avif": {}}
# CompressAI's published Kodak points (bpp, RGB PSNR), as ../shared/data/README.md lists them:
# GPU-trained float32 models, for BD-rates against the field's references (PSNR only).
PUBLISHED = {
    "bmshj2018-factorized": ((0.123, 0.189, 0.288, 0.440, 0.648, 0.967, 1.351, 1.833),
                             (26.91, 28.22, 29.62, 31.28, 32.96, 35.38, 37.40, 39.62)),
    "bmshj2018-hyperprior": ((0.131, 0.209, 0.320, 0.478, 0.669, 0.939, 1.259, 1.660),
                             (27.58, 29.20, 30.97, 32.84, 34.53, 36.74, 38.58, 40.56)),
    "mbt2018-mean": ((0.124, 0.198, 0.307, 0.461, 0.662, 0.914, 1.234, 1.619),
                     (27.70, 29.36, 31.13, 32.95, 34.97, 36.91, 38.84, 40.63)),
}
SPLIT = ("networks", "h_s", "entropy")
RUNS = 3  # timings per image and quality, of which the median counts
IMAGE_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".ppm", ".jpg", ".jpeg", ".webp"}


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - start) * 1e3


def pillow_codec(fmt):
    """(encode(array, quality) -> bytes, decode(bytes) -> array) of a format Pillow writes."""
    def encode(array, quality):
        out = io.BytesIO()
        Image.fromarray(array).save(out, format=fmt.upper(), **PILLOW_OPTIONS[fmt],
                                    quality=quality)
        return out.getvalue()

    def decode(data):
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return encode, decode


def _pillow_codec(fmt, quality):
    encode, decode = pillow_codec(fmt)
    return (lambda array: encode(array, quality)), decode


def image_files(folder, limit=None):
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AedgeError(f"no images in {folder}")
    return files[:limit] if limit else files


def pictures(folder, limit=None, skipped=None):
    """(name, RGB array) of each image of the folder that can be read; the others go to
    skipped, with the reason, and the bench goes on without them."""
    out = []
    for p in image_files(folder, limit):
        try:
            out.append((p.name, _rgb(images.load(p.read_bytes(), p.name).array)))
        except (AedgeError, OSError) as e:
            if skipped is not None:
                skipped.append({"image": p.name, "reason": str(e)})
    return out


def _ssim():
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise AedgeError("aedge bench needs scikit-image: pip install 'aedge[bench]'") from None
    return lambda a, b: float(structural_similarity(
        a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False))


def _measure(encode, decode, array, ssim, codec=None, runs=RUNS):
    times = []
    for _ in range(runs):
        data, enc_ms = _timed(encode, array)
        split = {f"encode_{k}_ms": v * 1e3 for k, v in codec.timings.items()} if codec else {}
        decoded, dec_ms = _timed(decode, data)
        if codec:
            split.update({f"decode_{k}_ms": v * 1e3 for k, v in codec.timings.items()})
        times.append({"encode_ms": enc_ms, "decode_ms": dec_ms, **split})
    h, w = array.shape[:2]
    return {"bytes": len(data), "bpp": metrics.bits_per_pixel(len(data), w, h),
            "psnr": metrics.psnr(array, decoded), "ssim": ssim(array, decoded),
            "ms_ssim": metrics.ms_ssim(array, decoded),
            **{k: float(np.median([t[k] for t in times])) for k in times[0]}}


def interleaved(codecs, photos, qualities, runs=5):
    """Encode and decode ms of each codec ({name: codec}), taking turns image by image on one
    warm machine: rows of a table measured minutes apart differ by what the host did in
    between. The order of the turns reverses every run, so that going first favours no one.
    Per image and quality the median of `runs`, then the mean over all of them."""
    spent = {name: {"encode_ms": [], "decode_ms": []} for name in codecs}
    for _, array in photos:
        for q in qualities:
            for codec in codecs.values():  # each network planned for this size first
                codec.decompress(codec.compress(array, q))
            times = {name: {"encode_ms": [], "decode_ms": []} for name in codecs}
            for run in range(runs):
                for name, codec in list(codecs.items())[::-1 if run % 2 else 1]:
                    data, encode_ms = _timed(codec.compress, array, q)
                    times[name]["encode_ms"].append(encode_ms)
                    times[name]["decode_ms"].append(_timed(codec.decompress, data)[1])
            for name, t in times.items():
                for key, values in t.items():
                    spent[name][key].append(float(np.median(values)))
    return {name: {key: float(np.mean(v)) for key, v in t.items()} for name, t in spent.items()}


def run(folder, qualities=None, codecs=("jpeg", "webp", "avif"), limit=None, variant=None,
        progress=None, model=None, runs=RUNS):
    """Returns the bench report as a dict (see summarise); each time the median of `runs`."""
    # A file that cannot be read or measured is recorded, and the bench goes on without it.
    skipped = []
    photos = pictures(folder, limit, skipped)
    if not photos:
        raise AedgeError(f"no image of {folder} could be read ({skipped[0]['reason']})")
    ssim = _ssim()
    codec = registry.load(model=model, variant=variant)
    configs = [("aedge", q, lambda a, q=q: codec.compress(a, q), codec.decompress, codec)
               for q in qualities or AEDGE_QUALITIES]
    for fmt in codecs:
        configs += [(fmt, q, *_pillow_codec(fmt, q), None) for q in QUALITIES[fmt]]
    records = []
    steps = [(c, p) for name in dict.fromkeys(c[0] for c in configs)
             for p in photos for c in configs if c[0] == name]
    with click.progressbar(steps, label="benchmarking", file=progress) as bar:
        warmed, failed = set(), set()
        for (name, q, encode, decode, timed), (image_name, array) in bar:
            if (name, q, array.shape) not in warmed and image_name not in failed:
                try:
                    decode(encode(array))
                except (ValueError, AedgeError):
                    pass  # measured (and recorded) just below
                warmed.add((name, q, array.shape))
            if image_name in failed:
                continue
            try:
                measured = _measure(encode, decode, array, ssim, timed, runs)
            except (ValueError, AedgeError) as e:  # one the metrics cannot take (MS-SSIM: 176 px)
                failed.add(image_name)
                skipped.append({"image": image_name, "reason": f"{name} q{q}: {e}"})
                continue
            records.append({"codec": name, "q": q, "image": image_name, **measured})
    # An image is compared only where every codec measured it.
    records = [r for r in records if r["image"] not in failed]
    if not records:
        raise AedgeError(f"no image of {folder} could be measured ({skipped[0]['reason']})")
    return {**summarise(records, folder, codec.variant, codec.model.name), "skipped": skipped}


def _rgb(array):
    """The colour of any picture aedge reads: greyscale repeated, alpha left out."""
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, 2)
    if array.shape[2] == 2:
        return np.repeat(array[..., :1], 3, 2)
    return np.ascontiguousarray(array[..., :3])


def summarise(records, folder, variant, model=None):
    keys = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms") + tuple(
        f"{way}_{k}_ms" for way in ("encode", "decode") for k in SPLIT)
    points = {}
    for r in records:
        points.setdefault((r["codec"], r["q"]), []).append(r)
    summary = [{"codec": c, "q": q, "images": len(rs),
                **{k: float(np.mean(v)) for k in keys if (v := [r[k] for r in rs if k in r])}}
               for (c, q), rs in points.items()]
    curves = {}
    for s in summary:
        curves.setdefault(s["codec"], []).append(s)
    bd = {}
    if "aedge" in curves:
        ours = curves["aedge"]
        for name, theirs in curves.items():
            if name == "aedge":
                continue
            bd[name] = {"psnr": _bd(theirs, ours, "psnr"), "ms_ssim_db": _bd(theirs, ours, "ms_ssim")}
        for name, (bpp, psnr) in PUBLISHED.items():
            bd[name] = {"psnr": _bd([{"bpp": b, "psnr": p} for b, p in zip(bpp, psnr)], ours,
                                    "psnr"), "ms_ssim_db": None, "published": True}
    return {"folder": str(folder), "images": len({r["image"] for r in records}),
            "variant": variant, "model": model, "machine": _machine(), "summary": summary,
            "bd_rate_percent": bd, "records": records}


def pareto(points, key):
    """The points no other point beats on both rate and quality: BD-rate needs curves that rise,
    and a setting that costs more bits for less quality is no part of a codec's curve."""
    front = []
    for p in sorted(points, key=lambda p: p["bpp"]):
        if not front or p[key] > front[-1][key]:
            front.append(p)
    return front


def _bd(reference, test, key):
    # MS-SSIM is compared in dB, -10 log10(1 - MS-SSIM), where curves are closer to linear.
    value = (lambda s: -10 * np.log10(1 - s[key])) if key == "ms_ssim" else (lambda s: s[key])
    reference, test = pareto(reference, key), pareto(test, key)
    try:
        return metrics.bd_rate([s["bpp"] for s in reference], [value(s) for s in reference],
                               [s["bpp"] for s in test], [value(s) for s in test])
    except ValueError:
        return None  # curves that do not overlap have no BD-rate


def cpu_model():
    """The CPU's name (platform.processor() is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine():
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "pillow": Image.__version__,
            "system": platform.platform()}


def cores_of(machine):
    """"2 cores of <CPU>": hosts change between runs, so every table names the one it had."""
    return f"{machine['cores']} cores of {machine.get('cpu', 'an unnamed CPU')}"


def markdown(report):
    lines = [f"Means over {report['images']} images of `{report['folder']}`; aedge networks: "
             f"{report['variant']}; {cores_of(report['machine'])}.", "",
             "| codec | q | bpp | PSNR dB | SSIM | MS-SSIM | encode ms | decode ms |",
             "|---|---|---|---|---|---|---|---|"]
    for s in report["summary"]:
        lines.append(f"| {s['codec']} | {s['q']} | {s['bpp']:.3f} | {s['psnr']:.2f} | "
                     f"{s['ssim']:.4f} | {s['ms_ssim']:.4f} | {s['encode_ms']:.1f} | "
                     f"{s['decode_ms']:.1f} |")
    if report["bd_rate_percent"]:
        lines += ["", "BD-rate of aedge (negative: fewer bits at equal quality; cubic fits over "
                  "the quality range both curves cover, each curve reduced to its points that no "
                  "other point beats on both rate and quality):", "",
                  "| against | on PSNR | on MS-SSIM (dB) |", "|---|---|---|"]
        fmt = lambda v: "no overlap" if v is None else f"{v:+.1f}%"
        for name, bd in report["bd_rate_percent"].items():
            ms_ssim = "not published" if bd.get("published") else fmt(bd["ms_ssim_db"])
            lines.append(f"| {name} | {fmt(bd['psnr'])} | {ms_ssim} |")
    if report.get("skipped"):
        lines += ["", "Left out:", ""] + [f"- {s['image']}: {s['reason']}"
                                          for s in report["skipped"]]
    split = [s for s in report["summary"] if "encode_networks_ms" in s]
    if split:
        lines += ["", "Where aedge's time goes (ms per image; networks: g_a + h_a to encode, g_s "
                  "to decode; h_s: the integer hyper-synthesis; entropy: rANS and escapes):", "",
                  "| q | encode networks | encode h_s | encode entropy | decode entropy | "
                  "decode h_s | decode networks | total |", "|---|---|---|---|---|---|---|---|"]
        for s in split:
            lines.append(
                f"| {s['q']} | {s['encode_networks_ms']:.1f} | {s['encode_h_s_ms']:.1f} | "
                f"{s['encode_entropy_ms']:.1f} | {s['decode_entropy_ms']:.1f} | "
                f"{s['decode_h_s_ms']:.1f} | {s['decode_networks_ms']:.1f} | "
                f"{s['encode_ms'] + s['decode_ms']:.1f} |")
    return "\n".join(lines) + "\n"
