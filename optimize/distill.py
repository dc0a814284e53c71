"""Knowledge distillation into a narrower student: the "fast" model for the slowest boards.

The student is architecture.py's codec at STUDENT_FILTERS channels per stage. It starts from the
teacher's strongest channels (by the norm of their kernels) and learns from the teacher's
latents and decoded pixels as well as from the data. It keeps the teacher's h_a, h_s, gains
and density of z: the same latent space, so that its files decode with the teacher and the
teacher's with it.
"""
import numpy as np
import tensorflow as tf

from aedge.train import architecture as arch
from aedge.train.model import GDN, Codec, SubpixelConv, build

LATENT_WEIGHT = 0.1  # bits-like weight of a squared error of one quantization step
PIXEL_WEIGHT = 1.0  # times the anchor's lambda, as the distortion term of the loss


def _kept(kernel, keep):
    """Output channels with the largest kernels, in their original order."""
    norms = np.sqrt((kernel.reshape(-1, kernel.shape[-1]) ** 2).sum(0))
    return np.sort(np.argsort(-norms)[:keep])


def _narrow_chain(teacher_layers, student_layers, in_keep):
    """Copies the teacher's chosen channels into the student's layers; returns the channels of
    the chain's output the student keeps (all of them for the last layer)."""
    keep = in_keep
    for t, s in zip(teacher_layers, student_layers):
        if isinstance(t, GDN):
            s.beta_root.assign(t.beta_root.numpy()[keep])
            s.gamma_root.assign(t.gamma_root.numpy()[:, :, keep][:, :, :, keep])
            continue
        conv_t, conv_s = getattr(t, "conv", t), getattr(s, "conv", s)
        kernel, bias = conv_t.kernel.numpy()[:, :, keep], conv_t.bias.numpy()
        if isinstance(t, SubpixelConv):
            # depth_to_space makes output channel c of the conv's channels k * filters + c.
            full = t.filters
            out = _kept(kernel.reshape(*kernel.shape[:3], 4, full), s.filters)
            columns = np.concatenate([k * full + out for k in range(4)])
        else:
            out = columns = _kept(kernel, conv_s.filters)
        conv_s.kernel.assign(kernel[..., columns])
        conv_s.bias.assign(bias[columns])
        keep = out
    return keep


def student_from(teacher, filters=arch.STUDENT_FILTERS):
    """A built student codec: narrowed g_a and g_s, the teacher's everything else."""
    student = build(Codec(lambdas=teacher.lambdas, filters=filters))
    _narrow_chain(teacher.g_a.layers, student.g_a.layers, np.arange(3))
    _narrow_chain(teacher.g_s.layers, student.g_s.layers, np.arange(arch.M_LATENT))
    names = student.named_variables()
    for name, variable in teacher.named_variables().items():
        if not name.startswith(("g_a.", "g_s.")):
            names[name].assign(variable)
    return student


def latent_terms(teacher, student, x):
    """(anchor, latent error, y_hat) of a batch at random rate anchors: the student's y against
    the teacher's, in quantization steps per pixel, and the teacher's y_hat as the codec
    decodes it (around h_s's mean, the smallest scales not coded)."""
    anchor = tf.random.uniform(tf.shape(x)[:1], 0, len(teacher.lambdas), tf.int32)
    gain = (2.0 ** tf.gather(teacher.gain_y, anchor))[:, None, None, :]
    y_teacher = teacher.g_a(x)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    latent = tf.reduce_sum(tf.square((student.g_a(x) - y_teacher) * gain), (1, 2, 3)) / pixels
    return anchor, latent, teacher.quantize(y_teacher, anchor)[0]


def distillation_loss(teacher, student):
    """extra_loss for finetune: the student's latents against the teacher's, and the student's
    decoding of the teacher's y_hat against the teacher's (latent_terms)."""
    lambdas = tf.constant(teacher.lambdas, tf.float32)

    def loss(x):
        anchor, latent, y_hat = latent_terms(teacher, student, x)
        pixel = tf.reduce_mean(tf.square(student.g_s(y_hat) - teacher.g_s(y_hat)),
                               (1, 2, 3)) * 255.0 ** 2
        return tf.reduce_mean(LATENT_WEIGHT * latent
                              + PIXEL_WEIGHT * tf.gather(lambdas, anchor) * pixel)
    return loss
