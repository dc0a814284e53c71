"""`python -m aedge.optimize` (make quantize): the device model files, from trained weights and
the model file exported from them.

In the build folder (build/quantize):
    aedge-qat.aem       the base model, its int8 networks from quantization-aware training
    aedge-int8-decoder.aem  those int8 networks, their g_s then fine-tuned alone for PSNR in
                        dB (finetune.decibels) over the span qualities 1..100 take, still
                        through tfmot's fake quantization
    aedge-sparse50.aem  all networks pruned to 50% zeros, fine-tuned while rounding as the
                        int8-dynamic networks do; -sparse75 alike
    aedge-fast.aem      the distilled student (architecture.STUDENT_FILTERS channels per stage)
    aedge-dynamic-qat.aem  the base, its int8-dynamic networks from quantization-aware
                        training that rounds as the run-time kernels do (dynamic_qat.py)
    aedge-decoder.aem   the int8-dynamic networks chosen so far, their g_s fine-tuned alone for
                        PSNR and MS-SSIM (finetune.decibels); aedge-before-decoder.aem
                        without that, what it is compared with
    aedge-joint.aem     then g_a, h_a and g_s together, on the rate-distortion loss with
                        MS-SSIM in it (finetune.rate_distortion_msssim); aedge-before-joint.aem
                        what it is compared with
    aedge.aem           the model to ship: the base with the better int8 and int8-dynamic
                        networks, and its int16x8 ones
    aedge-float32.aem   the float32 networks, which the shipped file leaves out for its size
                        (export.write_split)
    aedge-base.aem      the base, its int8 and int16x8 networks from post-training
                        calibration and its int8-dynamic ones plainly converted (made anew:
                        the base may be a model shipped with quantization-aware networks)
    <name>/             each fine-tune's weights (.npz), log and stage.json

Every file keeps the base model's tables and so its identity (runtime/modelfile.py): a file
made with any of them decodes with any other. A fine-tune whose weights are already in the
build folder, made from the same weights on the same photos with the same settings (its
stage.json), is not run again (--fresh runs it anew).
"""
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import click
import numpy as np

from aedge.train import architecture as arch

# How the base's networks that need calibration were made (what a fine-tune may replace).
CALIBRATED = {"int8": "post-training calibration", "int16x8": "post-training calibration"}
# Quality settings the int8 networks are compared at, on held-out training crops.
CHOICE_QUALITIES = (1, 25, 50, 75, 100)
# Input channels of each network, for conversion.
INPUT_CHANNELS = {"g_a": 3, "h_a": arch.M_LATENT, "g_s": arch.M_LATENT}


def _log(message):
    click.echo(message, err=True)


def _weights(codec):
    return [v for p in ("g_a", "h_a", "g_s") for v in getattr(codec, p).weights]


