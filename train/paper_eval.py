"""`make paper`: the seed paper's Table 1 and Figure 14, remade on 128x128 centre crops.

For each trained configuration (paper-3/5/7/10), against JPEG at the quality the paper pairs
it with (95, 75, 20, 13) and against aedge at the quality whose PSNR comes closest: PSNR,
SSIM, compression ratio (49,152 bytes of 8-bit RGB over the bytes stored) and milliseconds per
image (encode + decode, one image at a time, after a warm-up).

The autoencoder's latent is stored two ways:
- as the paper implies: raw float32 values, deflated (zlib, level 9);
- quantized and entropy-coded with aedge's coder: each channel clipped to the range it spans
  on training crops and quantized to 256 levels, each symbol coded by aedge's rANS with that
  channel's frequency table (counted on the training crops and kept with the model, so not
  counted per image); its PSNR is that of the image decoded from the quantized latent.

    python -m aedge.train.paper_eval KODAK --runs runs --train-data PHOTOS -o bench-results/paper
"""
import argparse
import io
import json
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from aedge import metrics, rans
from aedge.optimize.cards import replace_between
from aedge.train import paper
from aedge.train.files import find_images

PAIRS = {"paper-3": 95, "paper-5": 75, "paper-7": 20, "paper-10": 13}
# Table 1 and Figure 14 of the paper (CelebA-HQ faces; its time is for its whole test set).
PUBLISHED = {"paper-3": {"ssim": 0.97, "psnr": 27.09, "cr": 1.11, "jpeg_psnr": 41.11,
                         "jpeg_cr": 4.58},
             "paper-5": {"ssim": 0.93, "psnr": 25.78, "cr": 1.18, "jpeg_psnr": 36.37},
             "paper-7": {"ssim": 0.85}, "paper-10": {"ssim": 0.80}}
RAW_BYTES = paper.SIZE * paper.SIZE * 3
MARKERS = ("<!-- paper:start -->", "<!-- paper:end -->")
LEVELS = 256


def _ssim(a, b):
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=255,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def _u8(x):
    return np.clip(np.rint(np.asarray(x) * 255), 0, 255).astype(np.uint8)


