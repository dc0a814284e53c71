"""Train the codec of model.py with JAX, on an accelerator that has JAX but no TensorFlow.

    python train/jax_train.py PACK -o OUT --lmbda 0.002 --lmbda 0.02 --minutes 7

PACK is a folder of training images made by `python -m aedge.train.pack`. Several lambdas train
side by side in one compiled step, on the same stream of crops, for a fixed wall-clock budget:
the number of steps is set from the measured time of the first steps, and written down.
The model, its initialisation, the loss and the optimiser are those of model.py and train.py
(Adam, each gradient clipped to norm 1, learning rate dropped tenfold late in training).
Weights are saved in the order and layout of the Keras model's variables;
`python -m aedge.train.convert` turns them into Keras weights that train.py and export take.

Only numpy, pillow, click and JAX are imported, so this file runs as a script on a machine where
aedge is not installed.
"""
import json
import os
import time
from pathlib import Path

import click
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from PIL import Image

N_FILTERS, M_LATENT = 64, 192  # as in model.py
EB_FILTERS, EB_INIT_SCALE = (3, 3, 3), 10.0
CLIPNORM, ADAM_EPSILON = 1.0, 1e-7  # tf_keras Adam(clipnorm=1.0) clips each variable alone


# Parameters: a list of (name, array) in the order of the Keras model's variables.

def _glorot(key, shape):
    kh, kw, cin, cout = shape
    limit = np.sqrt(6 / (kh * kw * (cin + cout)))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def _gdn_params(name, channels):
    gamma = 0.1 * np.eye(channels, dtype=np.float32) + 2.0 ** -18
    return [(f"{name}.beta_root", jnp.ones(channels)),
            (f"{name}.gamma_root", jnp.asarray(np.sqrt(gamma)[None, None]))]


def init_params(key, n=N_FILTERS, m=M_LATENT):
    keys = iter(jax.random.split(key, 16))
    params = []

    def conv(name, size, cin, cout):
        params.extend([(f"{name}.kernel", _glorot(next(keys), (size, size, cin, cout))),
                       (f"{name}.bias", jnp.zeros(cout))])

    for i, (cin, cout) in enumerate([(3, n), (n, n), (n, n), (n, m)]):
        conv(f"g_a.conv{i}", 4, cin, cout)
        if i < 3:
            params.extend(_gdn_params(f"g_a.gdn{i}", cout))
    for i, (cin, cout) in enumerate([(m, n), (n, n), (n, n), (n, 3)]):
        conv(f"g_s.up{i}", 3, cin, 4 * cout)
        if i < 3:
            params.extend(_gdn_params(f"g_s.igdn{i}", cout))
    sizes = (1,) + EB_FILTERS + (1,)
    scale = EB_INIT_SCALE ** (1 / (len(EB_FILTERS) + 1))
    for k in range(len(EB_FILTERS) + 1):
        init = np.log(np.expm1(1 / scale / sizes[k + 1]))
        params.append((f"entropy_bottleneck.matrix_{k}",
                       jnp.full((m, sizes[k + 1], sizes[k]), init, jnp.float32)))
        params.append((f"entropy_bottleneck.bias_{k}", jax.random.uniform(
            next(keys), (m, sizes[k + 1], 1), jnp.float32, -0.5, 0.5)))
        if k < len(EB_FILTERS):
            params.append((f"entropy_bottleneck.factor_{k}", jnp.zeros((m, sizes[k + 1], 1))))
    return params


# The model, as functions of a {name: array} dict.

def _conv(x, kernel, bias, stride=1, padding="SAME"):
    y = lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def _gdn(p, name, x, inverse):
    beta = jnp.square(p[f"{name}.beta_root"]) + 1e-6
    norm = _conv(x * x, jnp.square(p[f"{name}.gamma_root"]), beta, padding="VALID")
    return x * jnp.sqrt(norm) if inverse else x * lax.rsqrt(norm)


def _depth_to_space(x):
    # TensorFlow's channel order: output[2h+i, 2w+j, c] = input[h, w, (2i+j)C + c].
    b, h, w, c4 = x.shape
    c = c4 // 4
    x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, 2 * h, 2 * w, c)


def g_a(p, x):
    for i in range(4):
        x = _conv(x, p[f"g_a.conv{i}.kernel"], p[f"g_a.conv{i}.bias"], stride=2)
        if i < 3:
            x = _gdn(p, f"g_a.gdn{i}", x, inverse=False)
    return x


def g_s(p, y):
    for i in range(4):
        y = _depth_to_space(_conv(y, p[f"g_s.up{i}.kernel"], p[f"g_s.up{i}.bias"]))
        if i < 3:
            y = _gdn(p, f"g_s.igdn{i}", y, inverse=True)
    return y


