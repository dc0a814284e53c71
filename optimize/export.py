"""Export trained weights to the one .aem model file the runtime uses.

`python -m aedge.optimize.export runs/hyper/weights.npz --data DIR -o build/aedge.aem`

In the file: the TFLite networks g_a, h_a and g_s three times (int8-dynamic, full-integer int8
calibrated on crops of the training data, never on the benchmark images, and int16x8
calibrated on the same crops; the float32 ones in a file of their own beside it); h_s as
integers (runtime/hyper.py); the gains of every quality 1..100 in fixed point; the integer
entropy tables of z and y.
"""
import json
from pathlib import Path

import click
import numpy as np

from aedge.train import architecture as arch

CALIBRATION_CROPS = 48
CALIBRATION_SIZE = 256
DEFAULT_QUALITY = 75  # without held-out photos to place it
# Quality 1 lies this many anchors below the lowest lambda, its gains on the line (in log2)
# through the two lowest anchors: the lowest anchor gives about 0.23 bpp on Kodak, and users
# of a camera trap or a satellite link want about 0.1. Measured on Kodak (int8-dynamic), the
# extrapolated gains stay on the trained curve's course: 1.5 anchors below, 0.111 bpp and
# 25.6 dB; 2 below, 0.088 bpp and 24.9 dB.
EXTRAPOLATED_ANCHORS = 1.5


def widths_of(weights):
    """The widths of g_a and g_s in a weights file (.npz), from its kernels' shapes."""
    with np.load(weights) as saved:
        return arch.widths_in({k: saved[k].shape for k in saved.files if k.startswith("g_a.")})


def load_codec(weights):
    from aedge.train.model import Codec, build, load_npz
    return load_npz(build(Codec(filters=widths_of(weights))), weights)


def calibration_images(data_dir, count=CALIBRATION_CROPS, size=CALIBRATION_SIZE, seed=1):
    from aedge.train import data
    from aedge.train.files import find_images

    files = find_images(data_dir)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(files), size=min(count, len(files)), replace=False)
    ds = data.validation_dataset([files[i] for i in sorted(picked)], crop=size)
    crops = [batch.numpy() for batch in ds]
    if not crops:
        raise click.ClickException(f"no image under {data_dir} is {size}x{size} or larger "
                                   "(needed to calibrate the int8 networks)")
    return crops


def to_tflite(layer, channels, representative=None, float_convs=(), float_model=None,
              dynamic=False, int16=False):
    """float32 flatbuffer, int8 when calibration inputs are given, int8-dynamic when asked,
    int16x8 when asked with calibration inputs.

    int8-dynamic keeps int8 weights (one scale per output channel) and quantizes the
    activations at run time, from each tensor's own range: on Kodak it lost 0.1 dB (encoder)
    and 0.6 dB (decoder) at the highest level of the factorized models, where the calibrated
    full-integer networks lost 0.4 and 0.9 dB; XNNPACK runs both about as fast.

    The int8 graph keeps GDN's SQRT and RSQRT in float: XNNPACK has no int8 kernel for them,
    and LiteRT's reference kernels made the encoder twenty times slower (600 ms instead of
    30 ms on a Kodak image here). GDN's multiplications stay in float too: in int8 they cost
    0.55 dB, in float 4 ms. The convolutions listed in float_convs (by position) stay in float
    as well: the ones that produce a latent or read it, whose integer values one int8 scale per
    tensor cannot hold (measured: 5% more bits and 0.3 dB less with them in int8), and the one
    that produces the pixels, each with the depth-to-space that rearranges its output. So does
    GDN's 1x1 convolution of x**2, as quantization-aware training leaves it: squares span too
    many octaves for one int8 scale (with it in int8, post-training int8 measured +60% BD-rate
    against float32 on 4 Kodak images, with it in float +24%). Every other convolution is int8.
    """
    import tensorflow as tf

    if int16 and (dynamic or representative is None):
        raise ValueError("int16x8 networks are calibrated: give representative inputs, "
                         "without dynamic")

    @tf.function(input_signature=[tf.TensorSpec((1, None, None, channels), tf.float32)])
    def network(x):
        return layer(x)

    def converter():
        return tf.lite.TFLiteConverter.from_concrete_functions(
            [network.get_concrete_function()], layer)

    if dynamic:  # int8-dynamic, or full-integer int8 from a quantization-aware model
        quantizing = converter()
        quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
        return without_round_trips(quantizing.convert())
    if representative is None:
        return float_model or converter().convert()
    dataset = lambda: ([r] for r in representative)
    if int16:
        return without_round_trips(_to_int16x8(converter(), dataset))
    float_model = float_model or converter().convert()
    quantizing = converter()
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    quantizing.representative_dataset = dataset
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_ops=["RSQRT", "SQRT", "MUL"],
        denylisted_nodes=_float_nodes(float_model, float_convs))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=quantizing, debug_dataset=dataset, debug_options=options)
    return without_round_trips(debugger.get_nondebug_quantized_model())


