"""The `aedge` command. Exit codes: 0 success, 1 an input could not be processed, 2 bad usage."""
import contextlib
import functools
import json
import os
import sys
import traceback
from pathlib import Path

import click
import numpy as np

from aedge import bench, bitstream, images, modelfile, registry
from aedge.errors import AedgeError
from aedge.files import atomic_write, atomic_writer

STDIO = "-"
# The traceback behind any failure, for bug reports: --debug or AEDGE_DEBUG=1.
_DEBUG = {"on": bool(os.environ.get("AEDGE_DEBUG"))}


def _read_input(name):
    if name == STDIO:
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as e:
        raise AedgeError(f"cannot read {name}: {e.strerror}") from None


@contextlib.contextmanager
def _binary_output(name, force):
    """A binary file object for the output: standard output (never a terminal), or a
    temporary file renamed over the target when all went well."""
    if name == STDIO:
        if sys.stdout.isatty():
            raise AedgeError("refusing to write binary data to a terminal: redirect standard "
                             "output, or give -o FILE")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        with atomic_writer(name, force) as f:
            yield f


def _outputs(inputs, output, suffix):
    """Pairs each input with its output, as cp would: beside the input; into -o's folder when
    -o is a folder or ends in / (created then); -o itself for one input."""
    if STDIO in inputs and len(inputs) > 1:
        raise click.UsageError("standard input (-) goes alone")
    if output is None:
        if inputs == (STDIO,):
            return [(STDIO, STDIO)]
        pairs = [(i, str(Path(i).with_suffix(suffix))) for i in inputs]
    elif output == STDIO:
        if len(inputs) > 1:
            raise click.UsageError("-o - (standard output) takes one input")
        pairs = [(inputs[0], STDIO)]
    elif output.endswith(("/", os.sep)) or Path(output).is_dir():
        if STDIO in inputs:
            raise click.UsageError("standard input has no name: give -o a file name")
        folder = Path(output)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AedgeError(f"cannot make the folder {output}: {e.strerror}") from None
        pairs = [(i, str(folder / Path(i).with_suffix(suffix).name)) for i in inputs]
        if len({t for _, t in pairs}) < len(pairs):
            raise click.UsageError("two inputs would write the same file in the output folder")
    elif len(inputs) > 1:
        raise click.UsageError("with several inputs, -o must name a folder (end it with / to "
                               "have it made)")
    else:
        pairs = [(inputs[0], output)]
    for source, target in pairs:
        if STDIO not in (source, target) and _same_file(source, target):
            raise AedgeError(f"{source}: the output would overwrite the input")
    return pairs


def _same_file(a, b):
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _run_all(pairs, work, label):
    """Runs work(input, output) for each pair; a failure is reported in one line and the rest
    go on."""
    failures = 0
    show_bar = len(pairs) > 1 and sys.stderr.isatty()
    with click.progressbar(pairs, label=label, file=sys.stderr if show_bar else _Null()) as bar:
        for source, target in bar:
            try:
                work(source, target, None if show_bar else _tile_progress(label))
            except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
                raise
            except Exception as e:
                failures += 1
                _report(e, source)
    if failures:
        sys.exit(1)


def _report(error, source=None):
    """One line on standard error, whatever went wrong; the traceback too with --debug."""
    if _DEBUG["on"]:
        traceback.print_exception(error)
    if isinstance(error, AedgeError):
        message = str(error)
    elif isinstance(error, MemoryError):
        message = "out of memory"
    else:
        message = f"unexpected {type(error).__name__}: {error} (aedge --debug shows where)"
    message = " ".join(message.split())
    if source is not None and source not in message:
        message = f"{source}: {message}"
    click.echo(f"aedge: {message}", err=True)


def _tile_progress(label):
    """A progress callback for one long image: a bar on a terminal, when it has tiles."""
    if not sys.stderr.isatty():
        return None
    bar = {}

    def update(done, total):
        if total < 2:
            return
        if "bar" not in bar:
            bar["bar"] = click.progressbar(length=total, label=label, file=sys.stderr)
            bar["bar"].__enter__()
        bar["bar"].update(done - bar["bar"].pos)
        if done == total:
            bar["bar"].__exit__(None, None, None)
    return update


class _Null:
    def write(self, _):
        pass

    def flush(self):
        pass

    def isatty(self):
        return False


