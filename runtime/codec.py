"""The codec on the device: TFLite transforms, an integer h_s, and two entropy models.

    codec = aedge.load()                           # the shipped model, or aedge.load("my.aem")
    data = codec.compress(array, quality=75)       # uint8 HxWx3 (or HxW greyscale) -> bytes
    array = codec.decompress(data)                 # bytes -> uint8 HxWx3 (or HxW)

compress:   y = g_a(x); z = h_a(y); z_q = round(z * gain_z)          -> z's stream
            mean, scale index = h_s(z_q / gain_z) (integers)
            q = round(y * gain_y - mean)                              -> y's stream
decompress: z_q, then h_s as above, then q; g_s((q + mean) / gain_y)
"""
import os
import time

import numpy as np

from aedge import bitstream, hyper, modelfile
from aedge.entropy_models import EntropyBottleneck, GaussianConditional
from aedge.errors import AedgeError
from aedge.interpreter import Network

# 40 megapixels take about 10 GB to code (the networks' activations dominate): beyond that,
# and for hostile headers, refuse rather than be killed by the out-of-memory reaper.
MAX_PIXELS = 40_000_000
STRIDE, HYPER_STRIDE = 16, 64


class Codec:
    """One model, loaded once: its networks stay warm for every image of the same size."""

    def __init__(self, model, variant=None, threads=None):
        self.model = model if isinstance(model, modelfile.ModelFile) else modelfile.read(model)
        variant = variant or self.model.default_variant
        if variant not in self.model.variants:
            raise AedgeError(f"model {self.model.name} has no {variant} networks")
        self.variant = variant
        self.threads = threads or os.cpu_count() or 1
        self._networks = {}
        manifest, arrays = self.model.manifest, self.model.arrays
        self.default_quality = manifest["default_quality"]
        self.m = manifest["latent_channels"]
        try:
            self.h_s = hyper.HyperSynthesis(manifest["h_s"], [
                (arrays[f"h_s.{i}.kernel"], arrays[f"h_s.{i}.bias"], arrays[f"h_s.{i}.shift"])
                for i in range(len(manifest["h_s"]))])
            self.z_model = EntropyBottleneck(arrays["z_offsets"],
                                             modelfile.unpack_tables(arrays["z_freqs"]))
            scales = manifest["scales"]
            self.y_model = GaussianConditional(arrays["y_offsets"],
                                               modelfile.unpack_tables(arrays["y_freqs"]),
                                               skip=int(scales["skip"]))
            self.log2_scale_min, self.per_octave = scales["log2_min"], scales["per_octave"]
        except (KeyError, ValueError, TypeError) as e:
            raise AedgeError(f"{self.model.path} is not a valid aedge model file "
                             f"({type(e).__name__}: {e})") from None
        if self.h_s.layers[-1][2] != 2 * self.m or self.h_s.in_channels != \
                manifest["hyper_channels"] or self.h_s.upsampling != HYPER_STRIDE // STRIDE:
            raise AedgeError(f"{self.model.path}: h_s does not fit the latents")
        self.timings = {}

    @property
    def identity(self):
        return self.model.identity

    def _network(self, part):
        if part not in self._networks:
            self._networks[part] = Network(self.model.network(part, self.variant), self.threads)
        return self._networks[part]

    def compress(self, image, quality=None):
        quality = self._quality(quality)
        image, mode = _as_rgb(image)
        height, width = image.shape[:2]
        gains = self._gains(quality)
        clock = _Clock()
        y = self._network("g_a")(self._pad(image))
        z = self._network("h_a")(y)[0]
        clock("networks")
        if not (np.isfinite(y).all() and np.isfinite(z).all()):
            raise AedgeError(f"the encoder networks of {self.model.name} gave non-finite values")
        z_q = np.rint(z * gains["gain_z"]).astype(np.int64)
        mean, index = self._hyper(z_q, quality, y.shape[1:3])
        clock("h_s")
        q = np.rint(y[0] * gains["gain_y"] - mean).astype(np.int64)
        coded = {"z": self.z_model.compress(z_q), "y": self.y_model.compress(q, index)}
        clock("entropy")
        self.timings = clock.spent
        header = bitstream.Header(self.identity, width, height, mode, quality)
        return bitstream.pack(header, coded)

    def _parse(self, data):
        header, coded = bitstream.parse(bytes(data))
        if header.model_id != self.identity:
            raise AedgeError(f"file was made by model {header.model_id.hex()}, not by "
                             f"{self.identity.hex()} ({self.model.name})")
        if header.width * header.height > MAX_PIXELS:
            raise AedgeError(f"image too large ({header.width}x{header.height})")
        return header, coded

    def decompress(self, data):
        header, coded = self._parse(data)
        gains = self._gains(header.quality)
        clock = _Clock()
        y_shape, z_shape = _latent_shapes(header)
        z_q = self.z_model.decompress(coded["z"], z_shape)
        clock("entropy")
        mean, index = self._hyper(z_q, header.quality, y_shape)
        clock("h_s")
        q = self.y_model.decompress(coded["y"], index)
        clock("entropy")
        y_hat = ((q + mean) * gains["gain_y_inverse"]).astype(np.float32)
        x_hat = self._network("g_s")(y_hat[None])[0, :header.height, :header.width]
        if not np.isfinite(x_hat).all():
            raise AedgeError(f"the decoder network of {self.model.name} gave non-finite values")
        image = np.clip(np.rint(x_hat * 255), 0, 255).astype(np.uint8)
        clock("networks")
        self.timings = clock.spent
        return image[..., 0] if header.mode == "L" else image

    def latents(self, data):
        """(z_q, scale indexes, q): the integers a file decodes to, without the networks."""
        header, coded = self._parse(data)
        y_shape, z_shape = _latent_shapes(header)
        z_q = self.z_model.decompress(coded["z"], z_shape)
        _, index = self._hyper(z_q, header.quality, y_shape)
        return z_q, index, self.y_model.decompress(coded["y"], index)

    def _hyper(self, z_q, quality, shape):
        """Integer h_s: (mean of y * gain, as float64, exact; scale index of each value)."""
        arrays, row = self.model.arrays, quality - 1
        shift = hyper.GAIN_FRAC_BITS - hyper.ACT_FRAC_BITS
        a = hyper.shift_round(z_q * arrays["gain_z_inverse"][row], shift)
        out = self.h_s(np.clip(a, -hyper.ACT_LIMIT, hyper.ACT_LIMIT))[:shape[0], :shape[1]]
        mean = out[..., :self.m] * arrays["gain_y"][row]
        log2_scale = out[..., self.m:] + arrays["log2_gain_y"][row]
        index = ((log2_scale - self.log2_scale_min) * self.per_octave
                 + (1 << (hyper.ACT_FRAC_BITS - 1))) >> hyper.ACT_FRAC_BITS
        index = np.clip(index, 0, len(self.y_model.offsets) - 1)
        return mean / float(1 << (hyper.ACT_FRAC_BITS + hyper.GAIN_FRAC_BITS)), index

    def _gains(self, quality):
        arrays, row = self.model.arrays, quality - 1
        unit = float(1 << hyper.GAIN_FRAC_BITS)
        return {k: arrays[k][row] / unit for k in ("gain_y", "gain_y_inverse", "gain_z")}

    def _quality(self, quality):
        if quality is None:
            return self.default_quality
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or \
                not 1 <= quality <= modelfile.QUALITIES:
            raise AedgeError(f"quality must be an integer from 1 to {modelfile.QUALITIES}, "
                             f"not {quality!r}")
        return int(quality)

    def _pad(self, image):
        """Pads to a multiple of the stride by repeating edges (cheaper to code than black)."""
        h, w = image.shape[:2]
        x = np.pad(image, ((0, -h % STRIDE), (0, -w % STRIDE), (0, 0)), mode="edge")
        return (x.astype(np.float32) / 255.0)[None]


def _latent_shapes(header):
    """(rows, columns) of y and of z for an image of the header's size."""
    return ((-(-header.height // STRIDE), -(-header.width // STRIDE)),
            (-(-header.height // HYPER_STRIDE), -(-header.width // HYPER_STRIDE)))


class _Clock:
    """Seconds spent per stage, for the bench's split."""

    def __init__(self):
        self.spent, self._last = {}, time.perf_counter()

    def __call__(self, stage):
        now = time.perf_counter()
        self.spent[stage] = self.spent.get(stage, 0.0) + now - self._last
        self._last = now


def _as_rgb(image):
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise AedgeError(f"images must be uint8 arrays, not {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise AedgeError(f"images must be HxW or HxWx3 arrays, not shape {image.shape}")
    if min(image.shape[:2]) < 1 or image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AedgeError(f"image size {image.shape[1]}x{image.shape[0]} is out of range "
                         f"(1 to {MAX_PIXELS // 1_000_000} megapixels)")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2), "L"
    return image, "RGB"