def _logits_cdf(p, x):
    for k in range(len(EB_FILTERS) + 1):
        x = jnp.matmul(jax.nn.softplus(p[f"entropy_bottleneck.matrix_{k}"]), x)
        x = x + p[f"entropy_bottleneck.bias_{k}"]
        if k < len(EB_FILTERS):
            x = x + jnp.tanh(p[f"entropy_bottleneck.factor_{k}"]) * jnp.tanh(x)
    return x


def likelihood(p, y):
    """Probability mass of the unit interval around each latent value, as (channels, 1, n)."""
    values = jnp.transpose(y, (3, 0, 1, 2)).reshape(y.shape[-1], 1, -1)
    lower, upper = _logits_cdf(p, values - 0.5), _logits_cdf(p, values + 0.5)
    sign = -jnp.sign(lower + upper)
    mass = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
    return jnp.maximum(mass, 1e-9)


def rd_terms(p, x, noise_key, lmbda):
    """(loss, bpp, mse) with uniform noise in place of rounding, as Codec.rd_terms in training."""
    y = g_a(p, x)
    y_tilde = y + jax.random.uniform(noise_key, y.shape, jnp.float32, -0.5, 0.5)
    bits = jnp.sum(-jnp.log(likelihood(p, y_tilde))) / np.log(2)
    x_hat = g_s(p, y_tilde)
    bpp = bits / (x.shape[0] * x.shape[1] * x.shape[2])
    mse = jnp.mean(jnp.square(x - x_hat)) * 255.0 ** 2
    return bpp + lmbda * mse, (bpp, mse)


# Data: every image of the pack on the device, padded to one size; crops are cut there.

def load_pack(folder):
    files = sorted(Path(folder).glob("*.jpg"))
    if not files:
        raise click.ClickException(f"no .jpg images in {folder} (make it with aedge.train.pack)")
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    sizes = np.array([im.shape[:2] for im in images], np.int32)
    packed = np.zeros((len(images), *sizes.max(0), 3), np.uint8)
    for i, im in enumerate(images):
        packed[i, :im.shape[0], :im.shape[1]] = im
    return packed, sizes


def _about(pack):
    about = Path(pack) / "pack.json"
    return json.loads(about.read_text()) if about.is_file() else {"source": str(pack)}


def random_crops(key, images, sizes, batch, crop):
    k_index, k_y, k_x, k_flip = jax.random.split(key, 4)
    index = jax.random.randint(k_index, (batch,), 0, images.shape[0])
    room = sizes[index] - crop + 1
    top = (jax.random.uniform(k_y, (batch,)) * room[:, 0]).astype(jnp.int32)
    left = (jax.random.uniform(k_x, (batch,)) * room[:, 1]).astype(jnp.int32)
    cut = jax.vmap(lambda i, t, l: lax.dynamic_slice(images[i], (t, l, 0), (crop, crop, 3)))
    crops = cut(index, top, left)
    flip = jax.random.bernoulli(k_flip, 0.5, (batch,))
    crops = jnp.where(flip[:, None, None, None], crops[:, :, ::-1], crops)
    return crops.astype(jnp.float32) / 255.0


# Training.

def _adam(grads, state, lr, count):
    m, v = state
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    m_hat_scale, v_hat_scale = 1 / (1 - 0.9 ** count), 1 / (1 - 0.999 ** count)
    updates = jax.tree.map(
        lambda m, v: -lr * (m * m_hat_scale) / (jnp.sqrt(v * v_hat_scale) + ADAM_EPSILON), m, v)
    return updates, (m, v)


def _clip_each(grads):
    def clip(g):
        norm = jnp.sqrt(jnp.sum(g * g))
        return g * (CLIPNORM / jnp.maximum(norm, CLIPNORM))
    return jax.tree.map(clip, grads)


def make_step(lambdas, batch, crop):
    grad_fn = jax.value_and_grad(rd_terms, has_aux=True)

    def step(models, states, images, sizes, key, lr, count):
        k_data, *k_noise = jax.random.split(key, 1 + len(lambdas))
        x = random_crops(k_data, images, sizes, batch, crop)
        new_models, new_states, metrics = [], [], []
        for p, state, lmbda, k in zip(models, states, lambdas, k_noise):
            (loss, (bpp, mse)), grads = grad_fn(p, x, k, lmbda)
            updates, state = _adam(_clip_each(grads), state, lr, count)
            new_models.append(jax.tree.map(jnp.add, p, updates))
            new_states.append(state)
            metrics.append(jnp.stack([loss, bpp, mse]))
        return new_models, new_states, jnp.stack(metrics)

    return jax.jit(step, donate_argnums=(0, 1))


