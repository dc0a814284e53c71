"""Model cards (models/qN.md) from the model manifests and a bench report: never typed by hand.

`python -m aedge.optimize.cards bench-results/bench.json`
"""
import json
from pathlib import Path

import click

from aedge import modelfile

MODELS = Path(__file__).resolve().parent.parent / "models"


def _recipe(training, indent=""):
    lines = [f"{indent}- lambda {training.get('lmbda')}, {training.get('steps')} steps of "
             f"{training.get('batch')} random {training.get('crop')}x{training.get('crop')} "
             f"crops, Adam at {training.get('lr')}, on {training.get('train_images')} images "
             f"of `{training.get('data')}`"
             + (f", with {training['trained_with']}" if "trained_with" in training else "")]
    if "fine_tuned_from" in training:
        lines.append(f"{indent}- starting from a model trained as follows:")
        lines += _recipe(training["fine_tuned_from"], indent + "  ")
    return lines


def card(model, point, report):
    m = model.manifest
    lines = [f"# {m['name']}: aedge quality level {m['level']}", "",
             f"- File: `{model.path.name}`, identity `{model.identity.hex()}`",
             f"- Architecture: {m['architecture']} (Ballé et al. 2018): 4 strided 4x4 "
             f"convolutions with GDN, mirrored by sub-pixel convolutions with inverse GDN; "
             f"{m['latent_channels']} latent channels at 1/{m['downsampling']} resolution, of "
             f"which {m['coded_channels']} carry information",
             "- Networks (TFLite): int8-dynamic (int8 weights, activations quantized at run "
             "time; the default), full-integer int8 (post-training quantized), float32", "",
             "## Training", *_recipe(m["training"]), "",
             "The training photos mix research-only sets (BSDS500, ImageNet samples, Sun & Hays) "
             "with commercially usable ones: treat this model as research-only.", ""]
    if point:
        lines += [f"## Kodak ({point['images']} images, {report['variant']} networks, "
                  f"{report['machine']['cores']} cores)", "",
                  "| bpp | PSNR dB | SSIM | MS-SSIM | encode ms | decode ms |",
                  "|---|---|---|---|---|---|",
                  f"| {point['bpp']:.3f} | {point['psnr']:.2f} | {point['ssim']:.4f} | "
                  f"{point['ms_ssim']:.4f} | {point['encode_ms']:.0f} | "
                  f"{point['decode_ms']:.0f} |", "",
                  "Measured with `aedge bench` (`make bench`).", ""]
    return "\n".join(lines)


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(readme, tables):
    """Puts the bench tables between the README's markers, so its numbers are the measured ones."""
    text = readme.read_text()
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{tables}{README_END}{tail}")


@click.command()
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option("--also", "others", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="More bench reports for the README (other network variants); repeatable.")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False),
              help="Also put the bench tables into this README, between its bench markers.")
def main(report, others, readme):
    """Write models/qN.md for every shipped model, with its numbers from REPORT."""
    from aedge.bench import markdown

    report = json.loads(Path(report).read_text())
    if readme:
        tables = markdown(report)
        for other in others:
            tables += "\n" + markdown(json.loads(Path(other).read_text()))
        update_readme(Path(readme), tables)
        click.echo(f"updated {readme}")
    points = {s["q"]: s for s in report["summary"] if s["codec"] == "aedge"}
    for path in sorted(MODELS.glob("*.aem")):
        model = modelfile.read(path)
        target = path.with_suffix(".md")
        target.write_text(card(model, points.get(model.manifest["level"]), report))
        click.echo(f"wrote {target}")


if __name__ == "__main__":
    main()
