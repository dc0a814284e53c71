"""The mean-scale hyperprior codec of architecture.py in Keras: what train.py trains and export
turns into TFLite networks. train/jax_model.py is the same model in JAX (a test checks that they
compute the same on the same weights).

Training replaces rounding by additive uniform noise for the rates, and gives the decoder the
rounded latents (straight-through gradients); it minimises bits per pixel + lambda * MSE, each
crop at one of the rate anchors, with that anchor's gains. h_s rounds its weights and
activations as the integer runtime does.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from aedge.train import architecture as arch

DISTORTIONS = ("mse", "ms-ssim")


class GDN(keras.layers.Layer):
    """Generalized divisive normalization: y = x / sqrt(beta + gamma . x^2), or its inverse."""

    def __init__(self, inverse=False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = inverse

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # Squared parameterisation keeps beta and gamma non-negative with plain gradient steps.
        # The small pedestal matters: a root of exactly zero would get zero gradient, and the
        # off-diagonal couplings between channels would never learn.
        self.beta_root = self.add_weight(
            name="beta_root", shape=(channels,), initializer="ones", dtype=tf.float32)
        gamma = 0.1 * np.eye(channels, dtype=np.float32) + 2.0 ** -18
        self.gamma_root = self.add_weight(
            name="gamma_root", shape=(1, 1, channels, channels),
            initializer=keras.initializers.Constant(np.sqrt(gamma)[None, None]),
            dtype=tf.float32)

    def call(self, x):
        beta = tf.square(self.beta_root) + arch.GDN_BETA_FLOOR
        gamma = tf.square(self.gamma_root)
        norm = tf.nn.bias_add(tf.nn.conv2d(x * x, gamma, 1, "VALID"), beta)
        return x * tf.sqrt(norm) if self.inverse else x * tf.math.rsqrt(norm)

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


class SubpixelConv(keras.layers.Layer):
    """Upsample by 2: a convolution to 4x the channels, then depth_to_space."""

    def __init__(self, filters, kernel=3, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel = filters, kernel
        self.conv = keras.layers.Conv2D(filters * 4, kernel, padding="same")

    def call(self, x):
        return tf.nn.depth_to_space(self.conv(x), 2)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel": self.kernel}


def transform(name, layers):
    """A keras.Sequential of one chain of architecture.py."""
    out = []
    for kind, k, channels, act in layers:
        if kind == "up":
            out.append(SubpixelConv(channels, k))
        else:
            out.append(keras.layers.Conv2D(channels, k, strides=2 if kind == "conv" else 1,
                                           padding="same"))
        if act in ("gdn", "igdn"):
            out.append(GDN(inverse=act == "igdn"))
        elif act == "relu":
            out.append(keras.layers.ReLU())
    return keras.Sequential(out, name=name)


def _ste(x, rounded):
    return x + tf.stop_gradient(rounded - x)


class IntegerHyperSynthesis(keras.layers.Layer):
    """h_s, rounding weights, biases and activations as runtime/hyper.py computes them."""

    def __init__(self, layers=arch.H_S, **kwargs):
        super().__init__(**kwargs)
        self.chain = [tuple(layer) for layer in layers]

    def build(self, input_shape):
        self.kernels, self.biases = [], []
        cins = arch.in_channels(self.chain, int(input_shape[-1]))
        for i, ((kind, k, out, _), cin) in enumerate(zip(self.chain, cins)):
            cout = out * 4 if kind == "up" else out
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(k, k, cin, cout),
                                                initializer="glorot_uniform"))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(cout,),
                                               initializer="zeros"))

    @staticmethod
    def _round_input(x):
        unit = 2.0 ** arch.ACT_FRAC_BITS
        x = tf.clip_by_value(x, -arch.ACT_LIMIT / unit, arch.ACT_LIMIT / unit)
        return _ste(x, tf.floor(x * unit + 0.5) / unit)  # halves up, as the runtime rounds

    @staticmethod
    def rounded(kernel, bias):
        peak = tf.reduce_max(tf.abs(tf.reshape(kernel, (-1, kernel.shape[-1]))), axis=0)
        shift = tf.floor(tf.math.log(arch.WEIGHT_LIMIT / tf.maximum(peak, 1e-30)) / np.log(2))
        w_scale = tf.stop_gradient(2.0 ** tf.clip_by_value(shift, 0, arch.MAX_WEIGHT_SHIFT))
        b_scale = w_scale * 2.0 ** arch.ACT_FRAC_BITS
        return (_ste(kernel, tf.round(kernel * w_scale) / w_scale),
                _ste(bias, tf.round(bias * b_scale) / b_scale))

    def call(self, x):
        for (kind, _, _, act), kernel, bias in zip(self.chain, self.kernels, self.biases):
            kernel, bias = self.rounded(kernel, bias)
            x = tf.nn.bias_add(tf.nn.conv2d(self._round_input(x), kernel, 1, "SAME"), bias)
            if kind == "up":
                x = tf.nn.depth_to_space(x, 2)
            if act == "relu":
                x = tf.nn.relu(x)
        return self._round_input(x)

    def get_config(self):
        return {**super().get_config(), "layers": self.chain}


class EntropyBottleneck(keras.layers.Layer):
    """Per-channel learned cumulative distribution (Ballé et al. 2018, appendix 6.1).

    The CDF of each channel is sigmoid(f(x)), with f a chain of small monotonic maps:
    matrices kept positive through softplus, and x + tanh(a) * tanh(x) nonlinearities.
    """

    def __init__(self, filters=arch.EB_FILTERS, init_scale=arch.EB_INIT_SCALE, **kwargs):
        super().__init__(dtype=tf.float32, **kwargs)
        self.filters = tuple(filters)
        self.init_scale = float(init_scale)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        sizes = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        self.matrices, self.biases, self.factors = [], [], []
        for k in range(len(self.filters) + 1):
            init = np.log(np.expm1(1 / scale / sizes[k + 1]))
            self.matrices.append(self.add_weight(
                name=f"matrix_{k}", shape=(channels, sizes[k + 1], sizes[k]),
                initializer=keras.initializers.Constant(init)))
            self.biases.append(self.add_weight(
                name=f"bias_{k}", shape=(channels, sizes[k + 1], 1),
                initializer=keras.initializers.RandomUniform(-0.5, 0.5)))
            if k < len(self.filters):
                self.factors.append(self.add_weight(
                    name=f"factor_{k}", shape=(channels, sizes[k + 1], 1), initializer="zeros"))

    def logits_cdf(self, x):
        """x: (channels, 1, n) -> logits of the CDF at x, same shape."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = tf.matmul(tf.nn.softplus(matrix), x) + bias
            if k < len(self.factors):
                x += tf.tanh(self.factors[k]) * tf.tanh(x)
        return x

    def call(self, y):
        """Probability mass of the unit interval around each value of y (batch, h, w, channels)."""
        channels = tf.shape(y)[-1]
        values = tf.reshape(tf.transpose(y, (3, 0, 1, 2)), (channels, 1, -1))
        lower = self.logits_cdf(values - 0.5)
        upper = self.logits_cdf(values + 0.5)
        # Subtract in the tail where both sigmoids are far from 1, for precision.
        sign = -tf.sign(lower + upper)
        mass = tf.maximum(tf.abs(tf.sigmoid(sign * upper) - tf.sigmoid(sign * lower)), 1e-9)
        return tf.transpose(tf.reshape(mass, tf.concat([[channels], tf.shape(y)[:3]], 0)),
                            (1, 2, 3, 0))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "init_scale": self.init_scale}


