"""What a context model would save on top of the shipped hyperprior, with the shipped g_a, h_a
and h_s fixed: a trial on cached latents, not a codec.

    python tests/bench/context_gain.py ../shared/data/train ../shared/data/kodak \
        --context channel --steps 8000 -o bench-results/context/channel.json

g_a runs once over centre crops of the training photos (the held-out 3% left out) and over the
24 Kodak images. A small network then corrects h_s's mean and log2 scale of part of y from
parts of y a decoder would already have:
- channel: y in --slices groups of channels (Minnen & Singh 2020); group k's correction is
  read, position by position (1x1 convolutions), from groups 0..k-1 and h_s's output for k.
- checkerboard (He et al. 2021): the positions of one colour are coded as today; the others'
  correction is read from them (a depthwise 3x3 convolution, then 1x1) and h_s's output.
Trained on rate alone (uniform noise), each crop at a random anchor, its bits weighed against
that anchor's bits at the start, as jax_hyper does; measured on Kodak with real rounding.
g_a and g_s are unchanged and the rounding moves only with the mean, so the distortion is
(almost) the same and the change in y's bits is close to the change in BD-rate before z.
"""
import json
import time
from pathlib import Path

import click
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from PIL import Image

from aedge.train import architecture as arch
from aedge.train import jax_model as model
from aedge.train.files import find_images, split
from aedge.train.jax_train import _adam, load_params

M = arch.M_LATENT
CROP = 16  # latents of a training crop
KODAK_PIXELS = 768 * 512


def _conv(x, w, b, groups=1):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=groups,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def _mlp(p, name, x):
    """1x1 layers: relu, relu, then the correction (its last layer starts at zero)."""
    x = jax.nn.relu(_conv(x, p[f"{name}.0"], p[f"{name}.0b"]))
    x = jax.nn.relu(_conv(x, p[f"{name}.1"], p[f"{name}.1b"]))
    return _conv(x, p[f"{name}.2"], p[f"{name}.2b"])


def _mlp_params(key, name, cin, hidden, cout):
    k0, k1 = jax.random.split(key)
    glorot = lambda k, a, b: jax.random.uniform(k, (1, 1, a, b), jnp.float32,
                                                -np.sqrt(6 / (a + b)), np.sqrt(6 / (a + b)))
    return {f"{name}.0": glorot(k0, cin, hidden), f"{name}.0b": jnp.zeros(hidden),
            f"{name}.1": glorot(k1, hidden, hidden), f"{name}.1b": jnp.zeros(hidden),
            f"{name}.2": jnp.zeros((1, 1, hidden, cout)), f"{name}.2b": jnp.zeros(cout)}


def _rate(y, mean, log2_scale, gain, key):
    """(bits, y_hat, |q| / scale) of y coded with these means and scales, as code_latents."""
    scale = jnp.clip(2.0 ** log2_scale * gain, arch.SCALE_MIN, arch.SCALE_MAX)
    coded = lax.stop_gradient(scale >= arch.scale_of(arch.SKIP - 0.5))
    v = (y - mean) * gain
    noisy = jnp.round(v) if key is None else \
        v + jax.random.uniform(key, v.shape, jnp.float32, -0.5, 0.5)
    bits = jnp.where(coded, -jnp.log2(model.gaussian_likelihood(noisy, scale)), 0.0)
    q = jnp.where(coded, jnp.round(v), 0.0)
    return bits, lax.stop_gradient(q / gain + mean), lax.stop_gradient(jnp.abs(q) / scale)


class Channel:
    def __init__(self, slices, hidden):
        self.slices, self.width, self.hidden = slices, M // slices, hidden

    def init(self, key):
        p = {}
        for k, key in zip(range(1, self.slices), jax.random.split(key, self.slices)):
            p.update(_mlp_params(key, str(k), self.width * k + 2 * self.width, self.hidden,
                                 2 * self.width))
        return p

    def bits(self, p, y, mean, log2_scale, gain, key):
        total, seen = 0.0, []
        for k in range(self.slices):
            s = slice(k * self.width, (k + 1) * self.width)
            m, l = mean[..., s], log2_scale[..., s]
            if k:
                d = _mlp(p, str(k), jnp.concatenate(seen + [m, l], -1))
                m, l = m + d[..., :self.width], l + d[..., self.width:]
            bits, y_hat, _ = _rate(y[..., s], m, l, gain[..., s],
                                   None if key is None else jax.random.fold_in(key, k))
            total, seen = total + jnp.sum(bits, axis=(1, 2, 3)), seen + [y_hat]
        return total


