"""Train the variable-rate hyperprior codec (architecture.py, jax_model.py) with JAX.

    python train/jax_train.py PACK -o runs/hyper --init-from models/hyper.npz --minutes 60

PACK is a folder of training images (any folder of photos, or one made small enough to travel
by `python -m aedge.train.pack`). Every crop of a batch trains at a random one of the rate
anchors (architecture.LAMBDAS), with that anchor's gains and lambda.

A run stops at --minutes or --max-steps and goes on where it stopped when started again on the
same OUT: OUT/state.npz holds the weights and the optimiser, saved every few minutes.
OUT/weights.npz is the weights alone, what a later run (or export) starts from;
OUT/history.jsonl logs rate and PSNR per anchor against training gigapixels, on held-out crops
with real rounding when --val is given.

Only numpy, pillow, click and JAX are imported, so this file runs as a script on a machine where
aedge is not installed.
"""
import json
import os
import queue
import threading
import time
from pathlib import Path

import click
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

try:
    from aedge.train import architecture as arch
    from aedge.train import jax_model as model
    from aedge.train.files import find_images, split
except ImportError:  # run as a script beside the others, without aedge installed
    import architecture as arch
    import jax_model as model
    from files import find_images, split

CLIPNORM, ADAM_EPSILON = 1.0, 1e-7  # tf_keras Adam(clipnorm=1.0) clips each variable alone
# Parameters that a warm start brings trained get --lr; the rest (new parts) --lr-new.
WARM_PREFIXES = ("g_a.", "g_s.")


def load_images(folder, crop, files=None):
    images = []
    try:
        files = files or find_images(folder)
    except FileNotFoundError as e:
        raise click.ClickException(str(e))
    for f in files:
        with Image.open(f) as im:
            image = np.asarray(im.convert("RGB"))
        if min(image.shape[:2]) >= crop:
            images.append(image)
    if not images:
        raise click.ClickException(f"no image of at least {crop}x{crop} under {folder}")
    return images


