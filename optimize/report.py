"""The variants table: every model file of `make quantize` measured the same way on Kodak.

`python -m aedge.optimize.report build/quantize --kodak DIR -o bench-results/variants`

For each variant: the model file's size (and with gzip), the compressed size of the networks it
runs, their sparsity and multiply-accumulates per pixel (read from the TFLite graphs), Kodak
bpp / PSNR / MS-SSIM at the default quality, BD-rate against the float32 networks and against
JPEG, encode and decode time, and whether tflite-runtime decodes the same pixels as
ai-edge-litert. Runtime only: no TensorFlow here.
"""
import gzip
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

import click
import numpy as np

from aedge import bench, metrics, modelfile
from aedge.interpreter import _interpreter_class, quiet_stderr

# (label, model file in the build folder, networks)
ROWS = (("float32", "aedge-base.aem", "float32"),
        ("int8-dynamic, converted", "aedge-base.aem", "int8-dynamic"),
        ("int8-dynamic, QAT", "aedge-dynamic-qat.aem", "int8-dynamic"),
        ("int8-dynamic, QAT, g_s for MS-SSIM too", "aedge-decoder.aem", "int8-dynamic"),
        ("int8-dynamic, QAT, g_s, then all three for MS-SSIM too", "aedge-joint.aem",
         "int8-dynamic"),
        ("int8, post-training", "aedge-base.aem", "int8"),
        ("int8, QAT", "aedge-qat.aem", "int8"),
        ("int8, QAT, g_s for PSNR over the qualities", "aedge-int8-decoder.aem", "int8"),
        ("int16x8, post-training", "aedge-base.aem", "int16x8"),
        ("50% sparse", "aedge-sparse50.aem", "int8-dynamic"),
        ("75% sparse", "aedge-sparse75.aem", "int8-dynamic"),
        ("fast (distilled)", "aedge-fast.aem", "int8-dynamic"))
# The build's model to ship: the row whose networks are its int8-dynamic ones is the default,
# and every row's speed is given against it.
SHIPPED_FILE = "aedge.aem"
CROSS_IMAGES = 3  # decoded by both interpreters
# Speed: the rows take turns image by image (bench.interleaved) on the first SPEED_IMAGES
# images at these qualities and the default one; the sweep's own times are rows measured
# minutes apart on a host whose speed drifts by a fifth within a session.
SPEED_IMAGES = 6
SPEED_QUALITIES = (1, 45, 100)
SPEED_RUNS = 3
# A row this many times slower than the default in the sweep keeps the sweep's times: its
# turns would take minutes (int16x8's reference kernels) and its ratio is not in doubt.
SLOW = 10
MEASURE_SIDE = 256  # image side at which MACs are counted


def graph_stats(flatbuffer, channels, side):
    """(zeros among convolution weights, weights, MACs) of one network on a side x side input."""
    import importlib

    cls = _interpreter_class()
    # Without XNNPACK: the delegate's tensors keep the shapes the graph was saved with.
    plain = importlib.import_module(cls.__module__).OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with quiet_stderr():
        interpreter = cls(model_content=flatbuffer, experimental_op_resolver_type=plain)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, (1, side, side, channels))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, np.zeros((1, side, side, channels), np.float32))
    interpreter.invoke()  # shapes that depend on the input's are known only after a run
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    zeros = weights = macs = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] != "CONV_2D":
            continue
        kernel = interpreter.get_tensor(op["inputs"][1])  # (out, kh, kw, in), constant
        out_shape = tensors[op["outputs"][0]]["shape"]
        zeros += int(np.sum(kernel == 0))
        weights += kernel.size
        macs += int(np.prod(out_shape[:3])) * kernel.size
    return zeros, weights, macs