def without_round_trips(flatbuffer):
    """The flatbuffer without its float -> int8 -> float round trips: a QUANTIZE whose only
    reader is a DEQUANTIZE, between two operators that both run in float, computes nothing and
    only rounds. The converter leaves one wherever an activation range was recorded (by
    quantization-aware training, or by calibration) for a tensor whose reader stays in float:
    the last GDN's output before g_a's and g_s's float convolution. In g_s that rounding cost
    0.15 dB at quality 100 on Kodak, where every other int8 activation of g_s cost 0.03 to
    0.26 dB alone (measured by emulating the int8 g_s in numpy, one rounding at a time)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.schema_util import get_builtin_code_from_operator_code
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    codes = [get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    changed = False
    for graph in model.subgraphs:
        def readers(tensor):
            return [op for op in graph.operators if tensor in list(op.inputs)]

        def dtype(tensor):
            return graph.tensors[tensor].type

        dropped = set()
        for quantize in graph.operators:
            if codes[quantize.opcodeIndex] != schema.BuiltinOperator.QUANTIZE or \
                    dtype(quantize.inputs[0]) != schema.TensorType.FLOAT32 or \
                    quantize.outputs[0] in list(graph.outputs):
                continue
            after = readers(quantize.outputs[0])
            if len(after) != 1 or codes[after[0].opcodeIndex] != \
                    schema.BuiltinOperator.DEQUANTIZE or \
                    dtype(after[0].outputs[0]) != schema.TensorType.FLOAT32 or \
                    after[0].outputs[0] in list(graph.outputs):
                continue
            source, rounded = quantize.inputs[0], after[0].outputs[0]
            for op in graph.operators:
                op.inputs = [source if t == rounded else t for t in op.inputs]
            dropped |= {id(quantize), id(after[0])}
        if dropped:
            graph.operators = [op for op in graph.operators if id(op) not in dropped]
            changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else flatbuffer


def _to_int16x8(quantizing, dataset):
    """TFLite's 16x8 mode: int8 weights (one scale per output channel), int16 activations,
    every convolution and GDN's arithmetic in integers. 16 bits hold what one int8 scale per
    tensor cannot (latents, GDN's squares, the pixels), so nothing is kept in float for its
    range: on Kodak it came within 1.6% BD-rate of float32, where the calibrated int8
    networks (float convolutions and all) were at +31%. What stays in float, only because
    TFLite has no int16 kernel for it: IGDN's square root and the depth-to-space of g_s.
    The price: XNNPACK has no int16 kernels, and LiteRT's reference ones ran 36 times slower
    than the default networks here (tflite-runtime decodes their files to within 1 level,
    where int8 differs by up to 14)."""
    import tensorflow as tf

    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    quantizing.representative_dataset = dataset
    quantizing.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS]
    return quantizing.convert()


def _float_nodes(flatbuffer, float_convs):
    """Names of what stays in float in the int8 graph: the convolutions at positions
    float_convs (among every CONV_2D, GDN's 1x1 ones included: only the first and the last
    mean one layer whatever the depth), with the depth-to-space that rearranges one's output
    (else the pixels of g_s's last would come out of int8: one step 13 levels of 255 at the
    range calibration gave), and GDN's 1x1 convolutions of x**2."""
    from aedge.interpreter import _interpreter_class

    interpreter = _interpreter_class()(model_content=flatbuffer)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    kept = [convs[i]["outputs"][0] for i in float_convs]
    kept += [op["outputs"][0] for op in ops
             if op["op_name"] == "DEPTH_TO_SPACE" and op["inputs"][0] in kept]
    # GDN's 1x1 convolution of x**2 (no other convolution of g_a, h_a or g_s is 1x1)
    kept += [op["outputs"][0] for op in convs
             if tuple(tensors[op["inputs"][1]]["shape"][1:3]) == (1, 1)]
    return [tensors[i]["name"] for i in kept]


def held_out_crops(data_dir, size=256):
    """Centre crops of the photos training never saw (the 3% rule of train/files.py)."""
    from PIL import Image

    from aedge.train.files import find_images, split

    crops = []
    for path in split(find_images(data_dir), 0.03)[1]:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        h, w = image.shape[:2]
        if min(h, w) >= size:
            top, left = (h - size) // 2, (w - size) // 2
            crops.append(image[top:top + size, left:left + size])
    return crops


def _jpeg_psnr(crops, quality):
    import io

    from PIL import Image

    from aedge import metrics
    out = []
    for crop in crops:
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
        out.append(metrics.psnr(crop, np.asarray(Image.open(buffer).convert("RGB"))))
    return float(np.mean(out))


def _psnr_at(codec, crops, position):
    """Mean PSNR of the float model at a position between anchors, with real rounding."""
    import tensorflow as tf

    from aedge import metrics
    low = min(int(position), len(codec.lambdas) - 2)
    frac = position - low
    saved = [g.numpy() for g in (codec.gain_y, codec.gain_y_inverse, codec.gain_z,
                                 codec.gain_z_inverse)]
    try:
        for g, value in zip((codec.gain_y, codec.gain_y_inverse, codec.gain_z,
                             codec.gain_z_inverse), saved):
            g.assign(np.repeat(((1 - frac) * value[low] + frac * value[low + 1])[None],
                               len(value), 0))
        psnr = []
        for crop in crops:
            x = tf.constant(crop[None].astype(np.float32) / 255)
            x_hat, _ = codec((x, tf.zeros((1,), tf.int32)))
            out = np.clip(np.rint(x_hat.numpy()[0] * 255), 0, 255).astype(np.uint8)
            psnr.append(metrics.psnr(crop, out))
    finally:
        for g, value in zip((codec.gain_y, codec.gain_y_inverse, codec.gain_z,
                             codec.gain_z_inverse), saved):
            g.assign(value)
    return float(np.mean(psnr))


def quality_positions(codec, data_dir):
    """Quality 1..100 -> a position on the anchors (-EXTRAPOLATED_ANCHORS .. anchors - 1),
    evenly spread, so that every five steps move the rate alike; and the default quality: the
    one whose PSNR equals JPEG's at its default (75), on held-out training crops (never the
    benchmark's)."""
    from aedge import modelfile

    anchors = len(codec.lambdas)
    positions = np.linspace(-EXTRAPOLATED_ANCHORS, anchors - 1, modelfile.QUALITIES)
    crops = held_out_crops(data_dir)
    if not crops:
        return positions, DEFAULT_QUALITY, None
    target = _jpeg_psnr(crops, 75)
    grid = np.arange(0, anchors - 1 + 1e-9, 0.5)
    psnr = np.maximum.accumulate([_psnr_at(codec, crops, t) for t in grid])
    middle = float(np.interp(target, psnr, grid))
    default = int(np.argmin(np.abs(positions - middle))) + 1
    calibration = {"held_out_crops": len(crops), "jpeg_q75_psnr": round(target, 3),
                   "model_psnr_at_anchors": [round(float(p), 3) for p in psnr],
                   "default_position": round(middle, 4)}
    return positions, default, calibration


def gain_tables(codec, t):
    """Fixed-point gains of every quality at its anchor position t: each interpolates its two
    anchors geometrically (linearly in log2), as Cui et al. 2021 do between gain vectors;
    below the lowest anchor, the two lowest extrapolate."""
    from aedge import hyper

    low = np.clip(np.floor(t).astype(int), 0, len(codec.lambdas) - 2)
    frac = (t - low)[:, None]
    tables = {}
    for name in ("y", "y_inverse", "z", "z_inverse"):
        log2 = getattr(codec, f"gain_{name}").numpy().astype(np.float64)
        at = (1 - frac) * log2[low] + frac * log2[low + 1]
        tables[f"gain_{name}"] = hyper.fixed_point(2.0 ** at, hyper.GAIN_FRAC_BITS)
        if name == "y":
            tables["log2_gain_y"] = hyper.fixed_point(at, hyper.ACT_FRAC_BITS)
    return tables


def integer_arrays(codec, positions):
    """h_s, gains and entropy tables: everything the runtime computes exactly."""
    import tensorflow as tf

    from aedge import hyper, modelfile
    from aedge.optimize import entropy_tables

    arrays = gain_tables(codec, positions)
    for i, (kernel, bias) in enumerate(zip(codec.h_s.kernels, codec.h_s.biases)):
        w, b, shift = hyper.quantize_layer(kernel.numpy(), bias.numpy())
        arrays.update({f"h_s.{i}.kernel": w, f"h_s.{i}.bias": b, f"h_s.{i}.shift": shift})

    def cdf(points):
        x = tf.tile(tf.constant(points, tf.float32)[None, None, :], (arch.Z_LATENT, 1, 1))
        return tf.sigmoid(codec.z_density.logits_cdf(x))[:, 0, :].numpy()

    z_offsets, z_freqs = entropy_tables.z_tables(cdf)
    y_offsets, y_freqs = entropy_tables.gaussian_tables()
    arrays.update(z_offsets=z_offsets, z_freqs=modelfile.pack_tables(z_freqs),
                  y_offsets=y_offsets, y_freqs=modelfile.pack_tables(y_freqs))
    return arrays


def decoder_inputs(codec, latents):
    """What g_s reads: each y decoded as the runtime decodes it (around h_s's mean, the smallest
    scales not coded) at one anchor, in turn. Rounding y alone, blind to the mean, gave g_s
    inputs it never sees at the low anchors, and pixels from -6 to 7 from it: calibrated on
    those, the int8 networks spent their 256 levels on ranges 13 times too wide."""
    import tensorflow as tf

    k = len(codec.lambdas)
    return [codec.quantize(tf.constant(y), tf.constant([i % k]))[0].numpy()
            for i, y in enumerate(latents)]


def networks(codec, images):
    """{(part, variant): flatbuffer}: g_a, h_a and g_s of a Keras codec in every variant, the
    int8 and int16x8 ones calibrated on `images` (and the latents and decodings they lead to). The codec is
    equalized first (optimize/equalize.py), unless it already is, and is left with the outputs
    of its convolutions before GDN equalized too, as the int8 networks are made."""
    from aedge.optimize.equalize import equalize, equalize_outputs

    equalize(codec, images)
    latents = [codec.g_a(x).numpy() for x in images]
    decoded = decoder_inputs(codec, latents)
    parts = {"g_a": (codec.g_a, 3, images, [-1]),
             "h_a": (codec.h_a, arch.M_LATENT, latents, [0, -1]),
             "g_s": (codec.g_s, arch.M_LATENT, decoded, [0, -1])}
    out = {}
    for part, (layer, channels, inputs, float_convs) in parts.items():
        out[part, "float32"] = to_tflite(layer, channels)
        out[part, "int8-dynamic"] = to_tflite(layer, channels, dynamic=True)
        out[part, "int16x8"] = to_tflite(layer, channels, inputs, int16=True)
    # The same functions, with the outputs of the convolutions before GDN sharing one range:
    # for int8 alone (equalize.equalize_outputs).
    equalize_outputs(codec.g_a, images)
    equalize_outputs(codec.g_s, decoded)
    for part, (layer, channels, inputs, float_convs) in parts.items():
        out[part, "int8"] = to_tflite(layer, channels, inputs, float_convs)
    return out


def write_split(path, name, networks, write):
    """The model file at `path` with every variant but float32, and the float32 networks in a
    file of their own beside it (modelfile.float32_path), named `name`-float32; write(path, name,
    networks) writes one file with the tables, which both share, and so their identity: a
    file either encodes decodes with the other. At 64, 96 and 128 channels the float32
    networks take 10 MB deflated, the three others with the tables 11 MB, and a device's model
    file is held to 12 MB; the float32 networks are for measuring and for desktops."""
    from aedge import modelfile

    write(path, name, {k: v for k, v in networks.items() if k[1] != "float32"})
    floats = {k: v for k, v in networks.items() if k[1] == "float32"}
    if floats:
        write(modelfile.float32_path(path), f"{name}-float32", floats)


def export(weights, data_dir, name="aedge-hyperprior"):
    """Returns (manifest, networks, arrays) ready for modelfile.write."""
    codec = load_codec(weights)
    positions, default_quality, quality_calibration = quality_positions(codec, data_dir)
    built = networks(codec, calibration_images(data_dir))
    manifest = {
        "name": name,
        "architecture": "mean-scale-hyperprior",
        "downsampling": 16,
        "latent_channels": arch.M_LATENT,
        "hyper_channels": arch.Z_LATENT,
        "h_s": [list(layer) for layer in arch.H_S],
        "scales": {"count": arch.N_SCALES, "per_octave": arch.SCALES_PER_OCTAVE,
                   "skip": arch.SKIP,
                   "log2_min": int(round(arch.LOG2_SCALE_MIN * 2 ** arch.ACT_FRAC_BITS))},
        "default_quality": default_quality,
        "lambdas": list(codec.lambdas),
        "quality_anchor_positions": [round(float(t), 4) for t in positions],
        "quality_calibration": quality_calibration,
        "training": _training_summary(weights),
    }
    return manifest, built, integer_arrays(codec, positions)


def _training_summary(weights):
    meta = Path(weights).parent / "train.json"
    if not meta.is_file():
        return {"weights": Path(weights).name}
    meta = json.loads(meta.read_text())
    summary = {k: meta[k] for k in ("steps", "gigapixels", "lambdas", "filters", "calls")
               if k in meta}
    if "hyperprior_fit" in meta:  # train/jax_hyper.py's phase, on latents rather than images
        fit = meta["hyperprior_fit"]
        summary["hyperprior_fit"] = {k: fit[k] for k in ("steps", "crops", "reinit", "calls")
                                     if k in fit}
    return summary


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training photos, for int8 calibration.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def main(weights, data_dir, output):
    """Export WEIGHTS (a .npz of jax_train.py or train.py) to the .aem model file OUTPUT
    (int8-dynamic, int8 and int16x8 networks) and its float32 networks beside it
    (OUTPUT's name with -float32)."""
    from aedge import modelfile

    Path(output).parent.mkdir(parents=True, exist_ok=True)
    manifest, networks, arrays = export(weights, data_dir)
    write_split(output, manifest["name"], networks, lambda path, name, nets: modelfile.write(
        path, {**manifest, "name": name}, nets, arrays))
    sizes = ", ".join(f"{p}.{v} {len(b) / 1e3:.0f} kB" for (p, v), b in sorted(networks.items()))
    click.echo(f"wrote {output} and {modelfile.float32_path(output)}: {sizes}")


if __name__ == "__main__":
    main()