def random_crops(rng, images, batch, crop):
    """uint8 crops, half of them mirrored: a quarter of the bytes of float32 to the device."""
    out = np.empty((batch, crop, crop, 3), np.uint8)
    for b, i in enumerate(rng.integers(len(images), size=batch)):
        h, w = images[i].shape[:2]
        top, left = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
        out[b] = images[i][top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            out[b] = out[b, :, ::-1]
    return out


def batches(rng, images, batch, crop, anchors, depth=8):
    """(crops, anchors) from random_crops in a background thread: on an accelerator a step
    takes about as long as cutting its crops, so the host cuts the next ones meanwhile."""
    ready, stop = queue.Queue(depth), threading.Event()

    def produce():
        while not stop.is_set():
            item = (random_crops(rng, images, batch, crop), rng.integers(anchors, size=batch))
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    pass

    threading.Thread(target=produce, daemon=True).start()
    try:
        while True:
            yield ready.get()
    finally:
        stop.set()


def centre_crops(images, crop):
    out = []
    for image in images:
        h, w = image.shape[:2]
        out.append(image[(h - crop) // 2:(h - crop) // 2 + crop, (w - crop) // 2:
                         (w - crop) // 2 + crop])
    return np.stack(out).astype(np.float32) / 255.0


def jpeg_points(crops, qualities=(5, 10, 15, 20, 25, 35, 45, 50, 60, 75, 85, 95)):
    """JPEG's mean bpp and PSNR on the held-out crops (Pillow's defaults): the reference the
    training log's BD-rates are computed against."""
    import io
    points = []
    for q in qualities:
        bpp, psnr = [], []
        for crop in crops:
            image = np.rint(crop * 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=q)
            back = np.asarray(Image.open(buffer).convert("RGB"), np.float64)
            bpp.append(8 * buffer.tell() / (image.shape[0] * image.shape[1]))
            psnr.append(10 * np.log10(255.0 ** 2 / np.mean((back - image) ** 2)))
        points.append([q, float(np.mean(bpp)), float(np.mean(psnr))])
    return points


def _adam(grads, state, lr, count):
    m, v = state
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    m_hat_scale, v_hat_scale = 1 / (1 - 0.9 ** count), 1 / (1 - 0.999 ** count)
    updates = {k: -lr[k] * (m[k] * m_hat_scale) / (jnp.sqrt(v[k] * v_hat_scale) + ADAM_EPSILON)
               for k in m}
    return updates, (m, v)


def _clip_each(grads):
    def clip(g):
        norm = jnp.sqrt(jnp.sum(g * g))
        return g * (CLIPNORM / jnp.maximum(norm, CLIPNORM))
    return jax.tree.map(clip, grads)


def make_step(lambdas, frozen=frozenset(), z_weight=1.0):
    """One Adam step on every parameter but the frozen ones (no gradient is computed for those:
    with g_a frozen, nothing flows back through it at all)."""

    def step(p, state, x, anchor, key, lr, count):
        x = x.astype(jnp.float32) / 255.0
        train = {k: v for k, v in p.items() if k not in frozen}
        fixed = {k: v for k, v in p.items() if k in frozen}
        loss = lambda t: model.rd_terms({**t, **fixed}, x, anchor, lambdas, key, z_weight)
        (_, (bpp, mse)), grads = jax.value_and_grad(loss, has_aux=True)(train)
        m, v = state
        updates, (m_t, v_t) = _adam(_clip_each(grads), ({k: m[k] for k in train},
                                                        {k: v[k] for k in train}), lr, count)
        p = {k: p[k] + updates[k] if k in updates else p[k] for k in p}
        return p, ({**m, **m_t}, {**v, **v_t}), bpp, mse

    return jax.jit(step, donate_argnums=(0, 1))


def make_eval():
    @jax.jit
    def evaluate(p, x, anchor):
        x_hat, bits = model.forward(p, x, anchor)
        mse = jnp.mean(jnp.square(x - jnp.clip(x_hat, 0, 1)), axis=(1, 2, 3)) * 255.0 ** 2
        return bits / (x.shape[1] * x.shape[2]), mse
    return evaluate


def trained_gigapixels(weights):
    """What the weights have seen, from the train.json beside them (0 without one): a run that
    starts from them goes on counting, so that the logs of successive runs form one curve."""
    meta = Path(weights).with_name("train.json")
    try:
        return float(json.loads(meta.read_text()).get("gigapixels", 0.0))
    except (OSError, ValueError, AttributeError):
        return 0.0


def save_npz(path, arrays):
    tmp = path.with_name(path.stem + ".partial.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)


def save_run(out, params, state, meta):
    """OUT/weights.npz (what export and later runs start from), OUT/state.npz (the weights and
    the optimiser's moments, to resume) and OUT/train.json, each replaced whole."""
    save_npz(out / "weights.npz", params)
    save_npz(out / "state.npz", {**{f"p:{k}": v for k, v in params.items()},
                                 **{f"m:{k}": v for k, v in state[0].items()},
                                 **{f"v:{k}": v for k, v in state[1].items()}})
    tmp = out / "train.partial"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / "train.json")


def load_state(path, names, moments):
    """(params, (m, v)) from a run's state.npz: the weights `names`, the optimiser's moments
    of `moments`."""
    with np.load(path) as saved:
        params = {k: jnp.asarray(saved[f"p:{k}"]) for k in names}
        state = ({k: jnp.asarray(saved[f"m:{k}"]) for k in moments},
                 {k: jnp.asarray(saved[f"v:{k}"]) for k in moments})
    return params, state


def reinit_names(names, parts):
    """The arrays of the parts (h_a, h_s, z_density, gain.z) that --reinit starts afresh."""
    prefixes = tuple(f"{p}." for p in parts if p != "gain.z")
    return [k for k in names if k.startswith(prefixes)
            or ("gain.z" in parts and k.startswith("gain.z"))]


def load_params(path, params):
    """Every array of the file whose name the model has, widened where the model's g_a and g_s
    stages are wider (--filters); the names it brought."""
    with np.load(path) as saved:
        found = {k: saved[k] for k in saved.files if k in params}
    try:
        params.update(model.widened(found, params))
    except ValueError as e:
        raise click.ClickException(f"{path}: {e}") from None
    return set(found)


def parse_widths(ctx, param, value):
    try:
        return arch.widths(tuple(int(v) for v in value.split(",")) if "," in value
                           else int(value))
    except ValueError:
        raise click.BadParameter("one number, or three separated by commas") from None


@click.command()
@click.argument("pack", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False),
              help="Weights (.npz) to start a new run from; any subset of the model's.")
@click.option("--filters", default=",".join(map(str, arch.widths(arch.N_FILTERS))),
              show_default=True,
              callback=parse_widths,
              help="Channels of g_a's and g_s's inner stages, from the highest resolution "
                   "down: one number, or three (64,96,128). --init-from weights of narrower "
                   "stages start a wider model computing what they computed.")
@click.option("--val", "val_dir", type=click.Path(exists=True, file_okay=False),
              help="The original photo folder: rate and PSNR per anchor are logged on centre "
                   "crops of the 3% of it that training never sees (the rule of train/files.py, "
                   "which packs follow).")
@click.option("--minutes", type=float, default=60, show_default=True,
              help="Wall-clock budget of this call, loading and compilation included.")
@click.option("--max-steps", type=int, default=0, help="Stop at this total step (0: no limit).")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True,
              help="Learning rate of the warm-started transforms g_a and g_s.")
@click.option("--lr-new", type=float, default=5e-4, show_default=True,
              help="Learning rate of everything else (h_a, h_s, densities, gains).")
@click.option("--warm-lambda", type=float, default=0.036, show_default=True,
              help="The lambda the --init-from transforms were trained at (sets first gains).")
@click.option("--freeze", multiple=True, type=click.Choice(["g_a", "g_s", "h_a", "h_s"]),
              help="Keep this transform as it is (repeatable): training the new parts first "
                   "around frozen warm transforms takes half the time per step.")
@click.option("--reinit", multiple=True, type=click.Choice(["h_a", "h_s", "z_density", "gain.z"]),
              help="Start this part afresh (repeatable), e.g. to revive a z that collapsed.")
@click.option("--z-rate-weight", type=float, default=1.0, show_default=True,
              help="Price of z's bits in the loss: below 1 while h_s learns to read a fresh z.")
@click.option("--warmup-steps", type=int, default=0, show_default=True,
              help="Raise the learning rates linearly over the first steps of this call: the "
                   "optimiser's moments start at zero when a run starts from weights alone.")
@click.option("--lr-drop-minutes", type=float, default=0, show_default=True,
              help="Divide every learning rate by 10 for the last minutes of this call: a run "
                   "that ends there ends on settled weights (0: never).")
@click.option("--save-minutes", type=float, default=5, show_default=True)
@click.option("--eval-minutes", type=float, default=15, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(pack, out_dir, init_from, filters, val_dir, minutes, max_steps, batch, crop, lr, lr_new,
         warm_lambda, freeze, reinit, z_rate_weight, warmup_steps, lr_drop_minutes,
         save_minutes, eval_minutes, seed):
    """Train (or go on training) the variable-rate hyperprior codec."""
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lambdas = arch.LAMBDAS
    params = model.init_params(jax.random.key(seed), lambdas, warm_lambda, filters)
    state_file, meta_file = out / "state.npz", out / "train.json"
    resumed = state_file.is_file()
    if resumed:
        meta = json.loads(meta_file.read_text())
        if tuple(meta.get("filters", arch.widths(64))) != tuple(filters):
            raise click.ClickException(f"{out} trains a model of {meta.get('filters', 64)} "
                                       f"channels, not {list(filters)}: give --filters so")
        params, state = load_state(state_file, list(params), list(params))
        click.echo(f"resuming {out} at step {meta['steps']}")
    else:
        warm = load_params(init_from, params) if init_from else set()
        state = (jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, params))
        meta = {"lambdas": list(lambdas), "filters": list(filters), "init_from": init_from,
                "warm": sorted(warm),
                "steps": 0, "gigapixels": 0.0, "calls": []}
        if init_from:
            meta["gigapixels"] = trained_gigapixels(init_from)
    names = list(params)
    rates = {k: jnp.float32(lr if k.startswith(WARM_PREFIXES) and k in meta["warm"] else lr_new)
             for k in names}

    images = load_images(pack, crop)
    val = None
    if val_dir:
        held_out = split(find_images(val_dir), 0.03)[1]
        val = centre_crops(load_images(val_dir, 256, held_out), 256) if held_out else None
    click.echo(f"{len(images)} training images, {0 if val is None else len(val)} held out; "
               f"{jax.devices()[0]}; {time.time() - started:.0f} s")
    rng = np.random.default_rng([seed, meta["steps"]])
    key = jax.random.key(seed + meta["steps"])
    if reinit:
        fresh = model.init_params(jax.random.key(seed + meta["steps"] + 1), lambdas, warm_lambda,
                                  arch.widths_in({k: v.shape for k, v in params.items()}))
        again = reinit_names(names, reinit)
        for k in again:
            params[k] = fresh[k]
            state[0][k], state[1][k] = jnp.zeros_like(fresh[k]), jnp.zeros_like(fresh[k])
        click.echo(f"started afresh: {', '.join(reinit)} ({len(again)} arrays)")
    frozen = frozenset(k for k in names if k.split(".")[0] in freeze)
    step, evaluate = make_step(lambdas, frozen, z_rate_weight), make_eval()
    if val is not None and "val_jpeg" not in meta:
        meta["val_jpeg"] = jpeg_points(val)
    history = out / "history.jsonl"

    def log(record):
        with history.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def run_eval():
        bpp, psnr = [], []
        for a in range(len(lambdas)):
            b, m = [], []
            for first in range(0, len(val), 8):
                x = jnp.asarray(val[first:first + 8])
                rb, rm = evaluate(params, x, jnp.full(len(x), a))
                b.append(np.asarray(rb)), m.append(np.asarray(rm))
            bpp.append(float(np.mean(np.concatenate(b))))
            psnr.append(float(np.mean(10 * np.log10(255.0 ** 2 / np.concatenate(m)))))
        log({"step": meta["steps"], "gigapixels": meta["gigapixels"], "val_bpp": bpp,
             "val_psnr": psnr})
        click.echo(f"step {meta['steps']} ({meta['gigapixels']:.3f} Gpx) held out: " + "  ".join(
            f"{b:.3f}/{q:.2f}" for b, q in zip(bpp, psnr)))

    def save():
        call.update(ended_step=meta["steps"], seconds=round(time.time() - started))
        save_run(out, params, state, meta)

    call = {"started_step": meta["steps"], "batch": batch, "crop": crop, "lr": lr,
            "lr_new": lr_new, "frozen": sorted(freeze), "reinit": sorted(reinit),
            "z_rate_weight": z_rate_weight, "warmup_steps": warmup_steps,
            "lr_drop_minutes": lr_drop_minutes,
            "pack": str(pack), "filters": list(filters),
            "device": jax.devices()[0].device_kind}
    if init_from and not resumed:
        kernels = [f"g_a.{i}.kernel" for i in range(3)]
        with np.load(init_from) as saved:
            before = (arch.widths_in({k: saved[k].shape for k in kernels})
                      if set(kernels) <= set(saved.files) else tuple(filters))
        if before != tuple(filters):
            call["widened_from"] = list(before)
    meta["calls"].append(call)
    deadline = started + minutes * 60 - 15
    last_save = last_eval = time.time()
    if val is not None and meta["steps"] == 0:
        run_eval()
    window, tick = [], time.time()
    # bpp and mse stay on the device until they are logged: reading them every step would
    # make the host wait for each step before it queues the next.
    feed = batches(rng, images, batch, crop, len(lambdas))
    drop_at = deadline - lr_drop_minutes * 60
    while time.time() < deadline and not (max_steps and meta["steps"] >= max_steps):
        if lr_drop_minutes and time.time() >= drop_at and not call.get("lr_dropped_at"):
            rates = {k: v / 10 for k, v in rates.items()}
            call["lr_dropped_at"] = meta["steps"]
            click.echo(f"step {meta['steps']}: learning rates divided by 10", err=True)
        x, anchor = next(feed)
        key, k = jax.random.split(key)
        meta["steps"] += 1
        done = meta["steps"] - call["started_step"]
        now = rates if done >= warmup_steps else \
            {name: r * (done / warmup_steps) for name, r in rates.items()}
        params, state, bpp, mse = step(params, state, jnp.asarray(x), jnp.asarray(anchor), k,
                                       now, jnp.float32(meta["steps"]))
        meta["gigapixels"] += batch * crop * crop / 1e9
        window.append((anchor, bpp, mse))
        if meta["steps"] % 50 == 0:
            a, b, m = (np.concatenate([np.asarray(x) for x in v]) for v in zip(*window))
            window = []
            per = [(b[a == i].mean(), 10 * np.log10(255.0 ** 2 / m[a == i].mean()))
                   if np.any(a == i) else (np.nan, np.nan) for i in range(len(lambdas))]
            log({"step": meta["steps"], "gigapixels": meta["gigapixels"],
                 "train_bpp": [float(v[0]) for v in per], "train_psnr": [float(v[1]) for v in per]})
            click.echo(f"step {meta['steps']} ({(time.time() - tick) / 50 * 1000:.1f} ms/step): "
                       + "  ".join(f"{b:.3f}/{q:.2f}" for b, q in per), err=True)
            tick = time.time()
        if time.time() - last_save > save_minutes * 60:
            save()
            last_save = time.time()
        if val is not None and time.time() - last_eval > eval_minutes * 60:
            run_eval()
            last_eval = time.time()
    feed.close()
    if val is not None:
        run_eval()
    save()
    click.echo(f"saved {out} at step {meta['steps']} ({meta['gigapixels']:.2f} gigapixels)")


if __name__ == "__main__":
    main()
