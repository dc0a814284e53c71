"""The model card (models/aedge.md) and the README's numbers, from the model's manifest, a bench
report and the training log: never typed by hand.

`python -m aedge.optimize.cards bench-results/bench.json --history models/hyper/history.jsonl`
"""
import json
from pathlib import Path

import click

from aedge import modelfile

MODELS = Path(__file__).resolve().parent.parent / "models"
BENCH = ("<!-- bench:start -->", "<!-- bench:end -->")
TRAINING = ("<!-- training:start -->", "<!-- training:end -->")


def _calls(training):
    lines = []
    for call in training.get("calls", []):
        frozen = f", {' and '.join(call['frozen'])} frozen" if call.get("frozen") else ""
        dropped = (f", a tenth of that from step {call['lr_dropped_at']}"
                   if call.get("lr_dropped_at") else "")
        widened = (f", g_a and g_s widened from {_widths(call['widened_from'])} to "
                   f"{_widths(call['filters'])} channels at its start"
                   if call.get("widened_from") else "")
        lines.append(f"- steps {call.get('started_step')} to {call.get('ended_step')}: "
                     f"{call.get('batch')} crops of {call.get('crop')}x{call.get('crop')} per "
                     f"step, Adam at {call.get('lr')} (transforms) and {call.get('lr_new')} "
                     f"(the rest){dropped}{frozen}{widened}, on {call.get('device')}")
    return lines


def _widths(filters):
    return ", ".join(map(str, filters))


def _fit_lines(training):
    fit = training.get("hyperprior_fit")
    if not fit:
        return []
    lines = [f"Then the hyperprior alone ({', '.join(fit.get('reinit', [])) or 'as it was'} "
             f"started afresh), on rate, on cached latents of the fixed g_a: {fit.get('steps')} "
             f"steps, {fit.get('crops')} latent crops of 16x16:"]
    for call in fit.get("calls", []):
        lines.append(f"- steps {call.get('started_step')} to {call.get('ended_step')}: "
                     f"{call.get('batch')} crops per step, Adam from {call.get('lr')} down a "
                     f"cosine to a tenth, z's bits from {call.get('z_rate_weight')} of their "
                     "price")
    return lines + [""]


def _narrowed(manifest, variant):
    """The network variant's widths where make narrow narrowed them, else nothing: the
    architecture line gives the trained model's."""
    from aedge.optimize.report import narrowed_filters

    filters = narrowed_filters(manifest, variant)
    return "" if filters is None else (f"; g_a and g_s narrowed to {_widths(filters)} channels "
                                       "in the trained model's latent space (make narrow)")


def card(model, report):
    from aedge.bench import cores_of

    m = model.manifest
    t = m.get("training", {})
    lines = [f"# {m['name']}", "",
             f"- File: `{model.path.name}`, identity `{model.identity.hex()}`"
             + "".join(f" (also decodes files naming `{h}`, another identity of the same "
                       "tables)" for h in m.get("also_decodes", [])),
             f"- Architecture: {m['architecture']} (Minnen et al. 2018) on the transforms of "
             f"Ballé et al. 2018: 4 strided 4x4 convolutions with GDN"
             + (f" ({_widths(t['filters'])} channels from the highest resolution down)"
                if t.get("filters") else "")
             + ", mirrored by sub-pixel "
             f"convolutions with inverse GDN; {m['latent_channels']} latent channels at "
             f"1/{m['downsampling']} resolution, {m['hyper_channels']} at 1/64; h_s in exact "
             "integer arithmetic",
             f"- One model for every quality 1..100: gain vectors (Cui et al. 2021) at "
             f"{len(m['lambdas'])} rate anchors, lambda {m['lambdas'][0]} to "
             f"{m['lambdas'][-1]}; qualities in between interpolate them"
             + (f", and the lowest {sum(t < 0 for t in m['quality_anchor_positions'])} lie "
                f"below the lowest anchor (down to {-min(m['quality_anchor_positions'])} "
                "anchors), their gains extrapolated"
                if min(m["quality_anchor_positions"]) < 0 else "")
             + f"; default quality {m['default_quality']}",
             "- Networks (TFLite): int8-dynamic (int8 weights, activations quantized at run "
             "time; the default"
             + _narrowed(m, "int8-dynamic")
             + "".join(f"; {v}" for v in [m.get("optimization", {}).get("int8-dynamic")] if v)
             + "), full-integer int8 ("
             + m.get("optimization", {}).get("int8", "post-training calibration")
             + _narrowed(m, "int8") + "), float32" + ("" if "float32" in model.variants else
                               " (in a file of its own, "
                               f"{modelfile.float32_path(model.path).name}: make export, "
                               "make quantize)")
             + (", int16x8 (int8 weights, 16-bit activations; "
                + m.get("optimization", {}).get("int16x8", "post-training calibration") + ")"
                if "int16x8" in model.variants else ""), "",
             "## Training",
             f"{t.get('steps')} steps, {t.get('gigapixels', 0):.2f} gigapixels of random crops, "
             "every crop at a random rate anchor:", *_calls(t), "", *_fit_lines(t),
             "The training photos mix research-only sets (BSDS500, ImageNet samples, Sun & Hays) "
             "with commercially usable ones: treat this model as research-only.", ""]
    points = [s for s in report["summary"] if s["codec"] == "aedge"] if report else []
    if points:
        lines += [f"## `{Path(report['folder']).name}` ({points[0]['images']} images, "
                  f"{report['variant']} networks, "
                  f"{cores_of(report['machine'])})", "",
                  "| quality | bpp | PSNR dB | SSIM | MS-SSIM | encode ms | decode ms |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {p['q']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ssim']:.4f} | "
                  f"{p['ms_ssim']:.4f} | {p['encode_ms']:.0f} | {p['decode_ms']:.0f} |"
                  for p in points]
        lines += ["", "Measured with `aedge bench` (`make bench`).", ""]
    return "\n".join(lines)


