"""Export a trained run to one .aem model file: TFLite encoder and decoder (int8 and float32)
and the integer entropy tables.

`python -m aedge.optimize.export runs/q2 --data DIR -o models/q2.aem --level 2`

int8 is post-training quantization, calibrated on crops from the training data (never on the
benchmark images). Inputs and outputs stay float32 so the runtime needs no knowledge of the
quantization parameters.
"""
import json
from pathlib import Path

import click
import numpy as np

CALIBRATION_CROPS = 48
CALIBRATION_SIZE = 256


def load_codec(run_dir):
    from aedge.train.model import Codec

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    codec = Codec(config["lmbda"], n=config["n"], m=config["m"],
                  distortion=config.get("distortion", "mse"))
    codec.build((None, 64, 64, 3))
    codec.load_weights(str(run_dir / "final.weights.h5"))
    return codec, config


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
              dynamic=False):
    """float32 flatbuffer, int8 when calibration inputs are given, int8-dynamic when asked.

    int8-dynamic keeps int8 weights (one scale per output channel) and quantizes the
    activations at run time, from each tensor's own range: on Kodak it lost 0.1 dB (encoder)
    and 0.6 dB (decoder) at the highest level, where the calibrated full-integer networks lost
    0.4 and 0.9 dB; XNNPACK runs both about as fast.

    The int8 graph keeps GDN's SQRT and RSQRT in float: XNNPACK has no int8 kernel for them,
    and LiteRT's reference kernels made the encoder twenty times slower (600 ms instead of
    30 ms on a Kodak image here). GDN's multiplications stay in float too: in int8 they cost
    the highest level 0.55 dB, in float 4 ms. The convolutions listed in float_convs (by
    position) stay in float as well: the ones that produce the latent or read it, whose integer
    values one int8 scale per tensor cannot hold (measured: 5% more bits and 0.3 dB less with
    them in int8), and the one that produces the pixels. Every other convolution is int8.
    """
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, None, None, channels), tf.float32)])
    def network(x):
        return layer(x)

    def converter():
        return tf.lite.TFLiteConverter.from_concrete_functions(
            [network.get_concrete_function()], layer)

    if dynamic:
        quantizing = converter()
        quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
        return quantizing.convert()
    float_model = float_model or converter().convert()
    if representative is None:
        return float_model
    names = _conv_output_names(float_model)
    quantizing = converter()
    quantizing.optimizations = [tf.lite.Optimize.DEFAULT]
    dataset = lambda: ([r] for r in representative)
    quantizing.representative_dataset = dataset
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_ops=["RSQRT", "SQRT", "MUL"], denylisted_nodes=[names[i] for i in float_convs])
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=quantizing, debug_dataset=dataset, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def _conv_output_names(flatbuffer):
    from aedge.interpreter import _interpreter_class

    interpreter = _interpreter_class()(model_content=flatbuffer)
    tensors = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    return [tensors[op["outputs"][0]] for op in interpreter._get_ops_details()
            if op["op_name"] == "CONV_2D"]


def _training_summary(config):
    keys = ("lmbda", "distortion", "steps", "batch", "crop", "lr", "data", "train_images",
            "trained_with")
    summary = {k: config[k] for k in keys if k in config}
    if config.get("init_from"):
        # Fine-tuned levels start from a base run: its recipe is part of this model's. Its
        # configuration sits beside the weights: runs/NAME/config.json or models/bases/NAME.config.json.
        weights = Path(config["init_from"])
        for base in (weights.parent / "config.json",
                     weights.with_name(weights.name.replace(".weights.h5", ".config.json"))):
            if base.is_file():
                summary["fine_tuned_from"] = _training_summary(json.loads(base.read_text()))
                break
    return summary


def export(run_dir, data_dir, level, name=None):
    """Returns (manifest, networks, medians, offsets, freqs) ready for modelfile.write."""
    from aedge.optimize import entropy_tables

    codec, config = load_codec(run_dir)
    medians, offsets, freqs = entropy_tables.build(codec.entropy_bottleneck)
    images = calibration_images(data_dir)
    latents = [np.round(codec.g_a(x).numpy() - medians) + medians for x in images]
    encoder, decoder = to_tflite(codec.g_a, 3), to_tflite(codec.g_s, codec.m)
    networks = {
        ("encoder", "float32"): encoder,
        ("decoder", "float32"): decoder,
        ("encoder", "int8"): to_tflite(codec.g_a, 3, images, [-1], encoder),
        ("decoder", "int8"): to_tflite(codec.g_s, codec.m, latents, [0, -1], decoder),
        ("encoder", "int8-dynamic"): to_tflite(codec.g_a, 3, dynamic=True),
        ("decoder", "int8-dynamic"): to_tflite(codec.g_s, codec.m, dynamic=True),
    }
    manifest = {
        "name": name or f"aedge-factorized-q{level}",
        "level": level,
        "architecture": "factorized-prior",
        "downsampling": 16,
        "latent_channels": codec.m,
        "lmbda": config["lmbda"],
        "training": _training_summary(config),
        "coded_channels": int(sum(len(f) > 1 for f in freqs)),
    }
    return manifest, networks, medians, offsets, freqs


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training photos, for int8 calibration.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--level", type=int, required=True, help="Quality level this model serves.")
def main(run_dir, data_dir, output, level):
    """Export RUN_DIR's final weights to one .aem model file."""
    from aedge import modelfile

    manifest, networks, medians, offsets, freqs = export(run_dir, data_dir, level)
    modelfile.write(output, manifest, networks, medians, offsets, freqs)
    sizes = ", ".join(f"{p}.{v} {len(b) / 1e3:.0f} kB" for (p, v), b in sorted(networks.items()))
    click.echo(f"wrote {output}: {manifest['coded_channels']}/{len(freqs)} latent "
               f"channels coded; {sizes}")


if __name__ == "__main__":
    main()
