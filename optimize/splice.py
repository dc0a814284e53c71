"""One variant's networks from a model file into another of the same identity (make splice).

make quantize from narrowed weights (make narrow) gives a file whose networks are all narrowed,
its int8 ones only calibrated; the shipped file's int8 networks had 9,200 steps of
quantization-aware training on the wide model. This puts the narrowed int8-dynamic networks
(the default, the ones the 120 ms is about) into the shipped file and keeps the rest. Both
files share the tables, so every file either makes decodes with the other, and the result
keeps the target's identity; the notes say which variants are narrowed, and to what.
"""
import click

from aedge import modelfile
from aedge.errors import AedgeError
from aedge.optimize.report import narrowed_filters


def splice(source, target, variant):
    """(networks, notes) of `target` with `source`'s `variant` networks, for write_variant."""
    if source.identity != target.identity:
        raise click.ClickException(
            f"{source.path} and {target.path} are different models (identity "
            f"{source.identity.hex()[:16]} against {target.identity.hex()[:16]}): their files "
            "would not decode with each other's networks")
    for model in (source, target):
        if variant not in model.variants:
            raise click.ClickException(f"{model.path} has no {variant} networks "
                                       f"(it has {', '.join(model.variants)})")
    networks = target.networks()
    networks.update({(p, variant): source.network(p, variant) for p in modelfile.NETWORKS})

    notes = dict(target.manifest.get("optimization", {}))
    came = source.manifest.get("optimization", {})
    notes[variant] = came.get(variant, "converted")
    kept = notes.pop("narrowed", {})
    narrowed = [v for v in kept.get("variants", ()) if v != variant]
    filters = kept.get("filters") if narrowed else None
    incoming = narrowed_filters(source.manifest, variant)
    if incoming is not None:
        if filters is not None and filters != incoming:
            raise click.ClickException(
                f"{target.path}'s {', '.join(narrowed)} networks are narrowed to {filters}, "
                f"{source.path}'s {variant} ones to {incoming}: one file gives one set of "
                "widths")
        narrowed.append(variant)
        filters = incoming
    if narrowed:
        notes["narrowed"] = {"variants": sorted(narrowed), "filters": filters}
    return networks, notes


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("--into", "target_path", default="models/aedge.aem", show_default=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The model file whose other networks, tables and notes are kept.")
@click.option("--variant", type=click.Choice(modelfile.VARIANTS), default="int8-dynamic",
              show_default=True, help="Which of SOURCE's networks (g_a, h_a and g_s) to take.")
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False),
              help="Where to write the result [default: over --into].")
def main(source, target_path, variant, out_path):
    """Put SOURCE's VARIANT networks into the model file --into (make splice)."""
    from aedge.optimize.variants import write_variant

    out = out_path or target_path
    try:
        target = modelfile.read(target_path)
        networks, notes = splice(modelfile.read(source), target, variant)
        write_variant(out, target, networks, notes)  # atomically: a failure leaves it be
    except AedgeError as e:  # unreadable files and members, an unwritable output
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {out}: {source}'s {variant} networks, {target_path}'s others")


if __name__ == "__main__":
    main(prog_name="python -m aedge.optimize.splice")