def variant_options(command, decoding=False):
    """--variant, and --float as its shorthand; both give the `variant` argument."""
    def pick(ctx, param, value):
        if value:
            if ctx.params.get("variant") not in (None, "float32"):
                raise click.UsageError("give --variant or --float, not both")
            ctx.params["variant"] = "float32"
        return value
    command = click.option(
        "--float", "use_float", is_flag=True, expose_value=False, callback=pick,
        help="Shorthand for --variant float32 (networks that ship in a file of their own: "
             "--model aedge-float32.aem).")(command)
    return click.option(
        "--variant", type=click.Choice(modelfile.VARIANTS), is_eager=True,
        help=f"Which of the model's networks {'decode' if decoding else 'to run'} (default: "
             + ("the ones that encoded the file, as its header says, where the model has "
                "them; else " if decoding else "")
             + f"the first it has of {', '.join(modelfile.VARIANTS)}).")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aedge")
@click.option("--debug", is_flag=True, help="Show the traceback behind an error (as does "
              "AEDGE_DEBUG=1).")
def main(debug):
    """Learned image compression for small CPU devices.

    \b
    aedge compress photo.png            -> photo.aei
    aedge compress *.png -o out/        -> out/*.aei
    aedge decompress photo.aei          -> photo.png
    """
    _DEBUG["on"] = _DEBUG["on"] or debug


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (- for stdout), or folder for several inputs.")
@click.option("-q", "--quality", type=click.IntRange(1, 100),
              help="1 (smallest files) to 100 (best quality); the default gives about the PSNR "
                   "of JPEG's default, quality 75.")
@click.option("--model", type=click.Path(dir_okay=False), help="Use this .aem model file.")
@variant_options
@click.option("--max-bytes", type=click.IntRange(1), help="The best quality whose file fits "
              "in this many bytes (instead of -q), as cwebp's -size.")
@click.option("--target-bpp", type=click.FloatRange(0, min_open=True),
              help="The same as --max-bytes, in bits per pixel of each image.")
@click.option("--frame", type=click.IntRange(0), help="Which frame of an animation or "
              "multi-picture file to code (default: the first).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
def compress(inputs, output, quality, model, variant, max_bytes, target_bpp, frame, force):
    """Compress images (any Pillow reads; - for stdin) to .aei files.

    Alpha and the colour profile are kept. -o names the output file, or a folder (an existing
    one, or one ending in / that is made) for the .aei files of several inputs."""
    def work(source, target, progress):
        picture = images.load(_read_input(source), source, frame)
        for note in picture.notes:
            click.echo(f"aedge: note: {source}: {note}", err=True)
        codec = registry.load(model=model, variant=variant)
        size = max_bytes
        if target_bpp is not None:
            size = max(1, int(target_bpp * picture.array.shape[0] * picture.array.shape[1] / 8))
        data = codec.compress(picture.array, quality, icc=picture.icc, progress=progress,
                              max_bytes=size)
        with _binary_output(target, force) as out:
            out.write(data)
    if sum(v is not None for v in (quality, max_bytes, target_bpp)) > 1:
        raise click.UsageError("give one of -q, --max-bytes and --target-bpp")
    _guard(lambda: _run_all(_outputs(inputs, output, ".aei"), work, "compressing"))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output",
              help="Output image (- for PNG on stdout), or folder for several inputs. "
                   "The suffix picks the format: .png (default), .jpg, .webp, ...")
@click.option("--model", type=click.Path(dir_okay=False),
              help="The .aem model that made the files (shipped models are found by themselves).")
@functools.partial(variant_options, decoding=True)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
def decompress(inputs, output, model, variant, force):
    """Decompress .aei files (- for stdin) to images."""
    def work(source, target, progress):
        data = _read_input(source)
        suffix = ".png" if target == STDIO else Path(target).suffix or ".png"
        images.save_format(suffix)  # an unwritable suffix fails before any decoding
        codec = registry.codec_for(data, model, variant)
        file, bands = codec.decompress_bands(data, progress)
        if suffix.lower() == ".png":
            # Streamed band by band: a large image is never held whole.
            header = file.header
            channels = (1 if header.mode == "L" else 3) + bool(file.alpha)
            with _binary_output(target, force) as out:
                writer = images.PngWriter(out, header.width, header.height, channels, file.icc)
                for _, band in bands:
                    writer.write(band)
                writer.close()
        else:
            array = np.concatenate([band for _, band in bands])
            encoded = images.encode(array, suffix, file.icc)
            with _binary_output(target, force) as out:
                out.write(encoded)
    _guard(lambda: _run_all(_outputs(inputs, output, ".png"), work, "decompressing"))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