def _save_weights(codec, path):
    """g_a, h_a and g_s's variables in order (the rest is the base's); their Keras names
    carry counters that differ from run to run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.npz")
    np.savez(tmp, *[v.numpy() for v in _weights(codec)])
    os.replace(tmp, path)


def _load_weights(codec, path):
    variables = _weights(codec)
    with np.load(path) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if [a.shape for a in arrays] != [tuple(v.shape) for v in variables]:
        raise click.ClickException(f"{path} does not fit this model; run with --fresh")
    for v, a in zip(variables, arrays):
        v.assign(a)


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _data_digest(data_dir):
    """The training photos by name and size: enough to tell one folder from another without
    reading them all."""
    from aedge.train.files import find_images

    root = Path(data_dir)
    listing = "\n".join(f"{Path(f).relative_to(root)} {os.path.getsize(f)}"
                         for f in find_images(root))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def write_variant(path, base, networks, notes, compression=zipfile.ZIP_DEFLATED, filters=None):
    """A model file with the base's manifest, tables and identity, and these networks; with
    `filters`, the widths of g_a and g_s where they are not the trained model's (make narrow),
    which its notes then give for every variant in it (report.filters_of)."""
    from aedge import modelfile

    manifest = {k: v for k, v in base.manifest.items()
                if k not in ("format", "format_version")}
    manifest["name"] = notes.pop("name", manifest["name"])
    if filters is not None:
        notes["narrowed"] = {"variants": sorted({v for _, v in networks}),
                             "filters": list(filters)}
    manifest["optimization"] = notes
    modelfile.write(path, manifest, networks, base.arrays, compression)


def narrowed_widths(weights, base):
    """The widths of g_a and g_s in WEIGHTS where they are narrower than the base model's
    (make narrow), else None."""
    from aedge.optimize.export import widths_of

    widths = widths_of(weights)
    trained = arch.widths(base.manifest.get("training", {}).get("filters", arch.N_FILTERS))
    return list(widths) if widths != trained else None


def _finetune(stage_dir, codec, made_from, data_dir, steps, crop, batch, lr, fresh, prepare,
              finish=None, extra_loss=None, settings=None, **how):
    """prepare(codec) -> hooks; the fine-tune; finish(codec). made_from: the weights files
    the codec starts from. Where the weights of an earlier run are in stage_dir, made from
    the same files (by content) on the same photos with the same steps, crops, learning rate
    and `settings` (a dict; all kept in stage.json), they are loaded instead of training.
    Returns the codec and how it was trained (stage.json, kept beside the weights)."""
    from aedge.optimize import finetune

    weights, record = stage_dir / "weights.npz", stage_dir / "stage.json"
    hooks = prepare(codec)
    settings = {"steps": steps, "batch": batch, "crop": crop, "learning_rate": lr,
                **(settings or {}), "made_from": [_digest(path) for path in made_from],
                "data": _data_digest(data_dir)}
    earlier = json.loads(record.read_text()) if record.is_file() else None
    if earlier is not None and any(earlier.get(k) != v for k, v in settings.items()):
        _log(f"{stage_dir.name}: its weights were made from other weights, photos or settings; "
             "training anew")
    elif weights.is_file() and earlier is not None and not fresh:
        _log(f"{stage_dir.name}: reusing {weights}")
        if finish:
            finish(codec)
        _load_weights(codec, weights)
        return codec, json.loads(record.read_text())
    stage_dir.mkdir(parents=True, exist_ok=True)
    log = stage_dir / "log.jsonl"
    log.unlink(missing_ok=True)
    _log(f"{stage_dir.name}: {steps} steps of {batch} crops of {crop} px (log: {log})")
    finetune.finetune(codec, finetune.training_batches(data_dir, crop, batch), steps, lr=lr,
                      extra_loss=extra_loss, on_step=hooks, log=log, **how)
    if finish:
        finish(codec)
    _save_weights(codec, weights)
    stage = {**settings, "training_gigapixels": round(steps * batch * crop * crop / 1e9, 3)}
    record.write_text(json.dumps(stage, indent=2))
    return codec, stage


def held_out_curve(path, variant, crops):
    """Mean bpp, PSNR and MS-SSIM of a model's `variant` networks on held-out crops, at
    CHOICE_QUALITIES: what the int8 networks are chosen on."""
    from aedge import metrics, registry

    codec = registry.load(model=path, variant=variant)
    points = []
    for q in CHOICE_QUALITIES:
        values = []
        for crop in crops:
            data = codec.compress(crop, q)
            decoded = codec.decompress(data)
            values.append((metrics.bits_per_pixel(len(data), crop.shape[1], crop.shape[0]),
                           metrics.psnr(crop, decoded), metrics.ms_ssim(crop, decoded)))
        points.append(dict(zip(("bpp", "psnr", "ms_ssim"), map(float, np.mean(values, 0)))))
    return points


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--base", "base_path", default="models/aedge.aem", show_default=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The model file exported from WEIGHTS (its tables are kept).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training photos: fine-tuning, int8 calibration, the held-out crops that "
                   "choose between the int8 networks.")
@click.option("-o", "--output", "out_dir", default="build/quantize", show_default=True,
              type=click.Path(file_okay=False), help="Build folder (models/ is never written "
                                                     "unless --ship).")
@click.option("--qat/--no-qat", default=True, show_default=True,
              help="Quantization-aware training of the int8 networks (tfmot), compared with "
                   "post-training calibration on held-out crops; the better one ships (and "
                   "then --int8-decoder-steps).")
@click.option("--dynamic-qat/--no-dynamic-qat", default=True, show_default=True,
              help="Quantization-aware training of the int8-dynamic networks (the default "
                   "ones), compared with plain conversion on held-out crops; the better ships.")
@click.option("--prune", "sparsities", type=click.FloatRange(0, 1, max_open=True),
              multiple=True, default=(0.5, 0.75),
              show_default=True, help="Target sparsity of a pruned model (repeat for several; "
                                      "0 for none).")
@click.option("--distill/--no-distill", default=True, show_default=True,
              help="A student at a third of the multiply-accumulates of g_a + g_s, "
                   "narrowest at the highest resolution (aedge-fast.aem).")
@click.option("--steps", type=click.IntRange(1), default=3000, show_default=True,
              help="Fine-tuning steps of the int8-dynamic QAT and of each pruning.")
@click.option("--int8-qat-steps", type=click.IntRange(1), default=6000, show_default=True,
              help="Fine-tuning steps of the int8 QAT (3,000 measured +5.0% against float32 "
                   "on Kodak, 6,000 +4.5%, before --int8-decoder-steps).")
@click.option("--distill-steps", type=click.IntRange(1), default=12000, show_default=True,
              help="Training steps of the student (46 minutes here; its PSNR still rose "
                   "0.2 dB over the last 2,000).")
@click.option("--decoder-steps", type=click.IntRange(0), default=1600, show_default=True,
              help="Then the int8-dynamic g_s alone, fine-tuned for PSNR + --msssim-weight x "
                   "MS-SSIM (both in dB) on crops of 256; the rate cannot change, nor any "
                   "file. It ships if nearer float32 on held-out crops, PSNR and MS-SSIM "
                   "BD-rates summed. 0: none.")
@click.option("--msssim-weight", type=click.FloatRange(0), default=3.0, show_default=True,
              help="The weight of MS-SSIM's dB against PSNR's in that fine-tune (3 came nearer "
                   "float32 on held-out crops than 1, PSNR and MS-SSIM summed).")
@click.option("--int8-decoder-steps", type=click.IntRange(0), default=3200, show_default=True,
              help="With --qat: then the QAT g_s alone, still quantization-aware, tuned as "
                   "--decoder-steps tunes the int8-dynamic one (--int8-msssim-weight, "
                   "--decoder-lr), but on crops coded evenly over the qualities' span, the "
                   "extrapolated lowest ones included; judged on the same sum. 0: none.")
@click.option("--int8-msssim-weight", type=click.FloatRange(0), default=0.0, show_default=True,
              help="The weight of MS-SSIM's dB against PSNR's in that fine-tune.")
@click.option("--joint-steps", type=click.IntRange(0), default=1000, show_default=True,
              help="Then the int8-dynamic g_a, h_a and g_s together, on the rate-distortion "
                   "loss with MS-SSIM in it (--joint-msssim-weight), on crops of 256: files "
                   "change, the model's identity does not. Ships if nearer float32 on "
                   "held-out crops, PSNR and MS-SSIM BD-rates summed. 0: none.")
@click.option("--joint-msssim-weight", type=click.FloatRange(0), default=0.7,
              show_default=True,
              help="In that fine-tune, the weight of MS-SSIM's dB against PSNR's in what the "
                   "rate is traded for (finetune.rate_distortion_msssim).")
@click.option("--qat-lr", type=float, default=5e-5, show_default=True,
              help="Adam learning rate of QAT (a tenth of it for the last fifth of the steps).")
@click.option("--prune-lr", type=float, default=1e-4, show_default=True,
              help="Adam learning rate of each pruning.")
@click.option("--distill-lr", type=float, default=1e-4, show_default=True,
              help="Adam learning rate of the student.")
@click.option("--decoder-lr", type=float, default=3e-5, show_default=True,
              help="Adam learning rate of the g_s fine-tunes (int8-dynamic and int8).")
@click.option("--joint-lr", type=float, default=3e-5, show_default=True,
              help="Adam learning rate of the g_a, h_a and g_s fine-tune.")
@click.option("--crop", type=click.IntRange(64), default=128, show_default=True,
              help="Side of the training crops, in pixels.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True,
              help="Crops per training step.")
@click.option("--fresh", is_flag=True, help="Fine-tune again even where weights exist.")
@click.option("--ship", is_flag=True, help="Copy the chosen aedge.aem over the shipped model.")
def main(weights, base_path, data_dir, out_dir, qat, dynamic_qat, sparsities, distill, steps,
         int8_qat_steps, distill_steps, decoder_steps, msssim_weight, int8_decoder_steps,
         int8_msssim_weight, joint_steps, joint_msssim_weight, qat_lr,
         prune_lr, distill_lr, decoder_lr, joint_lr, crop, batch, fresh, ship):
    """Build the device model files from WEIGHTS (make quantize)."""
    from aedge import modelfile
    from aedge.optimize import export
    from aedge.optimize.equalize import equalize

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = modelfile.read(base_path)
    # The student is distilled to widths of its own (its notes' filters), whatever WEIGHTS'.
    narrowed = narrowed_widths(weights, base)

    def teacher():
        return export.load_codec(weights)

    images = export.calibration_images(data_dir)
    calibrated = export.networks(teacher(), images)
    # Every quantized network is made anew; the base's float32 ones stay where it has them (a
    # shipped base does not: export.write_split).
    networks = {**calibrated,
                **{k: net for k, net in base.networks().items()
                   if k[1] == "float32" and narrowed is None}}
    reference = out / "aedge-base.aem"  # what every variant is compared with
    write_variant(reference, base, networks, dict(CALIBRATED), filters=narrowed)
    summary = {"base": str(base_path), "weights": str(weights), "models": {}}

    def record(name, path, notes):
        summary["models"][name] = {"file": str(path), **notes}
        _log(f"wrote {path}")

    chosen = {"name": base.name, **CALIBRATED}
    held_out = {}  # the crops that choose between networks, and float32's curve on them

    def nearer_float32(variant, candidate, plain, name="qat", reference=reference,
                       measures=("psnr",)):
        """Whether the candidate's `variant` networks come nearer the float32 ones than the
        reference's (named `plain`), by BD-rate on held-out crops (the sum over `measures`);
        logged and summarized."""
        from aedge import bench

        if not held_out:
            crops = export.held_out_crops(data_dir)
            if not crops:
                raise click.ClickException(
                    f"no held-out photo of {data_dir} is 256x256 or larger: nothing to choose "
                    "the int8 networks on (--no-qat --no-dynamic-qat --decoder-steps 0 "
                    "--joint-steps 0)")
            held_out.update(crops=crops, float32=held_out_curve(reference, "float32", crops))
        curves = {key: held_out_curve(path, variant, held_out["crops"])
                  for key, path in ((plain, reference), (name, candidate))}
        bd = {key: {m: bench._bd(held_out["float32"], curve, m) for m in measures}
              for key, curve in curves.items()}
        total = {key: None if None in v.values() else sum(v.values()) for key, v in bd.items()}
        _log(f"{variant} against float32 on held-out crops, BD-rate ({' + '.join(measures)}): "
             + ", ".join(f"{k} {v:+.2f}%" for k, v in total.items() if v is not None))
        summary[f"{variant.replace('-', '_')}_{'choice' if name == 'qat' else name}"] = {
            "held_out_crops": len(held_out["crops"]),
            "bd_rate_vs_float32": bd if len(measures) > 1 else {k: v["psnr"]
                                                                  for k, v in bd.items()}}
        return total[name] is not None and (total[plain] is None or total[name] < total[plain])

    def offer(variant, file_name, trained, notes, label, plain, name="qat", against=reference,
              measures=("psnr",)):
        """Writes aedge-<file_name>.aem with `trained` networks; where they come nearer
        float32 than `against`'s (nearer_float32), they and their label are the ones chosen
        from now on. Returns whether they are."""
        nonlocal networks
        path = out / f"aedge-{file_name}.aem"
        write_variant(path, base, trained, dict(notes), filters=narrowed)
        record(file_name, path, notes)
        won = nearer_float32(variant, path, plain, name, against, measures)
        if won:
            networks = trained
            chosen[variant] = label
        return won

    def quantization_aware(variant, name, label, prepare, finish, convert, steps,
                           settings=None):
        """A fine-tune for one network variant and its model file: (codec, whether it
        ships)."""
        # Equalized before it learns around the rounding, so that it learns around the
        # rounding of the networks it becomes.
        codec, stage = _finetune(out / name, equalize(teacher(), images), [weights], data_dir,
                                 steps, crop, batch, qat_lr, fresh, prepare, finish,
                                 settings=settings)
        trained = {**networks, **{(p, variant): convert(getattr(codec, p), INPUT_CHANNELS[p])
                                  for p in modelfile.NETWORKS}}
        notes = {"name": f"{base.name}-{name}", variant: label, **stage}
        plain = "post-training" if variant == "int8" else "converted"
        return codec, offer(variant, name, trained, notes, label, plain)

    if qat:
        from aedge.optimize import qat as qat_module

        def quantize(codec):
            qat_module.quantize_codec(codec, images)
            return []
        label = "quantization-aware training (tfmot)"
        int8, won = quantization_aware("int8", "qat", label, quantize, None,
                                       qat_module.to_int8, int8_qat_steps,
                                       settings={"equalized_conv_outputs": True})
        if int8_decoder_steps:
            # As for the int8-dynamic g_s below: the rate-distortion loss weighs the anchors by
            # their lambdas, the BD-rate by decibels. g_s alone learns, so no file changes.
            # Its crops are coded where the qualities are, evenly over their span: 18 of the
            # 100 lie below the lowest anchor, and 6 within half an anchor of the top one,
            # where one crop in eight was coded (on Kodak, +2.96% against float32 where the
            # anchors gave +3.27%). Compared with the int8 networks chosen so far, QAT's or
            # calibration's.
            from aedge.optimize import finetune

            over = "qualities"  # recorded, so that a tune made at the anchors is not reused
            codec, stage = _finetune(
                out / "int8-decoder", int8, [weights, out / "qat" / "weights.npz"], data_dir,
                int8_decoder_steps, finetune.MS_SSIM_CROP, batch, decoder_lr, fresh,
                lambda codec: [], parts=("g_s",),
                settings={"msssim_weight": int8_msssim_weight, "from": "qat", "over": over},
                loss=lambda codec, x: finetune.decibels(codec, x, int8_msssim_weight, over))
            tuned_label = (f"{label}; g_s fine-tuned for PSNR + {int8_msssim_weight:g} x "
                           "MS-SSIM, in dB")
            # With QAT's encoder, which the tuned g_s learnt to decode, even where
            # calibration's int8 networks won.
            qat_file = modelfile.read(out / "aedge-qat.aem")
            trained = {**networks, **{(p, "int8"): qat_file.network(p, "int8")
                                      for p in ("g_a", "h_a")},
                       ("g_s", "int8"): qat_module.to_int8(codec.g_s, INPUT_CHANNELS["g_s"])}
            notes = {"name": f"{base.name}-int8-decoder", "int8": tuned_label, **stage}
            offer("int8", "int8-decoder", trained, notes, tuned_label,
                  "qat" if won else "post-training", "decoder",
                  out / "aedge-qat.aem" if won else reference, ("psnr", "ms_ssim"))

    from aedge.optimize import dynamic_qat as dynamic_module

    undo = []

    def round_as_dynamic(codec):
        undo.append(dynamic_module.wrap(codec))
        return []

    def to_dynamic(layer, channels):
        return export.to_tflite(layer, channels, dynamic=True)

    tuned = None  # the int8-dynamic QAT codec, where it ships
    if dynamic_qat:
        tuned, won = quantization_aware(
            "int8-dynamic", "dynamic-qat",
            "quantization-aware training (rounding as XNNPACK's qd8)", round_as_dynamic,
            lambda codec: undo.pop()(), to_dynamic, steps)
        if not won:
            tuned = None

    # The fine-tunes whose int8-dynamic networks were chosen, in order: each weights.npz holds
    # all three networks, the last one the networks chosen so far.
    lineage = ["dynamic-qat"] if tuned is not None else []
    from aedge.optimize import finetune

    def for_msssim_too(name, parts, steps, lr, settings, loss, label, notes_key):
        """A fine-tune of the int8-dynamic networks chosen so far (`parts` of them learn) for
        PSNR and MS-SSIM; its file, and aedge-before-<name>.aem; it ships if nearer float32
        on held-out crops, the BD-rates on both summed."""
        before = out / f"aedge-before-{name}.aem"
        write_variant(before, base, networks, {**chosen, "name": f"{base.name}-before-{name}"},
                      filters=narrowed)
        start, made_from = equalize(teacher(), images), [weights]
        if lineage:  # the trained codecs above may have learnt on after their networks won
            made_from.append(out / lineage[-1] / "weights.npz")
            _load_weights(start, made_from[-1])
        codec, stage = _finetune(
            out / name, start, made_from, data_dir, steps, finetune.MS_SSIM_CROP, batch, lr,
            fresh, round_as_dynamic, lambda codec: undo.pop()(), parts=parts, settings=settings,
            loss=loss)
        trained = {**networks, **{(p, "int8-dynamic"): to_dynamic(getattr(codec, p),
                                                                   INPUT_CHANNELS[p])
                                  for p in parts}}
        # Plainly converted networks, where QAT did not come nearer, have no entry yet.
        chain = f"{chosen.get('int8-dynamic', 'converted')}; {label}"
        notes = {"name": f"{base.name}-{name}", **stage,
                 notes_key: label if notes_key != "int8-dynamic" else chain}
        if offer("int8-dynamic", name, trained, notes, chain, "before", name, before,
                 ("psnr", "ms_ssim")):
            lineage.append(name)

    if decoder_steps:
        # g_s alone learns, so no compressed file changes, only the pixels it decodes to.
        for_msssim_too("decoder", ("g_s",), decoder_steps, decoder_lr,
                       {"msssim_weight": msssim_weight,
                        "from": "converted" if tuned is None else "qat"},
                       lambda codec, x: finetune.decibels(codec, x, msssim_weight),
                       f"g_s fine-tuned for PSNR + {msssim_weight:g} x MS-SSIM, in dB",
                       "int8-dynamic g_s")
    if joint_steps:
        # All three networks now, on the rate-distortion loss with MS-SSIM in it: the encoder
        # moves bits to where MS-SSIM gains most, which g_s alone cannot.
        for_msssim_too("joint", modelfile.NETWORKS, joint_steps, joint_lr,
                       {"msssim_weight": joint_msssim_weight,
                        "from": " + ".join(lineage) or "converted"},
                       lambda codec, x: finetune.rate_distortion_msssim(codec, x,
                                                                        joint_msssim_weight),
                       f"g_a, h_a and g_s fine-tuned on rate + PSNR + {joint_msssim_weight:g} "
                       "x MS-SSIM, in dB", "int8-dynamic")

    for sparsity in (s for s in sparsities if s > 0):
        from aedge.optimize import prune

        name = f"sparse{round(sparsity * 100)}"
        unwrap = []

        def prune_rounding(codec):
            """Pruned while rounded as the default (int8-dynamic) networks are: one fine-tune
            learns around both, as the dense model's two fine-tunes do one each."""
            hooks = prune.prune_codec(codec, sparsity, steps)
            unwrap.append(dynamic_module.wrap(codec))
            return hooks

        def strip(codec):
            unwrap.pop()()
            return prune.strip(codec)
        codec, stage = _finetune(out / name, equalize(teacher(), images), [weights], data_dir,
                                 steps, crop, batch, prune_lr, fresh, prune_rounding, strip)
        reached = prune.sparsity(codec)
        notes = {"name": f"{base.name}-{name}", "target_sparsity": sparsity,
                 "sparsity": round(reached, 4),
                 "int8-dynamic": "pruned while rounding as XNNPACK's qd8", **stage}
        path = out / f"aedge-{name}.aem"
        # A pruned model is for where storage or download is scarce: LZMA codes its zeros
        # better than deflate (aedge 0.4's 50%-sparse file 39% smaller than the dense one,
        # against 34.5% deflated), at some tens of milliseconds more to open it.
        write_variant(path, base, export.networks(codec, images), dict(notes),
                      zipfile.ZIP_LZMA, narrowed)
        record(name, path, notes)
        _log(f"{name}: {reached:.4f} of the convolution weights are zero")

    if distill:
        from aedge.optimize import distill as distill_module

        teacher_codec = teacher()
        student = distill_module.student_from(teacher_codec)
        student, stage = _finetune(
            out / "fast", student, [weights], data_dir, distill_steps, crop, batch, distill_lr,
            fresh, lambda c: [],
            extra_loss=distill_module.distillation_loss(teacher_codec, student))
        from aedge.train.model import macs_per_pixel
        notes = {"name": f"{base.name}-fast", "filters": list(arch.widths(arch.STUDENT_FILTERS)),
                 "teacher_filters": list(teacher_codec.filters), **stage,
                 "macs_per_pixel": [round(m) for m in macs_per_pixel(arch.STUDENT_FILTERS)],
                 "teacher_macs_per_pixel": [round(m) for m in
                                            macs_per_pixel(teacher_codec.filters)]}
        path = out / "aedge-fast.aem"
        write_variant(path, base, export.networks(student, images), dict(notes))
        record("fast", path, notes)

    shipped = out / "aedge.aem"
    export.write_split(shipped, chosen["name"], networks, lambda path, name, nets: write_variant(
        path, base, nets, {**chosen, "name": name}, filters=narrowed))
    record("default", shipped, chosen)
    record("float32", modelfile.float32_path(shipped), {"name": f"{chosen['name']}-float32"})
    (out / "optimize.json").write_text(json.dumps(summary, indent=2))
    from aedge import registry

    target = registry.default_model()
    if ship:
        shutil.copyfile(shipped, target)
        _log(f"copied it to {target}")
    else:
        _log(f"to ship it: cp {shipped} {target}")


if __name__ == "__main__":
    main(prog_name="python -m aedge.optimize")