def save(out, names, models, lambdas, meta):
    for lmbda, p in zip(lambdas, models):
        arrays = {f"{i:03d}:{name}": np.asarray(p[name]) for i, name in enumerate(names)}
        target = out / f"lambda-{lmbda:g}.npz"
        tmp = out / f"lambda-{lmbda:g}.partial.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, target)
    (out / "train.partial.json").write_text(json.dumps(meta, indent=2))
    os.replace(out / "train.partial.json", out / "train.json")


@click.command()
@click.argument("pack", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--lmbda", "lambdas", type=float, multiple=True, required=True,
              help="One model per lambda (repeat the option).")
@click.option("--latent-channels", type=int, default=M_LATENT, show_default=True)
@click.option("--minutes", type=float, required=True,
              help="Wall-clock budget for the whole run, loading and compilation included.")
@click.option("--max-steps", type=int, default=0, help="At most this many steps (0: no limit).")
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=4e-4, show_default=True)
@click.option("--lr-drop-at", type=float, default=0.85, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(pack, out_dir, lambdas, latent_channels, minutes, max_steps, batch, crop, lr,
         lr_drop_at, seed):
    """Train one model per lambda for a fixed time."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    images, sizes = load_pack(pack)
    images, sizes = jax.device_put(images), jax.device_put(sizes)
    click.echo(f"{images.shape[0]} images {tuple(images.shape[1:3])} on {jax.devices()[0]} "
               f"in {time.time() - started:.0f} s")

    key = jax.random.key(seed)
    key, *init_keys = jax.random.split(key, 1 + len(lambdas))
    initial = [init_params(k, m=latent_channels) for k in init_keys]
    # The Keras order of the variables; the dicts come back from jax.tree.map sorted by name.
    names = [name for name, _ in initial[0]]
    models = [dict(params) for params in initial]
    states = [(jax.tree.map(jnp.zeros_like, p), jax.tree.map(jnp.zeros_like, p)) for p in models]
    step = make_step(tuple(lambdas), batch, crop)

    def run(count, lr_now):
        nonlocal models, states, key
        key, k = jax.random.split(key)
        models, states, metrics = step(models, states, images, sizes, k,
                                       jnp.float32(lr_now), jnp.float32(count))
        return metrics

    t = time.time()
    run(1, lr).block_until_ready()
    compile_s = time.time() - t
    timed = min(10, max_steps - 1) if max_steps else 10
    t = time.time()
    for count in range(2, 2 + timed):
        metrics = run(count, lr)
    metrics.block_until_ready()
    step_s = (time.time() - t) / max(timed, 1)
    # Leave room for the final save: a run stopped from outside keeps only its last save.
    deadline = started + minutes * 60 - 10
    steps = 1 + timed + int((deadline - time.time()) / step_s)
    if max_steps:
        steps = min(steps, max_steps)
    drop = int(steps * lr_drop_at)
    click.echo(f"compiled in {compile_s:.0f} s; {step_s * 1000:.1f} ms per step for "
               f"{len(lambdas)} models; {steps} steps, lr drop at {drop}")

    meta = {"lambdas": list(lambdas), "n": N_FILTERS, "m": latent_channels, "batch": batch,
            "crop": crop, "lr": lr, "lr_drop_at": drop, "planned_steps": steps, "seed": seed,
            "pack": _about(pack), "pack_images": int(images.shape[0]),
            "device": str(jax.devices()[0].device_kind), "seconds_per_step": step_s,
            "history": []}
    window, last_save, count = [], time.time(), 1 + timed
    while count < steps and time.time() < deadline:
        count += 1
        window.append(run(count, lr if count <= drop else lr / 10))
        if count % 500 == 0 or count == steps:
            mean = np.mean(jax.device_get(window), axis=0)
            window = []
            psnr = 10 * np.log10(255.0 ** 2 / mean[:, 2])
            meta["history"].append({"step": count, "loss": mean[:, 0].tolist(),
                                    "bpp": mean[:, 1].tolist(), "psnr": psnr.tolist()})
            click.echo(f"step {count}: " + "  ".join(
                f"[{lm:g}] {b:.3f} bpp {q:.2f} dB" for lm, b, q in zip(lambdas, mean[:, 1], psnr)))
            if time.time() - last_save > 90:
                meta["steps"] = count
                save(out, names, models, lambdas, meta)
                last_save = time.time()
    meta["steps"] = count
    if count <= drop:  # stopped by the clock before the learning rate dropped
        meta["lr_drop_at"] = None
    meta["train_seconds"] = time.time() - started
    save(out, names, models, lambdas, meta)
    click.echo(f"saved {len(lambdas)} models after {count} steps in {out}")


if __name__ == "__main__":
    main()
