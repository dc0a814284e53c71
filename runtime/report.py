"""`aedge report DIR -o report.html`: the bench, as one self-contained page to look at.

Rate-distortion plots (inline SVG, written here: no plotting library on the device), the same
detail of a few images from every codec at about the same file size (at 1x and 4x, unsmoothed),
the per-image table, the BD-rates, the machine and the versions. Everything is inlined; the
page needs no network to be viewed.
"""
import base64
import html
import io
from importlib import metadata

import numpy as np
from PIL import Image

from aedge import bench, metrics, registry

COLOURS = {"aedge": "#d62728", "jpeg": "#1f77b4", "webp": "#2ca02c", "avif": "#9467bd",
           "bmshj2018-factorized": "#8c564b", "bmshj2018-hyperprior": "#e377c2",
           "mbt2018-mean": "#7f7f7f"}
CROP, ZOOM = 128, 4  # a CROP-pixel detail at 1x, and its centre quarter at ZOOM x


def build(folder, qualities=None, codecs=("jpeg", "webp", "avif"), limit=None, variant=None,
          model=None, published=False, crops=3, progress=None, crop_quality=30):
    """The page, as a string (and the bench report it shows). The details show aedge at
    crop_quality, the others at the file size that gives."""
    report = bench.run(folder, qualities, codecs, limit, variant, progress, model)
    codec = registry.load(model=model, variant=variant)
    pictures = bench.pictures(folder, min(limit or crops, crops))
    details = [_details(name, array, codec, codecs, crop_quality) for name, array in pictures]
    return _page(report, details, published, crop_quality), report


def _details(name, array, codec, codecs, quality):
    """The same crop from the original and each codec, each coded at about the file size
    aedge gives at this quality."""
    top, left = _busiest(array)
    window = np.s_[top:top + CROP, left:left + CROP]
    data = codec.compress(array, quality)
    shown = [("original", None, None, array)]
    shown.append(("aedge", quality, len(data), codec.decompress(data)))
    for fmt in codecs:
        quality, size, decoded = _closest(fmt, array, len(data))
        shown.append((fmt, quality, size, decoded))
    h, w = array.shape[:2]
    return {"image": name, "box": (left, top), "panels": [
        {"codec": c, "q": q, "bytes": n, "bpp": None if n is None else 8 * n / (h * w),
         "psnr": None if n is None else metrics.psnr(array, d), "crop": d[window]}
        for c, q, n, d in shown]}