def info(inputs):
    """Describe .aei files: size, bits per pixel, the model that made them."""
    def work(source, _, __):
        data = _read_input(source)
        file = bitstream.parse(data)
        header = file.header
        try:
            model = registry.find_by_identity(header.model_id, header.networks).name
        except AedgeError:
            model = "not installed"
        bpp = 8 * len(data) / (header.width * header.height)
        extras = "".join([" + alpha" if file.alpha else "",
                          ", colour profile" if file.icc else ""])
        networks = f", {header.networks} networks" if header.networks else ""
        click.echo(f"{source}: aedge format {data[4]}, {header.width}x{header.height} "
                   f"{header.mode}{extras}, quality {header.quality}{networks}, {len(data)} bytes, "
                   f"{bpp:.3f} bpp, {len(file.tiles)} tile{'s' * (len(file.tiles) > 1)}, "
                   f"model {header.model_id.hex()} ({model})")
    _guard(lambda: _run_all([(i, None) for i in inputs], work, "reading"))


@main.command()
def models():
    """List the models aedge can find (a broken one is reported, and hides no other)."""
    def work(path, _, __):
        m = registry.read_model(path)
        click.echo(f"{path}: {m.name}, {m.manifest.get('architecture')}, "
                   f"identity {m.identity.hex()}")
    _guard(lambda: _run_all([(str(p), None) for p in registry.model_paths()], work,
                            "reading"))


def _guard(run):
    """Keeps tracebacks away from users: every failure is one line and exit status 1 (usage
    errors stay click's, with status 2)."""
    try:
        run()
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # Whoever read our output has gone: say nothing more to them.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as e:
        _report(e)
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
@click.option("--runs", type=click.IntRange(1, 100), default=bench.RUNS, show_default=True,
              help="Encodings and decodings per image and quality; their median time counts.")
@variant_options
def bench_command(folder, output, qualities, model, codecs, limit, runs, variant):
    """Compare aedge with JPEG, WebP and AVIF on a folder of images."""
    def work():
        report = bench.run(folder, qualities or None, codecs or tuple(bench.QUALITIES), limit,
                           variant, progress=sys.stderr, model=model, runs=runs)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "bench.json", json.dumps(report, indent=1).encode(), force=True)
        table = bench.markdown(report)
        atomic_write(out / "bench.md", table.encode(), force=True)
        click.echo(table)
    _guard(work)


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False), help="The HTML file to write (- for stdout).")
@click.option("-q", "--quality", "qualities", type=click.IntRange(1, 100), multiple=True,
              help="aedge qualities to run (repeatable; default: as aedge bench).")
@click.option("--model", type=click.Path(dir_okay=False), help="Report on this .aem model file.")
@click.option("--codec", "codecs", type=click.Choice(sorted(bench.QUALITIES)), multiple=True,
              help="Codecs to compare with (repeatable; default: all).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N images.")
@click.option("--crops", type=click.IntRange(0), default=3, show_default=True,
              help="Images shown as side-by-side details.")
@click.option("--crop-quality", type=click.IntRange(1, 100), default=30, show_default=True,
              help="aedge's quality in the details; the other codecs match its file size.")
@click.option("--published", is_flag=True,
              help="Also plot CompressAI's published Kodak points (meaningful on Kodak only).")
@variant_options
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing report.")
def report(folder, output, qualities, model, codecs, limit, crops, crop_quality, published,
           variant, force):
    """One self-contained HTML page: rate-distortion plots against JPEG, WebP and AVIF, the
    same detail from each codec at about the same size, per-image tables."""
    from aedge import report as report_module

    def work():
        page, _ = report_module.build(folder, qualities or None,
                                      codecs or tuple(bench.QUALITIES), limit, variant, model,
                                      published, crops, progress=sys.stderr,
                                      crop_quality=crop_quality)
        if output == STDIO:
            sys.stdout.write(page)
        else:
            atomic_write(output, page.encode(), force)
            click.echo(f"wrote {output}", err=True)
    _guard(work)
