"""The codec of Ballé et al. 2018 ("factorized prior"), sized for small CPUs.

g_a: four 4x4 stride-2 convolutions with GDN between them (image -> latent at 1/16 size).
g_s: its mirror, with sub-pixel convolutions (conv + depth_to_space) and inverse GDN.
entropy_bottleneck: one learned, non-parametric density per latent channel (appendix 6.1).

Training replaces rounding by additive uniform noise, and minimises bits per pixel + lambda * MSE
(or lambda * (1 - MS-SSIM)).
Sub-pixel convolutions stand where the paper has transposed convolutions because LiteRT runs
TRANSPOSE_CONV fast only on fully static graphs, and images come in every size.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

# Channels: about 7 kMAC per pixel to encode and 15 to decode (see `macs_per_pixel`).
# 192 latent channels: with 96, the transforms could not pass about 33 dB on Kodak at any rate.
N_FILTERS = 64
M_LATENT = 192
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
        beta = tf.square(self.beta_root) + 1e-6
        gamma = tf.square(self.gamma_root)
        norm = tf.nn.bias_add(tf.nn.conv2d(x * x, gamma, 1, "VALID"), beta)
        return x * tf.sqrt(norm) if self.inverse else x * tf.math.rsqrt(norm)

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


class SubpixelConv(keras.layers.Layer):
    """Upsample by 2: a 3x3 convolution to 4x the channels, then depth_to_space."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(filters * 4, 3, padding="same")

    def call(self, x):
        return tf.nn.depth_to_space(self.conv(x), 2)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def analysis_transform(n=N_FILTERS, m=M_LATENT):
    # Even kernels: with TF's "same" padding a 4x4 stride-2 window is centred between input
    # pixels 2i and 2i+1, exactly where depth_to_space in g_s puts latent i back. A 5x5 window
    # is centred on a pixel instead: half a pixel off per layer, 7.5 pixels over four layers,
    # a shift that g_s would have to learn to undo.
    conv = lambda c: keras.layers.Conv2D(c, 4, strides=2, padding="same")
    return keras.Sequential(
        [conv(n), GDN(), conv(n), GDN(), conv(n), GDN(), conv(m)], name="g_a")


def synthesis_transform(n=N_FILTERS):
    up = SubpixelConv
    return keras.Sequential(
        [up(n), GDN(inverse=True), up(n), GDN(inverse=True), up(n), GDN(inverse=True), up(3)],
        name="g_s")


class EntropyBottleneck(keras.layers.Layer):
    """Per-channel learned cumulative distribution (Ballé et al. 2018, appendix 6.1).

    The CDF of each channel is sigmoid(f(x)), with f a chain of small monotonic maps:
    matrices kept positive through softplus, and x + tanh(a) * tanh(x) nonlinearities.
    """

    def __init__(self, filters=(3, 3, 3), init_scale=10.0, **kwargs):
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

    def likelihood(self, y):
        """Probability mass of the unit interval around each value of y (batch, h, w, channels)."""
        channels = tf.shape(y)[-1]
        values = tf.reshape(tf.transpose(y, (3, 0, 1, 2)), (channels, 1, -1))
        lower = self.logits_cdf(values - 0.5)
        upper = self.logits_cdf(values + 0.5)
        # Subtract in the tail where both sigmoids are far from 1, for precision.
        sign = -tf.sign(lower + upper)
        mass = tf.abs(tf.sigmoid(sign * upper) - tf.sigmoid(sign * lower))
        mass = tf.maximum(mass, 1e-9)
        return tf.transpose(tf.reshape(mass, tf.concat([[channels], tf.shape(y)[:3]], 0)),
                            (1, 2, 3, 0))

    def call(self, y):
        return self.likelihood(y)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "init_scale": self.init_scale}


class Codec(keras.Model):
    """Rate-distortion autoencoder; call() returns (x_hat, bits per pixel)."""

    def __init__(self, lmbda, n=N_FILTERS, m=M_LATENT, distortion="mse", **kwargs):
        super().__init__(**kwargs)
        if distortion not in DISTORTIONS:
            raise ValueError(f"distortion must be one of {DISTORTIONS}")
        self.lmbda = float(lmbda)
        self.distortion = distortion
        self.n, self.m = n, m
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n)
        self.entropy_bottleneck = EntropyBottleneck(name="entropy_bottleneck")

    def call(self, x, training=False):
        y = self.g_a(x)
        y = tf.cast(y, tf.float32)
        # Uniform noise stands in for rounding so that gradients flow (Ballé et al. 2017).
        y_tilde = y + tf.random.uniform(tf.shape(y), -0.5, 0.5) if training else tf.round(y)
        likelihood = self.entropy_bottleneck(y_tilde)
        x_hat = tf.cast(self.g_s(y_tilde), tf.float32)
        pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        bpp = tf.reduce_sum(-tf.math.log(likelihood)) / (np.log(2) * pixels)
        return x_hat, bpp

    def rd_terms(self, x, training):
        x_hat, bpp = self(x, training=training)
        mse = tf.reduce_mean(tf.square(x - x_hat)) * 255.0 ** 2
        if self.distortion == "ms-ssim":
            # Five scales need crops of at least 176 pixels (train with --crop 256).
            distortion = 1 - tf.reduce_mean(
                tf.image.ssim_multiscale(x, tf.clip_by_value(x_hat, 0.0, 1.0), 1.0))
        else:
            distortion = mse
        return bpp + self.lmbda * distortion, bpp, mse

    def train_step(self, x):
        with tf.GradientTape() as tape:
            loss, bpp, mse = self.rd_terms(x, training=True)
            scaled = self.optimizer.get_scaled_loss(loss) if hasattr(
                self.optimizer, "get_scaled_loss") else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):
            grads = self.optimizer.get_unscaled_gradients(grads)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._report(loss, bpp, mse)

    def test_step(self, x):
        # Validation measures the real codec: rounded latents, not noise.
        return self._report(*self.rd_terms(x, training=False))

    @staticmethod
    def _report(loss, bpp, mse):
        psnr = 10 * tf.math.log(255.0 ** 2 / tf.maximum(mse, 1e-10)) / tf.math.log(10.0)
        return {"loss": loss, "bpp": bpp, "mse": mse, "psnr": psnr}

    def get_config(self):
        return {"lmbda": self.lmbda, "n": self.n, "m": self.m, "distortion": self.distortion}


def macs_per_pixel(n=N_FILTERS, m=M_LATENT):
    """Multiply-accumulates per image pixel of (g_a, g_s), from the layer shapes above."""
    enc = 3 * n * 16 / 4 + n * n * 16 / 16 + n * n * 16 / 64 + n * m * 16 / 256
    dec = m * 4 * n * 9 / 256 + n * 4 * n * 9 / 64 + n * 4 * n * 9 / 16 + n * 12 * 9 / 4
    return enc, dec