class Checkerboard:
    def __init__(self, slices, hidden):
        self.hidden = hidden

    def init(self, key):
        k0, k1 = jax.random.split(key)
        return {"dw": 0.1 * jax.random.normal(k0, (3, 3, 1, 2 * M)), "dwb": jnp.zeros(2 * M),
                **_mlp_params(k1, "mlp", 4 * M, self.hidden, 2 * M)}

    def bits(self, p, y, mean, log2_scale, gain, key):
        h, w = y.shape[1:3]
        first = jnp.asarray((np.add.outer(np.arange(h), np.arange(w)) % 2 == 0)[None, :, :, None])
        keys = (None, None) if key is None else jax.random.split(key)
        bits0, y_hat, magnitude = _rate(y, mean, log2_scale, gain, keys[0])
        seen = jnp.where(first, jnp.concatenate([y_hat, magnitude], -1), 0.0)
        x = jnp.concatenate([_conv(seen, p["dw"], p["dwb"], groups=2 * M), mean, log2_scale], -1)
        d = _mlp(p, "mlp", x)
        bits1, _, _ = _rate(y, mean + d[..., :M], log2_scale + d[..., M:], gain, keys[1])
        return jnp.sum(jnp.where(first, bits0, bits1), axis=(1, 2, 3))


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.argument("kodak", type=click.Path(exists=True, file_okay=False))
@click.option("--weights", default="models/hyper/weights.npz", show_default=True,
              type=click.Path(exists=True, dir_okay=False))
@click.option("--context", type=click.Choice(["channel", "checkerboard"]), default="channel",
              show_default=True)
@click.option("--slices", type=click.IntRange(2), default=4, show_default=True,
              help="Groups of channels (channel context).")
@click.option("--hidden", type=click.IntRange(1), default=64, show_default=True)
@click.option("--steps", type=click.IntRange(1), default=8000, show_default=True)
@click.option("--images", type=click.IntRange(1), default=500, show_default=True,
              help="Training photos whose latents are cached (384-pixel centre crops).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The log, as JSON.")
def main(data, kodak, weights, context, slices, hidden, steps, images, batch, output):
    """Fit a context model on cached latents; print Kodak's y bits against the shipped model's."""
    params = model.init_params(jax.random.key(0))
    load_params(weights, params)
    g_a = jax.jit(lambda x: model.chain(params, "g_a", x))

    def latents(image, side=None):
        h, w = image.shape[:2]
        ch, cw = (min(s, side or s) // arch.STRIDE * arch.STRIDE for s in (h, w))
        image = image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        return np.asarray(g_a(jnp.asarray(image[None], jnp.float32) / 255.0)[0])

    load = lambda f: np.asarray(Image.open(f).convert("RGB"))
    rng = np.random.default_rng(0)
    files = split(find_images(data), 0.03)[0]
    cached = [latents(im, 384) for im in map(load, (files[i] for i in
                                                   rng.permutation(len(files))[:images]))
              if min(im.shape[:2]) >= CROP * arch.STRIDE]
    test = [latents(load(f)) for f in sorted(Path(kodak).glob("*.png"))]

    def hyper(y, anchor):
        gain, _, hgain, hgain_inv = model.gains(params, anchor)
        z = jnp.round(model.chain(params, "h_a", y) * hgain)
        mean, log2_scale = model.h_s(params, z * hgain_inv)
        return mean, log2_scale, gain

    ctx = {"channel": Channel, "checkerboard": Checkerboard}[context](slices, hidden)
    bits = lambda p, y, a, key=None: ctx.bits(p, y, *hyper(y, a), key)
    measure = jax.jit(bits)

    def kodak_bpp(p):
        return np.array([np.mean([float(measure(p, jnp.asarray(y[None]), jnp.array([a]))[0])
                                  for y in test]) / KODAK_PIXELS
                         for a in range(len(arch.LAMBDAS))])

    p = ctx.init(jax.random.key(1))
    start = kodak_bpp(p)
    reference = jnp.asarray(start * CROP ** 2 * arch.STRIDE ** 2, jnp.float32)
    log = {"context": context, "slices": slices, "hidden": hidden, "batch": batch,
           "images": len(cached), "kodak_y_bpp_at_start": start.tolist(), "steps": []}
    click.echo(f"{len(cached)} cached latents; Kodak y bpp per anchor: "
               + " ".join(f"{b:.4f}" for b in start))

    @jax.jit
    def step(p, state, y, anchor, key, lr, count):
        loss = lambda p: jnp.mean(bits(p, y, anchor, key) / reference[anchor])
        grads = jax.grad(loss)(p)
        updates, state = _adam(grads, state, {k: lr for k in p}, count)
        return {k: p[k] + updates[k] for k in p}, state

    state = tuple({k: jnp.zeros_like(v) for k, v in p.items()} for _ in range(2))
    key, began = jax.random.key(2), time.time()
    for n in range(1, steps + 1):
        y = np.stack([c[t:t + CROP, u:u + CROP] for c in
                      (cached[i] for i in rng.integers(len(cached), size=batch))
                      for t, u in [rng.integers(np.array(c.shape[:2]) - CROP + 1)]])
        lr = 1e-3 * (0.05 + 0.475 * (1 + np.cos(np.pi * n / steps)))
        key, k = jax.random.split(key)
        p, state = step(p, state, jnp.asarray(y), jnp.asarray(rng.integers(8, size=batch)), k,
                        jnp.float32(lr), jnp.float32(n))
        if n % 2000 == 0 or n == steps:
            change = kodak_bpp(p) / start - 1
            log["steps"].append({"step": n, "seconds": round(time.time() - began),
                                 "kodak_y_bits_change": change.tolist()})
            click.echo(f"step {n}: Kodak y bits per anchor " +
                       " ".join(f"{c:+.2%}" for c in change))
            if output:
                Path(output).parent.mkdir(parents=True, exist_ok=True)
                Path(output).write_text(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