def network_stats(model, variant):
    """Sparsity of the convolutions and MACs per image pixel of g_a + h_a + g_s."""
    m = model.manifest["latent_channels"]
    shapes = {"g_a": (3, MEASURE_SIDE), "h_a": (m, MEASURE_SIDE // 16),
              "g_s": (m, MEASURE_SIDE // 16)}
    zeros = weights = macs = 0
    for part, (channels, side) in shapes.items():
        z, w, c = graph_stats(model.network(part, variant), channels, side)
        zeros, weights, macs = zeros + z, weights + w, macs + c
    return zeros / weights, macs / MEASURE_SIDE ** 2


def narrowed_filters(manifest, variant):
    """The widths make narrow gave a variant's networks (make splice may have put them into a
    file of wider ones), from the manifest's notes; None where they are not narrowed."""
    narrowed = manifest.get("optimization", {}).get("narrowed", {})
    return narrowed["filters"] if variant in narrowed.get("variants", ()) else None


def filters_of(model, variant):
    """The channels of g_a's and g_s's stages in a model file's networks of one variant: the
    trained model's, unless make narrow narrowed them (the manifest's notes say for which) or
    they are a distilled student's."""
    from aedge.train import architecture as arch

    notes = model.manifest.get("optimization", {})
    narrowed = narrowed_filters(model.manifest, variant)
    if narrowed is not None:
        return arch.widths(narrowed)
    if "filters" in notes:  # the distilled student's
        return arch.widths(notes["filters"])
    return arch.widths(model.manifest.get("training", {}).get("filters", arch.N_FILTERS))


def deflated_networks(path, variant):
    with zipfile.ZipFile(path) as z:
        return sum(z.getinfo(modelfile.network_member(p, variant)).compress_size
                   for p in modelfile.NETWORKS)


def cross_interpreter(path, variant, photos, python):
    """Largest pixel difference between ai-edge-litert's decoding and tflite-runtime's, of
    files ai-edge-litert encoded (the default quality)."""
    from aedge import images, registry

    codec = registry.load(model=path, variant=variant)
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, array in photos[:CROSS_IMAGES]:
            data = codec.compress(array)
            source, target = Path(tmp) / f"{name}.aei", Path(tmp) / f"{name}.png"
            source.write_bytes(data)
            subprocess.run([python, "-m", "aedge", "decompress", str(source), "--model",
                            str(path), "--variant", variant, "-o", str(target)], check=True,
                           capture_output=True)
            theirs = images.load(target.read_bytes(), target.name).array
            worst = max(worst, int(np.abs(theirs.astype(int) - codec.decompress(data)).max()))
    return worst


def measure(build, kodak, python=None, limit=None, progress=None):
    photos = bench.pictures(kodak, limit)
    rows, reference, jpeg = [], None, None
    for label, file, variant in ROWS:
        path = Path(build) / file
        if not path.is_file():
            continue
        model = modelfile.read(path)
        if variant not in model.variants:  # a build of an older make quantize
            continue
        # One run each: the table's times come from the turns below (int16x8's, a hundred
        # times slower, from this sweep).
        report = bench.run(kodak, codecs=() if jpeg else ("jpeg",), limit=limit,
                           variant=variant, progress=progress, model=str(path), runs=1)
        curves = {}
        for s in report["summary"]:
            curves.setdefault(s["codec"], []).append(s)
        ours = curves["aedge"]
        jpeg = jpeg or curves["jpeg"]
        reference = reference or ours  # the first row: float32
        at = min(ours, key=lambda s: abs(s["q"] - model.manifest["default_quality"]))
        sparsity, macs = network_stats(model, variant)
        row = {"variant": label, "file": file, "networks": variant,
               "file_bytes": path.stat().st_size,
               "gzip_bytes": len(gzip.compress(path.read_bytes(), 9)),
               "network_bytes": deflated_networks(path, variant),
               "sparsity": round(sparsity, 4), "macs_per_pixel": round(macs),
               "default_quality": at["q"], "bpp": at["bpp"], "psnr": at["psnr"],
               "ms_ssim": at["ms_ssim"],
               "bd_rate_vs_float32": bench._bd(reference, ours, "psnr"),
               "bd_psnr_vs_float32": _bd_psnr(reference, ours),
               "bd_rate_vs_jpeg": bench._bd(jpeg, ours, "psnr"),
               "bd_rate_vs_jpeg_ms_ssim": bench._bd(jpeg, ours, "ms_ssim"),
               "encode_ms": float(np.mean([s["encode_ms"] for s in ours])),
               "decode_ms": float(np.mean([s["decode_ms"] for s in ours])),
               "curve": ours}
        if python:
            row["tflite_runtime_max_difference"] = cross_interpreter(path, variant, photos,
                                                                     python)
        rows.append(row)
    mark_default(build, rows)
    speed = interleave(build, rows, photos[:SPEED_IMAGES], progress)
    speed_against(rows)
    return {"kodak": str(kodak), "images": len(photos), "machine": bench._machine(),
            "speed": speed, "rows": rows}


def interleave(build, rows, photos, progress=None):
    """Replace the sweep's encode and decode times by ones measured with the rows taking turns,
    for every row within SLOW times the default's time."""
    from aedge import registry

    shipped = _shipped(rows)
    total = lambda r: r["encode_ms"] + r["decode_ms"]
    timed = [r for r in rows if shipped is None or total(r) < SLOW * total(shipped)]
    codecs = {r["variant"]: registry.load(model=str(Path(build) / r["file"]),
                                           variant=r["networks"]) for r in timed}
    if not codecs or not photos:
        return None
    qualities = sorted({*SPEED_QUALITIES, rows[0]["default_quality"]})
    if progress:
        click.echo(f"timing {len(codecs)} variants in turns on {len(photos)} images", file=progress)
    times = bench.interleaved(codecs, photos, qualities, SPEED_RUNS)
    for r in rows:
        r["timed"] = "interleaved" if r["variant"] in times else "sweep"
        if r["variant"] in times:
            r["sweep_encode_ms"], r["sweep_decode_ms"] = r["encode_ms"], r["decode_ms"]
            r.update(times[r["variant"]])
    return {"images": len(photos), "qualities": qualities, "runs": SPEED_RUNS}


def _networks(path, variant):
    """The bytes of a model file's three networks of a variant: which stages' networks a
    build shipped is decided by make quantize on held-out crops, so the table finds them by
    their bytes rather than by a file's name."""
    model = modelfile.read(path)
    return [model.network(part, variant) for part in modelfile.NETWORKS]


def mark_default(build, rows):
    """Marks the first row whose networks are the int8-dynamic ones of the build's model to
    ship (none where the build has none)."""
    path = Path(build) / SHIPPED_FILE
    shipped = _networks(path, "int8-dynamic") if path.is_file() else None
    for r in rows:
        r["default"] = (shipped is not None and r["networks"] == "int8-dynamic"
                        and _networks(Path(build) / r["file"], "int8-dynamic") == shipped)
        shipped = None if r["default"] else shipped


def _shipped(rows):
    """The shipped networks' row (the first, where several rows hold the same networks), or
    the first int8-dynamic one when the build has no model to ship."""
    return next((r for r in rows if r.get("default")), None) or next(
        (r for r in rows if r["networks"] == "int8-dynamic"), None)


def speed_against(rows):
    """Each row's encode + decode time as a speed-up over the shipped networks' (_shipped),
    timed the same way: a row left out of the turns is compared with the shipped row's
    sweep."""
    shipped = _shipped(rows)
    for r in rows:
        if shipped is None:
            r["speedup_vs_default"] = None
            continue
        key = "sweep_" if r.get("timed") == "sweep" and "sweep_encode_ms" in shipped else ""
        r["speedup_vs_default"] = ((shipped[key + "encode_ms"] + shipped[key + "decode_ms"])
                                   / (r["encode_ms"] + r["decode_ms"]))


def _bd_psnr(reference, test):
    reference, test = bench.pareto(reference, "psnr"), bench.pareto(test, "psnr")
    return metrics.bd_psnr([s["bpp"] for s in reference], [s["psnr"] for s in reference],
                           [s["bpp"] for s in test], [s["psnr"] for s in test])


def markdown(report):
    machine = report["machine"]
    speed = report.get("speed")
    if speed:
        times = ("times: the variants taking turns image by image on one warm machine, "
                 f"on the first {speed['images']} images at qualities "
                 f"{', '.join(map(str, speed['qualities']))}, the median of {speed['runs']} "
                 "each, then the mean (rows marked *, too slow to take turns: the mean of "
                 "the sweep over every image and quality, and their speed against the "
                 "default's in the sweep), in-process, entropy coding included. ")
    else:
        times = "times are means over the 8 qualities, in-process, entropy coding included. "
    lines = [f"Kodak ({report['images']} images), {machine.get('cpu', 'this CPU')}; "
             + times
             + (f"bpp, PSNR and MS-SSIM at quality {report['rows'][0]['default_quality']}, "
                "the benched quality nearest the default" if report["rows"] else "")
             + "; BD-rates on PSNR over the whole "
             "curve (q1..100); speed: encode + decode against the default networks'; "
             "tflite-runtime: the largest difference, in levels, between its "
             f"decoding and ai-edge-litert's (first {CROSS_IMAGES} images).", "",
             "| variant | networks | file MB | gzip MB | networks MB (compressed) | sparsity | "
             "kMAC/px | bpp | PSNR | MS-SSIM | BD vs float32 | dB vs float32 | BD vs JPEG | "
             "encode ms | decode ms | speed vs default | tflite-runtime |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda v: "n/a" if v is None else f"{v:+.1f}%"
    mark = lambda r: "*" if speed and r.get("timed") == "sweep" else ""
    for r in report["rows"]:
        cross = r.get("tflite_runtime_max_difference")
        ratio = r.get("speedup_vs_default")
        lines.append(
            f"| {r['variant']}{' (default)' if r.get('default') else ''} | {r['networks']} | "
            f"{r['file_bytes'] / 1e6:.2f} | {r['gzip_bytes'] / 1e6:.2f} | "
            f"{r['network_bytes'] / 1e6:.2f} | "
            f"{r['sparsity']:.1%} | {r['macs_per_pixel'] / 1e3:.1f} | {r['bpp']:.3f} | "
            f"{r['psnr']:.2f} | {r['ms_ssim']:.4f} | {pct(r['bd_rate_vs_float32'])} | "
            f"{r['bd_psnr_vs_float32']:+.2f} | {pct(r['bd_rate_vs_jpeg'])} | "
            f"{r['encode_ms']:.0f}{mark(r)} | {r['decode_ms']:.0f}{mark(r)} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x{mark(r)}'} | "
            f"{'not run' if cross is None else cross} |")
    return "\n".join(lines) + "\n"


def update_readme(readme, text, start="<!-- variants:start -->", end="<!-- variants:end -->"):
    content = Path(readme).read_text()
    if start not in content or end not in content:
        raise click.ClickException(f"{readme} has no {start} ... {end} section")
    head, rest = content.split(start, 1)
    Path(readme).write_text(head + start + "\n" + text + end + rest.split(end, 1)[1])


@click.command()
@click.argument("build", type=click.Path(exists=True, file_okay=False))
@click.option("--kodak", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False))
@click.option("--tflite-runtime", "python", type=click.Path(exists=True, dir_okay=False),
              help="A Python with tflite-runtime and aedge: decodes the same files to compare.")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False),
              help="Put the table into this README (between variants markers).")
def main(build, kodak, output, python, limit, readme):
    """Measure every model file of BUILD (make quantize's folder) on Kodak."""
    import sys

    report = measure(build, kodak, python, limit, progress=sys.stderr)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variants.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (out / "variants.md").write_text(text)
    click.echo(text)
    if readme:
        update_readme(readme, text)


if __name__ == "__main__":
    main()
