"""The `aedge` command. Exit codes: 0 success, 1 an input could not be processed, 2 bad usage."""
import json
import sys
from pathlib import Path

import click

from aedge import bench, bitstream, images, modelfile, registry
from aedge.errors import AedgeError
from aedge.files import atomic_write

STDIO = "-"


def _read_input(name):
    if name == STDIO:
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as e:
        raise AedgeError(f"cannot read {name}: {e.strerror}") from None


def _write_output(name, data, force):
    if name == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(name, data, force)


def _outputs(inputs, output, suffix):
    """Pairs each input with its output: beside the input, in the folder -o names when there
    are several inputs, or -o itself for one input."""
    if output is not None and len(inputs) == 1:
        return [(inputs[0], output)]
    if STDIO in inputs:
        raise click.UsageError("standard input goes alone, with -o (- for standard output)")
    for i in inputs:
        if Path(i).name in ("", ".", ".."):
            raise click.UsageError(f"{i} is a folder, not an image")
    if output is None:
        return [(i, str(Path(i).with_suffix(suffix))) for i in inputs]
    folder = Path(output)
    if not folder.is_dir():
        raise click.UsageError("with several inputs, -o must name an existing folder")
    targets = [str(folder / Path(i).with_suffix(suffix).name) for i in inputs]
    if len(set(targets)) < len(targets):
        raise click.UsageError("two inputs would write the same file in the output folder")
    return list(zip(inputs, targets))


def _run_all(pairs, work, label):
    """Runs work(input, output) for each pair; a failure is reported and the rest go on."""
    failures = 0
    show_bar = len(pairs) > 1 and sys.stderr.isatty()
    with click.progressbar(pairs, label=label, file=sys.stderr if show_bar else _Null()) as bar:
        for source, target in bar:
            try:
                work(source, target)
            except AedgeError as e:
                failures += 1
                click.echo(f"aedge: {e}" if source in str(e) else f"aedge: {source}: {e}",
                           err=True)
    if failures:
        sys.exit(1)


class _Null:
    def write(self, _):
        pass

    def flush(self):
        pass

    def isatty(self):
        return False


def variant_options(command):
    """--variant, and --float as its shorthand; both give the `variant` argument."""
    def pick(ctx, param, value):
        if value:
            if ctx.params.get("variant") not in (None, "float32"):
                raise click.UsageError("give --variant or --float, not both")
            ctx.params["variant"] = "float32"
        return value
    command = click.option(
        "--float", "use_float", is_flag=True, expose_value=False, callback=pick,
        help="Shorthand for --variant float32.")(command)
    return click.option(
        "--variant", type=click.Choice(modelfile.VARIANTS), is_eager=True,
        help="Which of the model's networks to run (default: the first it has of "
             f"{', '.join(modelfile.VARIANTS)}).")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aedge")
def main():
    """Learned image compression for small CPU devices.

    \b
    aedge compress photo.png            -> photo.aei
    aedge decompress photo.aei          -> photo.png
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (- for stdout), or folder for several inputs.")
@click.option("-q", "--quality", type=click.IntRange(1, 100),
              help="1 (smallest files) to 100 (best quality); the default gives about the PSNR "
                   "of JPEG's default, quality 75.")
@click.option("--model", type=click.Path(dir_okay=False), help="Use this .aem model file.")
@variant_options
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
def compress(inputs, output, quality, model, variant, force):
    """Compress images (PNG, JPEG, WebP, TIFF; - for stdin) to .aei files."""
    def work(source, target):
        array = images.load(_read_input(source), source)
        codec = registry.load(model=model, variant=variant)
        _write_output(target, codec.compress(array, quality), force)
    _guard(lambda: _run_all(_outputs(inputs, output, ".aei"), work, "compressing"))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output",
              help="Output image (- for PNG on stdout), or folder for several inputs. "
                   "The suffix picks the format: .png (default), .jpg, .webp, ...")
@click.option("--model", type=click.Path(dir_okay=False),
              help="The .aem model that made the files (shipped models are found by themselves).")
@variant_options
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
def decompress(inputs, output, model, variant, force):
    """Decompress .aei files (- for stdin) to images."""
    def work(source, target):
        data = _read_input(source)
        codec = registry.codec_for(data, model, variant)
        suffix = ".png" if target == STDIO else Path(target).suffix or ".png"
        _write_output(target, images.encode(codec.decompress(data), suffix), force)
    _guard(lambda: _run_all(_outputs(inputs, output, ".png"), work, "decompressing"))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
def info(inputs):
    """Describe .aei files: size, bits per pixel, the model that made them."""
    def work(source, _):
        data = _read_input(source)
        header, _ = bitstream.parse(data)
        try:
            model = registry.find_by_identity(header.model_id).name
        except AedgeError:
            model = "not installed"
        bpp = 8 * len(data) / (header.width * header.height)
        click.echo(f"{source}: aedge format {bitstream.VERSION}, {header.width}x{header.height} "
                   f"{header.mode}, quality {header.quality}, {len(data)} bytes, {bpp:.3f} bpp, "
                   f"model {header.model_id.hex()} ({model})")
    _guard(lambda: _run_all([(i, None) for i in inputs], work, "reading"))


@main.command()
def models():
    """List the models aedge can find."""
    for path in registry.model_paths():
        try:
            m = registry.read_model(path)
        except AedgeError as e:
            click.echo(f"aedge: {e}", err=True)
            continue
        click.echo(f"{path}: {m.name}, {m.manifest.get('architecture')}, "
                   f"identity {m.identity.hex()}")


def _guard(run):
    """Keeps tracebacks away from users: every failure they can cause is one line."""
    try:
        run()
    except AedgeError as e:
        click.echo(f"aedge: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


@main.command(name="bench")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", default="bench-results", show_default=True,
              type=click.Path(file_okay=False), help="Folder for bench.json and bench.md.")
@click.option("-q", "--quality", "qualities", type=click.IntRange(1, 100), multiple=True,
              help=f"aedge qualities to run (repeatable; default: "
                   f"{' '.join(map(str, bench.AEDGE_QUALITIES))}).")
@click.option("--model", type=click.Path(dir_okay=False), help="Bench this .aem model file.")
@click.option("--codec", "codecs", type=click.Choice(sorted(bench.QUALITIES)), multiple=True,
              help="Codecs to compare with (repeatable; default: all).")
@click.option("--limit", type=int, help="Only the first N images.")
@variant_options
def bench_command(folder, output, qualities, model, codecs, limit, variant):
    """Compare aedge with JPEG, WebP and AVIF on a folder of images."""
    def work():
        report = bench.run(folder, qualities or None, codecs or tuple(bench.QUALITIES), limit,
                           variant, progress=sys.stderr, model=model)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "bench.json", json.dumps(report, indent=1).encode(), force=True)
        table = bench.markdown(report)
        atomic_write(out / "bench.md", table.encode(), force=True)
        click.echo(table)
    _guard(work)