def training_table(history, lambdas, jpeg=None):
    """Held-out bpp and PSNR per anchor against training gigapixels, from jax_train's log, and
    the BD-rate of each logged curve against JPEG on the same crops."""
    from aedge.metrics import bd_rate

    evals = [json.loads(line) for line in Path(history).read_text().splitlines()
             if "val_psnr" in line]
    show = [0, len(lambdas) // 2, len(lambdas) - 1]
    head = " | ".join(f"lambda {lambdas[i]}: bpp, PSNR" for i in show)
    lines = ["Held-out crops (the 3% of the training folder that training never sees, 256x256 "
             "centre crops), real rounding, rates from the model's likelihoods; BD-rate on PSNR "
             "against JPEG (Pillow's defaults) on the same crops:", "",
             f"| step | gigapixels | {head} | BD-rate vs JPEG |",
             "|---|---|" + "---|" * (len(show) + 1)]
    seen = set()
    for e in evals:
        # A phase that trains without images (the hyperprior fit) labels its row.
        step = f"{e['step']} {e['label']}" if "label" in e else str(e["step"])
        if step in seen:
            continue
        seen.add(step)
        cells = " | ".join(f"{e['val_bpp'][i]:.3f}, {e['val_psnr'][i]:.2f}" for i in show)
        bd = "n/a"
        if jpeg:
            try:
                bd = f"{bd_rate([p[1] for p in jpeg], [p[2] for p in jpeg], e['val_bpp'], e['val_psnr']):+.1f}%"
            except ValueError:
                bd = "no overlap"
        lines.append(f"| {step} | {e['gigapixels']:.2f} | {cells} | {bd} |")
    return "\n".join(lines) + "\n"


def replace_between(path, markers, text):
    """Puts text between the file's markers, so its numbers are the measured ones."""
    content = path.read_text()
    head, rest = content.split(markers[0], 1)
    _, tail = rest.split(markers[1], 1)
    path.write_text(f"{head}{markers[0]}\n{text}{markers[1]}{tail}")


@click.command()
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option("--also", "others", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="More bench reports for the README (other network variants); repeatable.")
@click.option("--history", type=click.Path(exists=True, dir_okay=False),
              help="jax_train's history.jsonl: the README's training curve.")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False),
              help="Also put the tables into this README, between its markers.")
def main(report, others, history, readme):
    """Write models/aedge.md, with its numbers from REPORT."""
    from aedge.bench import markdown

    report = json.loads(Path(report).read_text())
    model = modelfile.read(MODELS / "aedge.aem")
    if readme:
        tables = markdown(report)
        for other in others:
            tables += "\n" + markdown(json.loads(Path(other).read_text()))
        replace_between(Path(readme), BENCH, tables)
        if history:
            meta = json.loads((Path(history).parent / "train.json").read_text())
            replace_between(Path(readme), TRAINING, training_table(
                history, model.manifest["lambdas"], meta.get("val_jpeg")))
        click.echo(f"updated {readme}")
    target = MODELS / "aedge.md"
    target.write_text(card(model, report))
    click.echo(f"wrote {target}")


if __name__ == "__main__":
    main()