def _busiest(array):
    """Top-left corner of the CROP x CROP window with the most detail (grey variance)."""
    grey = array.mean(axis=2)
    h, w = grey.shape
    if h <= CROP or w <= CROP:
        return 0, 0
    best, corner = -1.0, (0, 0)
    for top in range(0, h - CROP + 1, CROP // 4):
        for left in range(0, w - CROP + 1, CROP // 4):
            v = float(grey[top:top + CROP, left:left + CROP].var())
            if v > best:
                best, corner = v, (top, left)
    return corner


def _closest(fmt, array, target):
    """(quality, bytes, decoded) of a Pillow codec at the size closest to target."""
    encode, decode = bench.pillow_codec(fmt)
    made = {}

    def data(q):
        if q not in made:
            made[q] = encode(array, q)
        return made[q]
    low, high = 1, 100
    while low < high:  # the highest quality that fits; then it or the next, whichever is closer
        middle = (low + high + 1) // 2
        if len(data(middle)) <= target:
            low = middle
        else:
            high = middle - 1
    best = min({low, min(low + 1, 100)}, key=lambda q: abs(len(data(q)) - target))
    return best, len(data(best)), decode(data(best))


def _png(array):
    image = Image.fromarray(np.ascontiguousarray(array))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _svg_plot(curves, key, label, published=None):
    """Quality against bpp, one polyline per codec, as inline SVG."""
    width, height, pad = 560, 360, 50
    value = (lambda s: -10 * np.log10(1 - s[key])) if key == "ms_ssim" else (lambda s: s[key])
    series = {name: [(s["bpp"], value(s)) for s in sorted(points, key=lambda s: s["bpp"])]
              for name, points in curves.items()}
    for name, (bpps, values) in (published or {}).items():
        series[name] = list(zip(bpps, values))
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = 0.0, max(xs) * 1.05
    y0, y1 = np.floor(min(ys)), np.ceil(max(ys))
    if y1 - y0 < 1:
        y1 = y0 + 1
    sx = lambda x: pad + (x - x0) / (x1 - x0) * (width - 1.5 * pad)
    sy = lambda y: height - pad - (y - y0) / (y1 - y0) * (height - 1.5 * pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-metric="{key}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad / 2}" y2="{height - pad}" '
             'stroke="black"/>',
             f'<line x1="{pad}" y1="{pad / 2}" x2="{pad}" y2="{height - pad}" stroke="black"/>']
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{sx(t):.1f}" y="{height - pad + 16}" font-size="11" '
                     f'text-anchor="middle">{t:g}</text>')
    for t in _ticks(y0, y1):
        parts.append(f'<text x="{pad - 6}" y="{sy(t) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{t:g}</text>')
        parts.append(f'<line x1="{pad}" y1="{sy(t):.1f}" x2="{width - pad / 2}" '
                     f'y2="{sy(t):.1f}" stroke="#eee"/>')
    parts.append(f'<text x="{width / 2}" y="{height - 12}" font-size="12" '
                 'text-anchor="middle">bits per pixel</text>')
    parts.append(f'<text x="14" y="{height / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 14 {height / 2})">{label}</text>')
    for k, (name, pts) in enumerate(series.items()):
        colour = COLOURS.get(name, "black")
        dash = ' stroke-dasharray="4 3"' if published and name in published else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="curve" data-codec="{html.escape(name)}" points="{path}" '
                     f'fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>'
                  for x, y in pts]
        ly = pad / 2 + 14 * k
        parts.append(f'<line x1="{width - 190}" y1="{ly}" x2="{width - 170}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{width - 165}" y="{ly + 4}" font-size="11">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _ticks(low, high, count=6):
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) over [low, high]."""
    rough = (high - low) / count
    power = 10.0 ** np.floor(np.log10(rough))
    step = min(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    return np.arange(np.ceil(low / step) * step, high + 1e-9, step)


def _page(report, details, published, crop_quality):
    curves = {}
    for s in report["summary"]:
        curves.setdefault(s["codec"], []).append(s)
    refs = bench.PUBLISHED if published else None
    fmt = lambda v, spec: "" if v is None else format(v, spec)
    esc = html.escape
    versions = ", ".join(f"{p} {_version(p)}" for p in ("aedge", "ai-edge-litert", "numpy",
                                                         "pillow"))
    machine = report["machine"]
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>aedge report</title><style>",
           "body{font-family:sans-serif;margin:2em;max-width:1200px}",
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
           "padding:2px 6px;text-align:right}th{background:#f4f4f4}",
           ".crops{display:flex;flex-wrap:wrap;gap:12px}.crops figure{margin:0}",
           "img.zoom{image-rendering:pixelated;image-rendering:crisp-edges}",
           "figcaption{font-size:12px}</style></head><body>",
           "<h1>aedge against JPEG, WebP and AVIF</h1>",
           f"<p>{report['images']} images of <code>{esc(report['folder'])}</code>; aedge model "
           f"{esc(str(report['model']))}, networks {esc(report['variant'])}. Machine: "
           f"{esc(machine['cpu'])}, {machine['cores']} cores, {esc(machine['system'])}. "
           f"Versions: {esc(versions)}, Python {esc(machine['python'])}.</p>",
           '<h2>Rate and quality</h2><div class="plots">',
           _svg_plot(curves, "psnr", "PSNR (dB)", refs),
           _svg_plot(curves, "ms_ssim", "MS-SSIM (dB)"), "</div>"]
    if report["bd_rate_percent"]:
        out += ["<h2>BD-rate of aedge</h2><p>Negative: fewer bits at equal quality.</p>",
                "<table><tr><th>against</th><th>on PSNR</th><th>on MS-SSIM</th></tr>"]
        for name, bd in report["bd_rate_percent"].items():
            if bd.get("published") and not published:
                continue
            out.append(f"<tr><td>{esc(name)}</td><td>{fmt(bd['psnr'], '+.1f')}%</td>"
                       f"<td>{fmt(bd['ms_ssim_db'], '+.1f')}</td></tr>")
        out.append("</table>")
    out.append(f"<h2>Same detail, about the same file size</h2><p>A {CROP}x{CROP} detail, "
               f"and its centre at {ZOOM}x without smoothing; every codec at the quality "
               f"whose file is closest in size to aedge's at quality {crop_quality}.</p>")
    for d in details:
        out.append(f'<h3>{esc(d["image"])} (detail at x={d["box"][0]}, y={d["box"][1]})</h3>'
                   '<div class="crops">')
        for p in d["panels"]:
            centre = p["crop"][CROP // 2 - CROP // (2 * ZOOM):CROP // 2 + CROP // (2 * ZOOM),
                               CROP // 2 - CROP // (2 * ZOOM):CROP // 2 + CROP // (2 * ZOOM)]
            caption = p["codec"] if p["bytes"] is None else (
                f"{p['codec']} q{p['q']}: {p['bytes']} bytes, {p['bpp']:.3f} bpp, "
                f"{p['psnr']:.2f} dB")
            out.append(f'<figure data-codec="{esc(p["codec"])}">'
                       f'<img alt="{esc(caption)}" width="{CROP}" height="{CROP}" '
                       f'src="data:image/png;base64,{_png(p["crop"])}">'
                       f'<img class="zoom" alt="{esc(caption)}, {ZOOM}x" width="{CROP}" '
                       f'height="{CROP}" src="data:image/png;base64,{_png(centre)}">'
                       f"<figcaption>{esc(caption)}</figcaption></figure>")
        out.append("</div>")
    out += ["<h2>Means per setting</h2><table><tr><th>codec</th><th>q</th><th>bpp</th>"
            "<th>PSNR</th><th>MS-SSIM</th><th>encode ms</th><th>decode ms</th></tr>"]
    for s in report["summary"]:
        out.append(f"<tr><td>{esc(s['codec'])}</td><td>{s['q']}</td><td>{s['bpp']:.3f}</td>"
                   f"<td>{s['psnr']:.2f}</td><td>{s['ms_ssim']:.4f}</td>"
                   f"<td>{s['encode_ms']:.1f}</td><td>{s['decode_ms']:.1f}</td></tr>")
    out += ["</table><h2>Per image</h2><table><tr><th>image</th><th>codec</th><th>q</th>"
            "<th>bytes</th><th>bpp</th><th>PSNR</th><th>MS-SSIM</th><th>encode ms</th>"
            "<th>decode ms</th></tr>"]
    for r in report["records"]:
        out.append(f"<tr><td>{esc(r['image'])}</td><td>{esc(r['codec'])}</td><td>{r['q']}</td>"
                   f"<td>{r['bytes']}</td><td>{r['bpp']:.3f}</td><td>{r['psnr']:.2f}</td>"
                   f"<td>{r['ms_ssim']:.4f}</td><td>{r['encode_ms']:.1f}</td>"
                   f"<td>{r['decode_ms']:.1f}</td></tr>")
    out.append("</table>")
    if report.get("skipped"):
        out.append("<h2>Left out</h2><ul>" + "".join(
            f"<li>{esc(s['image'])}: {esc(s['reason'])}</li>" for s in report["skipped"]) +
            "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
