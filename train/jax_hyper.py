"""Fit the hyperprior (h_a, h_s, z's density, z's gains) to a trained g_a, on rate alone.

    python -m aedge.train.jax_hyper PACK -o runs/hyper-fit --init-from models/hyper/weights.npz

With g_a and g_s held fixed, what the hyperprior changes is mostly the bits: a coded value of y
is decoded within half a step of itself whatever the tables (the means move where rounding
falls, not how far); only the values left uncoded (the smallest scales) take h_s's mean, and
the fit ignores what that does to the pixels. So g_a runs once over the pack, its latents
are kept, and training runs on latent crops alone: about a twentieth of the full model's work
per crop. That is what lets a CPU teach h_s to read z, which the full model's first steps
fail to do (z shrinks to nothing while h_s is still noise).

Each crop is coded at a random anchor; its bits are divided by that anchor's bits at the start,
so every anchor weighs the same, as in a BD-rate. A run stops at --minutes and resumes from
OUT/state.npz; OUT/weights.npz is the whole model, ready for jax_train --init-from or export.
OUT/history.jsonl logs held-out bits per pixel per anchor, with real rounding.
"""
import json
import time
from pathlib import Path

import click
import jax
import jax.numpy as jnp
import numpy as np

try:
    from aedge.train import architecture as arch
    from aedge.train import jax_model as model
    from aedge.train.files import find_images, split
    from aedge.train.jax_train import _adam, _clip_each, centre_crops, load_images, load_params, \
        load_state, reinit_names, save_run, trained_gigapixels
except ImportError:  # run as a script beside the others, without aedge installed
    import architecture as arch
    import jax_model as model
    from files import find_images, split
    from jax_train import _adam, _clip_each, centre_crops, load_images, load_params, load_state, \
        reinit_names, save_run, trained_gigapixels

TRAINED = ("h_a.", "h_s.", "z_density.", "gain.z")
LATENT_CROP = 16  # latents of a 256x256 crop


def _views(image, count):
    """The first `count` of: the image, mirrored, upside down, both."""
    views = [image, image[:, ::-1], image[::-1], image[::-1, ::-1]]
    return views[:count]


def latents_of(params, images, views=1, progress=None):
    """g_a's output (before any gain) for each image, cut to a multiple of the stride, float16."""
    g_a = jax.jit(lambda x: model.chain(params, "g_a", x))
    out = []
    for n, image in enumerate(images):
        h, w = (s // arch.STRIDE * arch.STRIDE for s in image.shape[:2])
        for view in _views(image[:h, :w], views):
            x = jnp.asarray(np.ascontiguousarray(view)[None], jnp.float32) / 255.0
            out.append(np.asarray(g_a(x)[0], np.float16))
        if progress:
            progress(n + 1)
    return out


def random_latent_crops(rng, latents, batch, crop):
    out = np.empty((batch, crop, crop, arch.M_LATENT), np.float32)
    for b, i in enumerate(rng.integers(len(latents), size=batch)):
        h, w = latents[i].shape[:2]
        top, left = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
        out[b] = latents[i][top:top + crop, left:left + crop]
    return out


def make_rate_step(reference_bits):
    """One Adam step on the hyperprior's parameters; the loss is each crop's bits against its
    anchor's reference."""
    reference_bits = jnp.asarray(reference_bits)

    def step(p, state, y, anchor, key, lr, count, z_weight):
        train = {k: v for k, v in p.items() if k.startswith(TRAINED)}
        fixed = {k: v for k, v in p.items() if not k.startswith(TRAINED)}

        def loss(t):
            _, bits = model.code_latents({**t, **fixed}, y, anchor, key, z_weight)
            return jnp.mean(bits / reference_bits[anchor]), bits

        (_, bits), grads = jax.value_and_grad(loss, has_aux=True)(train)
        updates, state = _adam(_clip_each(grads), state, {k: lr for k in train}, count)
        return {**p, **{k: train[k] + updates[k] for k in train}}, state, bits

    return jax.jit(step, donate_argnums=(0, 1))


def held_out_bits(params, latents):
    """Mean bits per crop at each anchor, with rounding: (anchors,)."""
    code = jax.jit(lambda p, y, a: model.code_latents(p, y, a)[1])
    y = jnp.asarray(np.stack(latents).astype(np.float32))
    return np.array([float(jnp.mean(code(params, y, jnp.full(len(y), a))))
                     for a in range(len(arch.LAMBDAS))])


@click.command()
@click.argument("pack", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--init-from", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The trained model (.npz): its g_a makes the latents.")
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The original photo folder: its held-out 3% measure the bits.")
@click.option("--reinit", multiple=True, type=click.Choice(["h_a", "h_s", "z_density", "gain.z"]),
              help="Start this part afresh (repeatable) on a new run.")
@click.option("--views", type=click.IntRange(1, 4), default=2, show_default=True,
              help="Latents of each image as is, mirrored, upside down, both.")
@click.option("--minutes", type=float, default=60, show_default=True)
@click.option("--max-steps", type=int, default=0, help="Stop at this total step (0: no limit).")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True,
              help="Falls along a cosine to a tenth of itself over the call's --minutes.")