class LatentCoder:
    """8-bit quantization per channel, and rANS with one static table per channel."""

    def __init__(self, training_latents):
        flat = training_latents.reshape(-1, training_latents.shape[-1])
        self.low, self.high = flat.min(axis=0), flat.max(axis=0)
        symbols = self.quantize(training_latents).reshape(-1, flat.shape[1])
        self.tables = rans.Tables([rans.quantize_pmf(np.bincount(symbols[:, c], minlength=LEVELS)
                                                     + 1.0) for c in range(flat.shape[1])])

    def quantize(self, latents):
        step = (self.high - self.low) / (LEVELS - 1)
        return np.clip(np.rint((latents - self.low) / np.where(step > 0, step, 1)), 0,
                       LEVELS - 1).astype(np.int64)

    def dequantize(self, symbols):
        return self.low + symbols * (self.high - self.low) / (LEVELS - 1)

    def encode(self, latent):
        symbols = self.quantize(latent).ravel()
        index = np.tile(np.arange(latent.shape[-1]), latent.size // latent.shape[-1])
        lanes = max(1, len(symbols) // 1500)
        return rans.encode(symbols, index, self.tables, lanes), lanes

    def decode(self, stream, lanes, shape):
        index = np.tile(np.arange(shape[-1]), int(np.prod(shape)) // shape[-1])
        return self.dequantize(rans.decode(stream, index, self.tables, lanes).reshape(shape))


def _timed(fn, *args, repeat=1):
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args)
    return out, (time.perf_counter() - start) / repeat * 1e3


def evaluate(folder, runs, train_data, archs=tuple(PAIRS), train_crops=300):
    import aedge
    crops = paper.crops(find_images(folder), centre=True)
    originals = _u8(crops)
    codec = aedge.load()
    training = paper.crops(find_images(train_data)[:train_crops], seed=1)
    aedge_points = {}  # quality -> (psnr, ssim, cr, ms) over the crops, computed once each

    def aedge_at(q):
        if q not in aedge_points:
            rows = []
            for image in originals:
                data, enc = _timed(codec.compress, image, q)
                back, dec = _timed(codec.decompress, data)
                rows.append((metrics.psnr(image, back), _ssim(image, back),
                             RAW_BYTES / len(data), enc + dec))
            aedge_points[q] = tuple(np.mean(rows, axis=0))
        return aedge_points[q]

    results = []
    for arch in archs:
        folder_ = Path(runs) / arch
        record = json.loads((folder_ / "train.json").read_text())
        encoder, decoder = paper.load(arch, folder_)
        coder = LatentCoder(encoder.predict(training, verbose=0))
        rows = []
        for crop, original in zip(crops, originals):
            x = crop[None]
            latent, enc_ms = _timed(lambda v: encoder(v, training=False).numpy(), x, repeat=3)
            recon, dec_ms = _timed(lambda v: decoder(v, training=False).numpy(), latent,
                                   repeat=3)
            back = _u8(recon[0])
            deflated = zlib.compress(latent.astype(np.float32).tobytes(), 9)
            (stream, lanes), code_ms = _timed(coder.encode, latent[0])
            coded_back = _u8(decoder(coder.decode(stream, lanes, latent[0].shape)[None]
                                     .astype(np.float32), training=False).numpy()[0])
            rows.append({"psnr": metrics.psnr(original, back), "ssim": _ssim(original, back),
                         "cr_float": RAW_BYTES / len(deflated),
                         "cr_coded": RAW_BYTES / (len(stream) + 2),
                         "psnr_coded": metrics.psnr(original, coded_back),
                         "ssim_coded": _ssim(original, coded_back), "ms": enc_ms + dec_ms})
        ae = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        jq = PAIRS[arch]
        jrows = []
        for original in originals:
            out = io.BytesIO()
            _, enc = _timed(lambda: Image.fromarray(original).save(out, format="JPEG",
                                                                   quality=jq))
            data = out.getvalue()
            back, dec = _timed(lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            jrows.append((metrics.psnr(original, back), _ssim(original, back),
                          RAW_BYTES / len(data), enc + dec))
        jpeg = dict(zip(("psnr", "ssim", "cr", "ms"), map(float, np.mean(jrows, axis=0))))
        # aedge at the quality of the closest PSNR: bisection, PSNR rising with quality.
        low, high = 1, 100
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if aedge_at(middle)[0] <= ae["psnr"] else (low, middle)
        q = min((low, high), key=lambda v: abs(aedge_at(v)[0] - ae["psnr"]))
        ours = dict(zip(("psnr", "ssim", "cr", "ms"), map(float, aedge_at(q))), quality=q)
        results.append({"arch": arch, "training": {**{k: record[k] for k in (
            "epochs_run", "epochs_asked", "stopped_early", "train_crops", "loss_weights",
            "note", "seconds", "parameters", "best_val_loss")}, "stopped_by": _stop(record)},
            "autoencoder": ae, "jpeg": {**jpeg, "quality": jq}, "aedge": ours,
            "published": PUBLISHED[arch]})
    return {"folder": str(folder), "crops": len(crops), "results": results}


def _stop(record):
    """Why training ended before its epochs: EarlyStopping (no better validation loss for
    `patience` epochs) or the time budget."""
    if not record["stopped_early"]:
        return None
    losses = record["history"]["val_loss"]
    idle = len(losses) - 1 - int(np.argmin(losses))
    return "early stop" if idle >= record.get("patience", 3) else "time budget"


def table(report):
    lines = [f"On {report['crops']} centre crops (128x128) of `{report['folder']}`. CR: 49,152 "
             "bytes of 8-bit RGB over the bytes stored; ms: encode + decode per image.", "",
             "| model | epochs | AE PSNR | AE SSIM | AE CR (floats, zlib) | AE CR (8-bit, rANS) "
             "| AE ms | JPEG q | JPEG PSNR | JPEG SSIM | JPEG CR | JPEG ms | aedge q | "
             "aedge PSNR | aedge SSIM | aedge CR | aedge ms | paper: AE SSIM, PSNR, CR |",
             "|" + "---|" * 18]
    for r in report["results"]:
        a, j, o, t, p = r["autoencoder"], r["jpeg"], r["aedge"], r["training"], r["published"]
        published = ", ".join(str(p[k]) for k in ("ssim", "psnr", "cr") if k in p)
        epochs = str(t["epochs_run"]) + (f" ({t['stopped_by']})" if t["stopped_by"] else "")
        lines.append(
            f"| {r['arch']} | {epochs} | "
            f"{a['psnr']:.2f} | {a['ssim']:.3f} | {a['cr_float']:.2f} | {a['cr_coded']:.2f} "
            f"({a['psnr_coded']:.2f} dB) | {a['ms']:.1f} | {j['quality']} | {j['psnr']:.2f} | "
            f"{j['ssim']:.3f} | {j['cr']:.2f} | {j['ms']:.2f} | {o['quality']} | "
            f"{o['psnr']:.2f} | {o['ssim']:.3f} | {o['cr']:.2f} | {o['ms']:.1f} | "
            f"{published} |")
    notes = {r["training"]["note"] for r in report["results"] if r["training"]["note"]}
    weights = {tuple(r["training"]["loss_weights"]) for r in report["results"]}
    lines += ["", "Loss weights (perceptual, SSIM, MSE): " +
              "; ".join(", ".join(f"{w:.3g}" for w in ws) for ws in sorted(weights)) + "."]
    lines += [f"{n[0].upper()}{n[1:]}." for n in sorted(notes)]
    return "\n".join(lines) + "\n"


def figure(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    archs = [r["arch"] for r in report["results"]]
    x = np.arange(len(archs))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    panels = (("PSNR (dB)", "psnr", "psnr", "psnr"), ("SSIM", "ssim", "ssim", "ssim"),
              ("compression ratio", "cr_float", "cr", "cr"), ("ms per image", "ms", "ms", "ms"))
    for ax, (title, ak, jk, ok) in zip(axes, panels):
        ax.bar(x - 0.27, [r["autoencoder"][ak] for r in report["results"]], 0.27,
               label="autoencoder", color="#ff7f0e")
        ax.bar(x, [r["jpeg"][jk] for r in report["results"]], 0.27, label="JPEG", color="#1f77b4")
        ax.bar(x + 0.27, [r["aedge"][ok] for r in report["results"]], 0.27, label="aedge",
               color="#d62728")
        ax.set_title(title)
        ax.set_xticks(x, [f"{a}\nJPEG q{r['jpeg']['quality']}" for a, r in
                          zip(archs, report["results"])], fontsize=8)
        if ok == "ms":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="images whose 128x128 centre crops are measured")
    parser.add_argument("--runs", default="runs", help="where runs/paper-N were trained")
    parser.add_argument("--train-data", required=True, help="photos for the latent tables")
    parser.add_argument("-o", "--out", default="bench-results/paper")
    parser.add_argument("--readme", help="put the table and figure between this file's paper "
                                         "markers")
    args = parser.parse_args(argv)
    report = evaluate(args.folder, args.runs, args.train_data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper.json").write_text(json.dumps(report, indent=1))
    (out / "table.md").write_text(table(report))
    figure(report, out / "figure.png")
    print(table(report))
    if args.readme:
        replace_between(Path(args.readme), MARKERS, f"{table(report)}\n![the paper's Figure "
                        f"14, remade]({out / 'figure.png'})\n")


if __name__ == "__main__":
    main()