def gaussian_likelihood(v, scale):
    """Mass of [v - 1/2, v + 1/2] under a zero-mean Gaussian of the given scale."""
    v = tf.abs(v)
    upper = 0.5 * tf.math.erfc((v - 0.5) / (scale * np.sqrt(2)))
    lower = 0.5 * tf.math.erfc((v + 0.5) / (scale * np.sqrt(2)))
    return tf.maximum(upper - lower, 1e-9)


class PSNR(keras.metrics.Mean):
    """PSNR of the mean MSE: a metric, so that replicas' values are combined, never summed."""

    def result(self):
        mse = tf.maximum(super().result(), 1e-10)
        return 10 * tf.math.log(255.0 ** 2 / mse) / tf.math.log(10.0)


class Codec(keras.Model):
    """Variable-rate rate-distortion autoencoder; call((x, anchor)) -> (x_hat, bits per crop)."""

    def __init__(self, lambdas=arch.LAMBDAS, distortion="mse", warm_lambda=None,
                 filters=arch.N_FILTERS, **kwargs):
        super().__init__(**kwargs)
        if distortion not in DISTORTIONS:
            raise ValueError(f"distortion must be one of {DISTORTIONS}")
        self.lambdas = tuple(float(v) for v in lambdas)
        self.distortion = distortion
        self.filters = arch.widths(filters)
        self.chains = {"g_a": arch.g_a(self.filters), "g_s": arch.g_s(self.filters),
                       "h_a": arch.H_A}
        self.g_a = transform("g_a", self.chains["g_a"])
        self.g_s = transform("g_s", self.chains["g_s"])
        self.h_a = transform("h_a", self.chains["h_a"])
        # Integer rounding needs float32 even under mixed precision: 2**17 overflows float16.
        self.h_s = IntegerHyperSynthesis(name="h_s", dtype="float32")
        self.z_density = EntropyBottleneck(name="z_density")
        k = len(self.lambdas)
        log2_gain = 0.5 * np.log2(np.array(self.lambdas) / (
            warm_lambda or np.median(self.lambdas)))
        init = np.repeat(log2_gain[:, None], arch.M_LATENT, 1).astype(np.float32)
        const = keras.initializers.Constant
        self.gain_y = self.add_weight(name="gain_y", shape=(k, arch.M_LATENT),
                                      initializer=const(init))
        self.gain_y_inverse = self.add_weight(name="gain_y_inverse", shape=(k, arch.M_LATENT),
                                              initializer=const(-init))
        self.gain_z = self.add_weight(name="gain_z", shape=(k, arch.Z_LATENT), initializer="zeros")
        self.gain_z_inverse = self.add_weight(name="gain_z_inverse", shape=(k, arch.Z_LATENT),
                                              initializer="zeros")
        self.loss_tracker = {n: keras.metrics.Mean(name=n) for n in ("loss", "bpp", "mse")}
        self.loss_tracker["psnr"] = PSNR(name="psnr")

    def _gains(self, anchor):
        """2**gain per crop. anchor: integers, or float positions between and below the
        anchors, interpolated in log2 as export.gain_tables places the qualities."""
        read = lambda g, i: tf.cast(tf.gather(g, i), tf.float32)
        if anchor.dtype.is_floating:
            # In float32 whatever the positions' dtype or the policy: under mixed precision
            # the gains read as float16, and float16 times float32 fails.
            anchor = tf.cast(anchor, tf.float32)
            low = tf.clip_by_value(tf.floor(anchor), 0.0, len(self.lambdas) - 2.0)
            frac, low = (anchor - low)[:, None], tf.cast(low, tf.int32)
            at = lambda g: (1 - frac) * read(g, low) + frac * read(g, low + 1)
        else:
            at = lambda g: read(g, anchor)
        pick = lambda g: (2.0 ** at(g))[:, None, None, :]
        return (pick(self.gain_y), pick(self.gain_y_inverse), pick(self.gain_z),
                pick(self.gain_z_inverse))

    def call(self, inputs, training=False):
        x, anchor = inputs
        y = tf.cast(self.g_a(x), tf.float32)
        y_hat, bits = self.quantize(y, anchor, training)
        return tf.cast(self.g_s(y_hat), tf.float32), bits

    def quantize(self, y, anchor, training=False):
        """(what g_s reads, bits per crop) for latents y at these anchors: y_hat as the runtime
        decodes it (rounded around h_s's mean, the smallest scales not coded, the inverse gain;
        straight-through for gradients) and the bits of z and y (uniform noise in training)."""
        gain, gain_inv, hgain, hgain_inv = self._gains(anchor)
        z = tf.cast(self.h_a(y), tf.float32) * hgain
        noise = lambda t: t + tf.random.uniform(tf.shape(t), -0.5, 0.5)
        z_rate = noise(z) if training else tf.round(z)
        # h_s gives 4x z's size; y's side need not be a multiple of 4 (the runtime crops too).
        out = self.h_s(_ste(z, tf.round(z)) * hgain_inv)[:, :tf.shape(y)[1], :tf.shape(y)[2]]
        mean = out[..., :arch.M_LATENT] * gain
        scale = tf.clip_by_value(2.0 ** out[..., arch.M_LATENT:] * gain, arch.SCALE_MIN,
                                 arch.SCALE_MAX)
        # Values at the smallest scales are not coded (runtime: index below SKIP): they cost
        # no bits and the decoder takes them as 0.
        coded = tf.stop_gradient(tf.cast(scale >= arch.scale_of(arch.SKIP - 0.5), tf.float32))
        v = y * gain - mean
        v_rate = noise(v) if training else tf.round(v)
        y_hat = (coded * _ste(v, tf.round(v)) + mean) * gain_inv
        y_bits = coded * -tf.math.log(gaussian_likelihood(v_rate, scale))
        bits = (tf.reduce_sum(-tf.math.log(self.z_density(z_rate)), axis=(1, 2, 3))
                + tf.reduce_sum(y_bits, axis=(1, 2, 3))) / np.log(2)
        return y_hat, bits

    def rd_terms(self, x, training, anchor=None):
        """(loss, bpp, mse), each per crop; crops without an anchor get random ones."""
        if anchor is None:
            anchor = tf.random.uniform(tf.shape(x)[:1], 0, len(self.lambdas), tf.int32)
        x_hat, bits = self((x, anchor), training=training)
        pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
        bpp = bits / pixels
        mse = tf.reduce_mean(tf.square(x - x_hat), axis=(1, 2, 3)) * 255.0 ** 2
        if self.distortion == "ms-ssim":
            # Five scales need crops of at least 176 pixels (train with --crop 256).
            distortion = 1 - tf.image.ssim_multiscale(x, tf.clip_by_value(x_hat, 0.0, 1.0), 1.0)
        else:
            distortion = mse
        return bpp + tf.gather(tf.constant(self.lambdas), anchor) * distortion, bpp, mse

    def _update(self, loss, bpp, mse):
        # Metrics aggregate across replicas and batches; a returned tensor would be summed.
        for name, value in (("loss", loss), ("bpp", bpp), ("mse", mse), ("psnr", mse)):
            self.loss_tracker[name].update_state(value)
        return {n: m.result() for n, m in self.loss_tracker.items()}

    @property
    def metrics(self):
        return list(self.loss_tracker.values())

    def train_step(self, x):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss, bpp, mse = self.rd_terms(x, training=True)
            # Each replica's gradient is summed across replicas: scale to the global mean.
            scaled = tf.reduce_mean(loss) / replicas
            if hasattr(self.optimizer, "get_scaled_loss"):
                scaled = self.optimizer.get_scaled_loss(scaled)
        grads = tape.gradient(scaled, self.trainable_variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update(loss, bpp, mse)

    def test_step(self, x):
        # Validation measures the real codec (rounded latents), at the middle anchor.
        anchor = tf.fill(tf.shape(x)[:1], len(self.lambdas) // 2)
        return self._update(*self.rd_terms(x, training=False, anchor=anchor))

    def get_config(self):
        return {"lambdas": self.lambdas, "distortion": self.distortion, "filters": self.filters}

    def named_variables(self):
        """{name: variable} in jax_model.py's names, for converting weights either way."""
        out = {}
        for chain, layers in self.chains.items():
            keras_layers = iter(getattr(self, chain).layers)
            for i, (kind, _, _, act) in enumerate(layers):
                conv = next(keras_layers)
                conv = conv.conv if kind == "up" else conv
                out[f"{chain}.{i}.kernel"], out[f"{chain}.{i}.bias"] = conv.kernel, conv.bias
                if act:
                    nonlinearity = next(keras_layers)
                    if act in ("gdn", "igdn"):
                        out[f"{chain}.{i}.{act}.beta_root"] = nonlinearity.beta_root
                        out[f"{chain}.{i}.{act}.gamma_root"] = nonlinearity.gamma_root
        for i, (kernel, bias) in enumerate(zip(self.h_s.kernels, self.h_s.biases)):
            out[f"h_s.{i}.kernel"], out[f"h_s.{i}.bias"] = kernel, bias
        for k, matrix in enumerate(self.z_density.matrices):
            out[f"z_density.matrix_{k}"] = matrix
            out[f"z_density.bias_{k}"] = self.z_density.biases[k]
            if k < len(self.z_density.factors):
                out[f"z_density.factor_{k}"] = self.z_density.factors[k]
        for name in ("y", "y_inverse", "z", "z_inverse"):
            out[f"gain.{name}"] = getattr(self, f"gain_{name}")
        return out


def build(codec, crop=64):
    codec((tf.zeros((1, crop, crop, 3)), tf.zeros((1,), tf.int32)))
    return codec


def load_npz(codec, path):
    """Sets the weights of a built Codec from a jax_train.py .npz (every one must be there)."""
    variables = codec.named_variables()
    with np.load(path) as saved:
        missing = sorted(set(variables) - set(saved.files))
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing[:3])}"
                             f"{' and more' if len(missing) > 3 else ''}")
        for name, variable in variables.items():
            if tuple(saved[name].shape) != tuple(variable.shape):
                raise ValueError(f"{path}: {name} has shape {saved[name].shape}, the model "
                                 f"{tuple(variable.shape)}")
            variable.assign(saved[name])
    return codec


def macs_per_pixel(filters=arch.N_FILTERS):
    """Multiply-accumulates per image pixel: (g_a + h_a, g_s, h_s)."""
    return (arch.macs_per_pixel(arch.g_a(filters), 3)
            + arch.macs_per_pixel(arch.H_A, arch.M_LATENT, 1 / 16),
            arch.macs_per_pixel(arch.g_s(filters), arch.M_LATENT, 1 / 16),
            arch.macs_per_pixel(arch.H_S, arch.Z_LATENT, 1 / 64))