@click.option("--z-rate-weight", type=float, default=0.3, show_default=True,
              help="Price of z's bits at the first step of a run; it rises to 1 by the middle.")
@click.option("--seed", type=int, default=0, show_default=True)
def main(pack, out_dir, init_from, val_dir, reinit, views, minutes, max_steps, batch, lr,
         z_rate_weight, seed):
    """Fit the hyperprior to a trained g_a, on cached latents."""
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = model.init_params(jax.random.key(seed))
    state_file, meta_file = out / "state.npz", out / "train.json"
    if state_file.is_file():
        params, state = load_state(state_file, list(params),
                                   [k for k in params if k.startswith(TRAINED)])
        meta = json.loads(meta_file.read_text())
        click.echo(f"resuming {out} at step {meta['steps']}")
    else:
        fresh = dict(params)
        found = load_params(init_from, params)
        for k in reinit_names(params, reinit):
            params[k] = fresh[k]
        trained = [k for k in params if k.startswith(TRAINED)]
        state = ({k: jnp.zeros_like(params[k]) for k in trained},
                 {k: jnp.zeros_like(params[k]) for k in trained})
        # gigapixels: the images g_a and g_s have been trained on, unchanged here.
        meta = {"init_from": init_from, "reinit": sorted(reinit), "loaded": len(found),
                "steps": 0, "crops": 0, "gigapixels": trained_gigapixels(init_from),
                "calls": []}

    def progress(label, total):
        def show(n):
            if n % 200 == 0 or n == total:
                click.echo(f"{label}: {n}/{total} ({time.time() - started:.0f} s)", err=True)
        return show

    images = load_images(pack, 256)
    latents = latents_of(params, images, views, progress("pack latents", len(images)))
    del images
    held_out = split(find_images(val_dir), 0.03)[1]
    if not held_out:
        raise click.ClickException(f"none of the images under {val_dir} is held out for "
                                   "validation (3% of them, by name)")
    held = load_images(val_dir, 256, held_out)
    val = latents_of(params, np.rint(centre_crops(held, 256) * 255).astype(np.uint8))
    reference = held_out_bits(params, val)
    meta.setdefault("reference_bits", reference.tolist())
    click.echo(f"{len(latents)} latents, {len(val)} held out; held-out bpp at the start: " +
               " ".join(f"{b / 256 ** 2:.4f}" for b in reference))
    history = out / "history.jsonl"

    def log(bits):
        with history.open("a") as f:
            f.write(json.dumps({"step": meta["steps"], "crops": meta["crops"],
                                "val_bpp": (bits / 256 ** 2).tolist()}) + "\n")

    def save():
        call.update(ended_step=meta["steps"], seconds=round(time.time() - started))
        save_run(out, params, state, meta)

    if meta["steps"] == 0:
        log(reference)
    call = {"started_step": meta["steps"], "batch": batch, "lr": lr, "views": views,
            "z_rate_weight": z_rate_weight, "pack": str(pack)}
    meta["calls"].append(call)
    step = make_rate_step(np.asarray(meta["reference_bits"], np.float32))
    rng = np.random.default_rng([seed, meta["steps"]])
    key = jax.random.key(seed + meta["steps"])
    begin, deadline = time.time(), started + minutes * 60 - 20
    last_save = last_eval = time.time()
    while time.time() < deadline and not (max_steps and meta["steps"] >= max_steps):
        done = (time.time() - begin) / max(deadline - begin, 1)
        rate = lr * (0.1 + 0.45 * (1 + np.cos(np.pi * done)))
        z_weight = min(1.0, z_rate_weight + (1 - z_rate_weight) * 2 * done)
        y = random_latent_crops(rng, latents, batch, LATENT_CROP)
        anchor = rng.integers(len(arch.LAMBDAS), size=batch)
        key, k = jax.random.split(key)
        meta["steps"] += 1
        meta["crops"] += batch
        params, state, _ = step(params, state, jnp.asarray(y), jnp.asarray(anchor), k,
                                jnp.float32(rate), jnp.float32(meta["steps"]),
                                jnp.float32(z_weight))
        if time.time() - last_eval > 180:
            bits = held_out_bits(params, val)
            log(bits)
            click.echo(f"step {meta['steps']} lr {rate:.1e} z price {z_weight:.2f}: held-out "
                       "bits against the start " + " ".join(
                           f"{b / r - 1:+.1%}" for b, r in zip(bits, meta["reference_bits"])))
            last_eval = time.time()
        if time.time() - last_save > 300:
            save()
            last_save = time.time()
    log(held_out_bits(params, val))
    save()
    click.echo(f"saved {out} at step {meta['steps']}")


if __name__ == "__main__":
    main()
