"""The codec of architecture.py in JAX: parameters, transforms, entropy models, loss.

Parameters are a {name: array} dict whose insertion order is the Keras model's variable order
(train/model.py builds from the same tables). h_s is computed as the runtime computes it, in
integers (runtime/hyper.py): its weights, biases and activations are rounded here with
straight-through gradients, so that the rates training reports are the rates files get.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import erfc

try:
    from aedge.train import architecture as arch
except ImportError:  # run as a script beside architecture.py, without aedge installed
    import architecture as arch


def chains(filters=arch.N_FILTERS):
    return (("g_a", arch.g_a(filters), 3), ("g_s", arch.g_s(filters), arch.M_LATENT),
            ("h_a", arch.H_A, arch.M_LATENT), ("h_s", arch.H_S, arch.Z_LATENT))



# Parameters.

def _glorot(key, shape):
    kh, kw, cin, cout = shape
    limit = np.sqrt(6 / (kh * kw * (cin + cout)))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def _gdn_params(name, channels):
    gamma = 0.1 * np.eye(channels, dtype=np.float32) + 2.0 ** -18
    return {f"{name}.beta_root": jnp.ones(channels, jnp.float32),
            f"{name}.gamma_root": jnp.asarray(np.sqrt(gamma)[None, None])}


def layer_shapes(layers, first):
    """(kernel shape, nonlinearity channels) of each layer of a chain."""
    for (kind, k, out, act), cin in zip(layers, arch.in_channels(layers, first)):
        yield (k, k, cin, out * 4 if kind == "up" else out), out


def init_params(key, lambdas=arch.LAMBDAS, warm_lambda=None, filters=arch.N_FILTERS):
    """Fresh parameters. Gains start at sqrt(lambda / warm_lambda): with uniform quantization
    the step that balances rate against MSE goes as 1 / sqrt(lambda)."""
    keys = iter(jax.random.split(key, 64))
    p = {}
    for chain, layers, first in chains(filters):
        for i, ((shape, channels), layer) in enumerate(zip(layer_shapes(layers, first), layers)):
            p[f"{chain}.{i}.kernel"] = _glorot(next(keys), shape)
            p[f"{chain}.{i}.bias"] = jnp.zeros(shape[-1], jnp.float32)
            if layer[3] in ("gdn", "igdn"):
                p.update(_gdn_params(f"{chain}.{i}.{layer[3]}", channels))
    sizes = (1,) + arch.EB_FILTERS + (1,)
    scale = arch.EB_INIT_SCALE ** (1 / (len(arch.EB_FILTERS) + 1))
    for k in range(len(arch.EB_FILTERS) + 1):
        init = np.log(np.expm1(1 / scale / sizes[k + 1]))
        p[f"z_density.matrix_{k}"] = jnp.full((arch.Z_LATENT, sizes[k + 1], sizes[k]), init,
                                              jnp.float32)
        p[f"z_density.bias_{k}"] = jax.random.uniform(
            next(keys), (arch.Z_LATENT, sizes[k + 1], 1), jnp.float32, -0.5, 0.5)
        if k < len(arch.EB_FILTERS):
            p[f"z_density.factor_{k}"] = jnp.zeros((arch.Z_LATENT, sizes[k + 1], 1), jnp.float32)
    log2_gain = 0.5 * np.log2(np.asarray(lambdas) / (warm_lambda or np.median(lambdas)))
    ones = lambda c: np.ones((len(lambdas), c), np.float32)
    p["gain.y"] = jnp.asarray(log2_gain[:, None] * ones(arch.M_LATENT))
    p["gain.y_inverse"] = -p["gain.y"]
    p["gain.z"] = jnp.zeros((len(lambdas), arch.Z_LATENT), jnp.float32)
    p["gain.z_inverse"] = jnp.zeros((len(lambdas), arch.Z_LATENT), jnp.float32)
    return p


# Transforms.

def _conv(x, kernel, bias, stride=1):
    y = lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def _gdn(p, name, x, inverse):
    beta = jnp.square(p[f"{name}.beta_root"]) + arch.GDN_BETA_FLOOR
    gamma = jnp.square(p[f"{name}.gamma_root"])
    norm = lax.conv_general_dilated(x * x, gamma, (1, 1), "VALID",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC")) + beta
    return x * jnp.sqrt(norm) if inverse else x * lax.rsqrt(norm)


def depth_to_space(x):
    # TensorFlow's channel order: output[2h+i, 2w+j, c] = input[h, w, (2i+j)C + c].
    b, h, w, c4 = x.shape
    c = c4 // 4
    x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, 2 * h, 2 * w, c)


def widened(saved, fresh):
    """Trained parameters in a model of wider g_a / g_s stages (fresh: its own initial
    parameters), computing what they computed: each trained kernel keeps its channels,
    the new channels read the old ones with their fresh weights, and every weight that reads
    a new channel starts at zero. GDN's new couplings keep their small initial value (2^-18
    squared), so the function moves by about that."""
    out = dict(fresh)
    layers = {name: chain_layers for name, chain_layers, _ in chains(arch.widths_in(
        {k: v.shape for k, v in fresh.items()}))}
    for name, value in saved.items():
        value, target = np.asarray(value), np.asarray(fresh[name])
        if value.shape == target.shape:
            out[name] = jnp.asarray(value)
            continue
        if not name.startswith(("g_a.", "g_s.")) or len(value.shape) != len(target.shape) \
                or any(a > b for a, b in zip(value.shape, target.shape)):
            raise ValueError(f"{name} has shape {value.shape}: it does not fit in "
                             f"{target.shape}")
        new = target.copy()
        chain_name, index, kind = name.split(".")[0], int(name.split(".")[1]), name.split(".")[-1]
        if kind in ("kernel", "bias"):
            columns = np.arange(value.shape[-1])
            if layers[chain_name][index][0] == "up":  # depth_to_space: channel k * C + c
                old, now = value.shape[-1] // 4, target.shape[-1] // 4
                columns = (np.arange(4)[:, None] * now + np.arange(old)).ravel()
            if kind == "kernel":
                new[..., value.shape[2]:, :] = 0
                new[:, :, :value.shape[2], columns] = value
            else:
                new[columns] = value
        else:  # GDN: beta_root (C,), gamma_root (1, 1, C, C)
            new[tuple(slice(0, n) for n in value.shape)] = value
        out[name] = jnp.asarray(new)
    return out


def chain(p, name, x, quantize=None):
    """Runs one chain of architecture.py (the widths are the parameters');
    quantize(kernel, bias, x) -> (kernel, bias, x) rounds them as the integer runtime does
    (h_s)."""
    layers = dict((c, l) for c, l, _ in chains())[name]
    for i, (kind, _, _, act) in enumerate(layers):
        kernel, bias = p[f"{name}.{i}.kernel"], p[f"{name}.{i}.bias"]
        if quantize:
            kernel, bias, x = quantize(kernel, bias, x)
        x = _conv(x, kernel, bias, stride=2 if kind == "conv" else 1)
        if kind == "up":
            x = depth_to_space(x)
        if act in ("gdn", "igdn"):
            x = _gdn(p, f"{name}.{i}.{act}", x, inverse=act == "igdn")
        elif act == "relu":
            x = jax.nn.relu(x)
    return quantize(None, None, x)[2] if quantize else x


def _ste(x, rounded):
    return x + lax.stop_gradient(rounded - x)


def weight_shifts(kernel):
    """Per output channel, the power of two that brings the largest weight up to WEIGHT_LIMIT."""
    peak = jnp.max(jnp.abs(kernel).reshape(-1, kernel.shape[-1]), axis=0)
    shift = jnp.floor(jnp.log2(arch.WEIGHT_LIMIT / jnp.maximum(peak, 1e-30)))
    return lax.stop_gradient(jnp.clip(shift, 0, arch.MAX_WEIGHT_SHIFT))


def integer_rounding(kernel, bias, x):
    """What runtime/hyper.py does to a layer's weights and to its input activations."""
    unit = 2.0 ** arch.ACT_FRAC_BITS
    limit = arch.ACT_LIMIT / unit
    x = jnp.clip(x, -limit, limit)
    x = _ste(x, jnp.floor(x * unit + 0.5) / unit)  # halves up, as the runtime's shifts round
    if kernel is None:
        return None, None, x
    w_scale = 2.0 ** weight_shifts(kernel)
    kernel = _ste(kernel, jnp.round(kernel * w_scale) / w_scale)
    b_scale = w_scale * unit
    bias = _ste(bias, jnp.round(bias * b_scale) / b_scale)
    return kernel, bias, x


def h_s(p, z_hat):
    """(mean, log2 scale) of y before its gain, each (batch, h, w, M)."""
    out = chain(p, "h_s", z_hat, quantize=integer_rounding)
    return out[..., :arch.M_LATENT], out[..., arch.M_LATENT:]


# Entropy models.

def _logits_cdf(p, x):
    for k in range(len(arch.EB_FILTERS) + 1):
        x = jnp.matmul(jax.nn.softplus(p[f"z_density.matrix_{k}"]), x) + p[f"z_density.bias_{k}"]
        if k < len(arch.EB_FILTERS):
            x = x + jnp.tanh(p[f"z_density.factor_{k}"]) * jnp.tanh(x)
    return x


def z_likelihood(p, z):
    """Mass of the unit interval around each value of z under its channel's learned density."""
    values = jnp.transpose(z, (3, 0, 1, 2)).reshape(z.shape[-1], 1, -1)
    lower, upper = _logits_cdf(p, values - 0.5), _logits_cdf(p, values + 0.5)
    sign = -jnp.sign(lower + upper)
    mass = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
    return jnp.transpose(jnp.maximum(mass, 1e-9).reshape(z.shape[-1], *z.shape[:3]),
                         (1, 2, 3, 0))


def z_cdf(p, values):
    """CDF of every channel of z at the same points: values (n,) -> (Z, n), for the tables."""
    x = jnp.tile(jnp.asarray(values, jnp.float32)[None, None, :], (arch.Z_LATENT, 1, 1))
    return jax.nn.sigmoid(_logits_cdf(p, x))[:, 0, :]


def gaussian_likelihood(v, scale):
    """Mass of [v - 1/2, v + 1/2] under a zero-mean Gaussian of the given scale."""
    v = jnp.abs(v)
    upper = 0.5 * erfc((v - 0.5) / (scale * np.sqrt(2)))
    lower = 0.5 * erfc((v + 0.5) / (scale * np.sqrt(2)))
    return jnp.maximum(upper - lower, 1e-9)


# The whole codec.

def gains(p, anchor):
    """2**gain for each sample's anchor: (y, y_inverse, z, z_inverse), each (batch, 1, 1, C)."""
    pick = lambda name: (2.0 ** p[name][anchor])[:, None, None, :]
    return pick("gain.y"), pick("gain.y_inverse"), pick("gain.z"), pick("gain.z_inverse")


def code_latents(p, y, anchor, noise_key=None, z_weight=1.0):
    """(y_hat, bits per sample) for g_a's output y (before its gain): uniform noise in place of
    rounding for the rates when a key is given (training), rounding otherwise; y_hat, what g_s
    gets, is always rounded."""
    gain, gain_inv, hgain, hgain_inv = gains(p, anchor)
    z = chain(p, "h_a", y) * hgain
    if noise_key is not None:
        kz, ky = jax.random.split(noise_key)
        z_rate = z + jax.random.uniform(kz, z.shape, jnp.float32, -0.5, 0.5)
    else:
        z_rate = jnp.round(z)
    z_hat = _ste(z, jnp.round(z))
    # h_s gives 4x z's size; y's side need not be a multiple of 4 (the runtime crops too).
    mean, log2_scale = (t[:, :y.shape[1], :y.shape[2]] for t in h_s(p, z_hat * hgain_inv))
    mean = mean * gain
    scale = jnp.clip(2.0 ** log2_scale * gain, arch.SCALE_MIN, arch.SCALE_MAX)
    # Values at the smallest scales are not coded (runtime: index below SKIP): they cost no
    # bits and the decoder takes them as 0.
    coded = lax.stop_gradient(scale >= arch.scale_of(arch.SKIP - 0.5))
    y = y * gain
    v = y - mean
    v_rate = v + jax.random.uniform(ky, v.shape, jnp.float32, -0.5, 0.5) if noise_key is not None \
        else jnp.round(v)
    y_hat = (jnp.where(coded, _ste(v, jnp.round(v)), 0.0) + mean) * gain_inv
    y_bits = jnp.where(coded, -jnp.log2(gaussian_likelihood(v_rate, scale)), 0.0)
    # z_weight < 1 makes z's bits cheaper while h_s learns to read it: at full price a fresh
    # z shrinks to nothing before h_s has learned what to do with it.
    bits = (z_weight * jnp.sum(-jnp.log2(z_likelihood(p, z_rate)), axis=(1, 2, 3))
            + jnp.sum(y_bits, axis=(1, 2, 3)))
    return y_hat, bits


def forward(p, x, anchor, noise_key=None, z_weight=1.0):
    """(x_hat, bits per sample), as code_latents."""
    y_hat, bits = code_latents(p, chain(p, "g_a", x), anchor, noise_key, z_weight)
    return chain(p, "g_s", y_hat), bits


def rd_terms(p, x, anchor, lambdas, noise_key, z_weight=1.0):
    """(loss, (bpp, mse) per sample): each sample at its own anchor's lambda."""
    x_hat, bits = forward(p, x, anchor, noise_key, z_weight)
    bpp = bits / (x.shape[1] * x.shape[2])
    mse = jnp.mean(jnp.square(x - x_hat), axis=(1, 2, 3)) * 255.0 ** 2
    loss = jnp.mean(bpp + jnp.asarray(lambdas)[anchor] * mse)
    return loss, (bpp, mse)
