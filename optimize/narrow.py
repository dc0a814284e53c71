"""A narrower g_a and g_s for speed, in the teacher's latent space (make narrow).

The student (distill.student_from) starts from the teacher's strongest channels, and keeps the
teacher's h_a, h_s, gains and density of z: its tables, so its files decode with the teacher's
networks and the teacher's with its own. Where the narrowing touches only the highest-resolution
stage, most of the student is the teacher's own layers, and the student learns fastest by
training first what changed, then a stage more, then all of g_a and g_s (PHASES). Its loss:
its y against the teacher's y in quantization steps at a random rate anchor
(distill.latent_terms), and its decoding of the teacher's y_hat against the pixels and the
teacher's decoding, weighted by the anchor's lambda. No rate term: y stays the teacher's, and
so do the bits.

Measured with the shipped teacher, (32, 96, 128) channels against its (64, 96, 128), BD-rate
of the float32 networks against the teacher's on Kodak, PSNR: +2.9% after the first phase
(11 minutes here), +1.7% after the second (13), +1.2% after the third (18).

Training resumes: a checkpoint (the student's g_a and g_s, no optimizer state) is written
every CHECKPOINT_STEPS with the phase and step it reached.
"""
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # as train/ and the rest of optimize/

import click  # noqa: E402
import numpy as np  # noqa: E402

# (stages trained from the highest resolution, steps, Adam learning rate): each phase a
# tenth of its rate for its last fifth (finetune.learning_rate).
PHASES = ((2, 4000, 3e-4), (3, 4000, 1e-4), (4, 5000, 5e-5))
CHECKPOINT_STEPS = 250


def trained_layers(chain, stages, downward):
    """The layers of the `stages` highest-resolution stages of a g_a (downward) or g_s chain:
    each stage a convolution and its GDN, g_s's last stage its pixel convolution alone."""
    layers = chain.layers
    return layers[:2 * stages] if downward else layers[max(len(layers) - 2 * stages + 1, 0):]


def narrowing_loss(teacher, student):
    """loss(x) of a batch: the student's y against the teacher's, and its decoding of the
    teacher's y_hat against x and against the teacher's decoding."""
    import tensorflow as tf

    from aedge.optimize import distill

    lambdas = tf.constant(teacher.lambdas, tf.float32)

    def loss(x):
        anchor, latent, y_hat = distill.latent_terms(teacher, student, x)
        x_student, x_teacher = student.g_s(y_hat), teacher.g_s(y_hat)
        error = lambda target: tf.reduce_mean(tf.square(x_student - target),
                                              (1, 2, 3)) * 255.0 ** 2
        return tf.reduce_mean(distill.LATENT_WEIGHT * latent + tf.gather(lambdas, anchor)
                              * (error(x) + error(x_teacher)))
    return loss


def _student_weights(student):
    return [v for part in ("g_a", "g_s") for v in getattr(student, part).weights]


def narrow(teacher, filters, batches, out, phases=PHASES, log=print):
    """Trains a student of `filters` channels from `teacher` (a built Codec), resuming from
    out/checkpoint.npz where an earlier run left it; writes out/weights.npz (every weight of the
    codec, as the trainers name them) when the last phase ends. batches() gives a fresh
    iterator of training batches for each phase. Returns the student."""
    import tensorflow as tf
    import tf_keras as keras

    from aedge.optimize import distill, finetune
    from aedge.train.train import save_npz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    student = distill.student_from(teacher, filters)
    checkpoint, progress = out / "checkpoint.npz", out / "progress.json"
    reached = {"phase": 0, "step": 0}
    if checkpoint.is_file() and progress.is_file():
        reached = json.loads(progress.read_text())
        if reached.get("filters") != list(student.filters) or \
                reached.get("phases") != [list(p) for p in phases]:
            raise click.ClickException(f"{out} holds a run of other widths or phases; give "
                                       "another folder")
        with np.load(checkpoint) as saved:
            for i, v in enumerate(_student_weights(student)):
                v.assign(saved[f"arr_{i}"])
        log(f"resuming at phase {reached['phase'] + 1}, step {reached['step']}")
    loss_of = narrowing_loss(teacher, student)

    def save(phase, step):
        tmp = out / "checkpoint.partial.npz"
        np.savez(tmp, *[v.numpy() for v in _student_weights(student)])
        os.replace(tmp, checkpoint)
        progress.write_text(json.dumps({"phase": phase, "step": step,
                                        "filters": list(student.filters),
                                        "phases": [list(p) for p in phases]}))

    for phase, (stages, steps, lr) in enumerate(phases):
        if phase < reached["phase"]:
            continue
        first = reached["step"] if phase == reached["phase"] else 0
        if first >= steps:
            continue
        variables = [v for chain, down in ((student.g_a, True), (student.g_s, False))
                     for layer in trained_layers(chain, stages, down)
                     for v in layer.trainable_variables]
        # A resumed phase restarts Adam's moments and its schedule where the phase was.
        optimizer = keras.optimizers.Adam(finetune.learning_rate(lr, steps), clipnorm=1.0)
        optimizer.iterations.assign(first)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = loss_of(x)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        data, started, losses = batches(), time.time(), []
        for i in range(first + 1, steps + 1):
            losses.append(float(step(next(data))))
            if i % CHECKPOINT_STEPS == 0 or i == steps:
                save(phase, i)
                log(json.dumps({"phase": phase + 1, "step": i,
                                "loss": round(float(np.mean(losses)), 4),
                                "seconds": round(time.time() - started, 1)}))
                losses = []
        reached = {"phase": phase + 1, "step": 0}
    save_npz(student, out / "weights.npz")
    return student


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--filters", default="32,96,128", show_default=True,
              help="The student's channels per stage, from the highest resolution down.")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Training photos.")
@click.option("-o", "--output", "out_dir", default="build/narrow", show_default=True,
              type=click.Path(file_okay=False),
              help="Run folder: its checkpoint, and weights.npz at the end.")
@click.option("--crop", type=click.IntRange(64), default=128, show_default=True,
              help="Side of the training crops, in pixels.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True,
              help="Crops per training step.")
def main(weights, filters, data_dir, out_dir, crop, batch):
    """Train a narrower g_a and g_s from the model in WEIGHTS (make narrow); make quantize
    QUANTIZE_WEIGHTS=<run folder>/weights.npz then builds its model files."""
    from aedge.optimize import export, finetune
    from aedge.train import architecture as arch
    from aedge.train.files import find_images

    try:
        widths = arch.widths(tuple(int(f) for f in filters.split(",")))
    except ValueError:
        raise click.BadParameter(f"three channel counts, such as 32,96,128, not {filters!r}",
                                 param_hint="--filters") from None
    try:
        find_images(data_dir)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    try:
        teacher = export.load_codec(weights)
    except (OSError, ValueError, KeyError) as e:
        raise click.ClickException(f"{weights} is not the weights of an aedge model "
                                   f"({' '.join(str(e).split())})") from None
    narrow(teacher, widths, lambda: finetune.training_batches(data_dir, crop, batch), out_dir,
           log=lambda m: click.echo(m, err=True))
    click.echo(str(Path(out_dir) / "weights.npz"))


if __name__ == "__main__":
    main()
