"""The codec on the device: TFLite transforms, an integer h_s, and two entropy models.

    codec = aedge.load()                           # the shipped model, or aedge.load("my.aem")
    data = codec.compress(array, quality=75)       # uint8 HxWx3 (or HxW, or with alpha) -> bytes
    array = codec.decompress(data)                 # bytes -> uint8 array of the same layout

compress:   y = g_a(x); z = h_a(y); z_q = round(z * gain_z)          -> z's stream
            mean, scale index = h_s(z_q / gain_z) (integers)
            q = round(y * gain_y - mean)                              -> y's stream
decompress: z_q, then h_s as above, then q; g_s((q + mean) / gain_y)

A codec encodes with one variant of the model's networks (int8-dynamic unless asked), and
records it in the file. It decodes with the variant that encoded the file, where the model has
it and it is not the slow int16x8, unless it was asked for a variant: a network pair that was
trained together decodes best.

Both sweep the image tile by tile (tiles.py), so that memory stays bounded at any size.
"""
import contextlib
import io
import os
import time

import numpy as np

from aedge import bitstream, hyper, modelfile, tiles
from aedge.bitstream import HYPER_STRIDE, MAX_PIXELS, STRIDE
from aedge.entropy_models import EntropyBottleneck, GaussianConditional
from aedge.errors import AedgeError
from aedge.interpreter import Network

# How far each network reaches, in latents of its input (y for g_a's output, h_a's input and
# g_s's input; z for h_s). A stride-2 convolution of 4 taps, "same"-padded, reads from one
# position before its own two to one after, so g_a's latent i reads pixels 16i - 15 to
# 16i + 30: within one latent either side. h_a's z reads y from 4 latents before its own 4 to
# 4 after (whole positions of z keep blocks on z's grid). g_s's pixels depend on y within 2
# latents, h_s's output within 3 positions of z. Each margin is the smallest that leaves a
# block's centre what one call on the whole image gives (tests prove both): aedge 0.8 gave g_a
# 2 and h_a 8, which cost a Kodak image's encoding 5 ms.
G_A_MARGIN, H_A_MARGIN, G_S_MARGIN, H_S_MARGIN = 1, 4, 2, 3
# A size target's binary search: quality 1, then one try per halving of the qualities.
_FIT_TRIES = 1 + (modelfile.QUALITIES - 1).bit_length()


class Codec:
    """One model, loaded once: its networks are read from the file when first needed."""

    def __init__(self, model, variant=None, threads=None):
        self.model = model if isinstance(model, modelfile.ModelFile) else modelfile.read(model)
        self.pinned = bool(variant)  # asked for: it decodes every file too
        variant = variant or self.model.default_variant
        if variant not in self.model.variants:
            floats = modelfile.float32_path(self.model.path).name
            hint = (f"; its float32 networks are in a file of their own ({floats}, made by "
                    "make export and make quantize): give it as the model, or put it in a "
                    "folder named in "
                    "$AEDGE_MODEL_PATH" if variant == "float32" else "")
            raise AedgeError(f"model {self.model.name} has no {variant} networks{hint}")
        self.variant = variant
        self.threads = threads or os.cpu_count() or 1
        self._networks = {}
        manifest, arrays = self.model.manifest, self.model.arrays
        self.default_quality = manifest["default_quality"]
        self.m, self.z_channels = manifest["latent_channels"], manifest["hyper_channels"]
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
        except Exception as e:  # whatever a broken table or h_s makes numpy raise
            raise AedgeError(f"{self.model.path} is not a valid aedge model file "
                             f"({' '.join(str(e).split())})") from None
        # The means and the log-scales come out as two parts of h_s's last layer
        # (HyperSynthesis.floats parts=2), which only a stride-1 last layer can give.
        if self.h_s.layers[-1][0] != "conv1" or self.h_s.layers[-1][2] != 2 * self.m or \
                self.h_s.in_channels != self.z_channels \
                or self.h_s.upsampling != HYPER_STRIDE // STRIDE:
            raise AedgeError(f"{self.model.path} is not a valid aedge model file (h_s does "
                             "not fit the latents)")
        self.timings = {}

    @property
    def identity(self):
        return self.model.identity

    def decoder_variant(self, header):
        """The networks that decode a file with this header."""
        if not self.pinned and header.networks in self.model.variants and \
                header.networks in modelfile.FOLLOWED:
            return header.networks
        return self.variant

    def _network(self, part, variant=None):
        variant = variant or self.variant
        if (part, variant) not in self._networks:
            network = Network(self.model.network(part, variant), self.threads,
                              f"{self.model.path}: its {part} network")
            # A decoder in the encoder's place would run, and give nonsense.
            expected = {"g_a": (3, self.m), "h_a": (self.m, self.z_channels),
                        "g_s": (self.m, 3)}[part]
            if network.channels != expected:
                raise AedgeError(f"{network.name} takes {network.channels[0]} channels and "
                                 f"gives {network.channels[1]}, not {expected[0]} and "
                                 f"{expected[1]}")
            self._networks[part, variant] = network
        return self._networks[part, variant]

    # --- compress -------------------------------------------------------------------------

    def compress(self, image, quality=None, icc=b"", progress=None, max_bytes=None):
        """progress(done, total), if given, is called after each tile. With max_bytes, the
        highest quality whose file fits in that many bytes (no quality may be given then)."""
        rgb, mode, alpha = _channels(image)
        sections = (_alpha_png(alpha), bytes(icc or b""))
        if max_bytes is None:
            return self._encode(rgb, mode, self._quality(quality), sections, progress)
        if quality is not None:
            raise AedgeError("give a quality or a file size, not both")
        return self._fit(rgb, mode, sections, int(max_bytes), progress)

    def _fit(self, rgb, mode, sections, max_bytes, progress):
        """Binary search over the qualities: files grow with quality. A one-tile image keeps
        its y and z between tries, the networks not depending on the quality."""
        kept = {} if bitstream.tile_grid(*rgb.shape[:2]) == (1, 1) else None
        tries = {}

        def size(quality):
            tries[quality] = self._encode(rgb, mode, quality, sections, None, kept)
            return len(tries[quality])

        if size(1) > max_bytes:
            raise AedgeError(f"cannot fit in {max_bytes} bytes: the smallest file aedge makes of "
                             f"this image is {len(tries[1])} bytes (quality 1)")
        low, high = 1, modelfile.QUALITIES  # low always fits
        while low < high:
            middle = (low + high + 1) // 2
            if size(middle) <= max_bytes:
                low = middle
            else:
                high = middle - 1
            if progress:
                progress(len(tries), _FIT_TRIES)
        return tries[low]

    def _encode(self, rgb, mode, quality, sections, progress, kept=None):
        height, width = rgb.shape[:2]
        gains = self._gains(quality)
        grid = tiles.Grid(height, width)
        clock = _Clock()

        def cached(name, make):
            if kept is None:
                return make
            return lambda i, j: kept[name, i, j] if (name, i, j) in kept else \
                kept.setdefault((name, i, j), make(i, j))

        y_tiles = grid.window(cached("y", lambda i, j: self._analysis(
            rgb, grid.y_bounds(i, j), grid.y, clock)), lag=1)
        z_floats = cached("z", lambda i, j: self._hyper_analysis(y_tiles, grid, i, j, clock))
        z_tiles = grid.window(lambda i, j: np.rint(z_floats(i, j) * gains["gain_z"])
                              .astype(np.int64))
        coded = []
        for i, j in grid.steps():
            mean, index = self._tile_hyper(z_tiles, grid, i, j, quality, clock)
            q = y_tiles(i, j) * gains["gain_y"]  # in place from here: a million values
            q -= mean
            q = np.rint(q, out=q).astype(np.int64)
            with clock("entropy"):
                coded.append({"z": self.z_model.compress(z_tiles(i, j)),
                              "y": self.y_model.compress(q, index)})
            y_tiles.done(i, j)
            z_tiles.done(i, j)
            if progress:
                progress(len(coded), grid.rows * grid.cols)
        self.timings = clock.spent
        header = bitstream.Header(self.identity, width, height, mode, quality, self.variant)
        return bitstream.pack(header, coded, *sections)

    def _analysis(self, rgb, region, shape, clock):
        """y over a region of latents, block by block, each with its margin."""
        r0, r1, c0, c1 = region
        out = np.empty((r1 - r0, c1 - c0, self.m), np.float32)
        g_a = self._network("g_a")
        last = (g_a.size[0] // STRIDE, g_a.size[1] // STRIDE) if g_a.size else None
        for (a, b, c, d), g in tiles.network_calls(region, tiles.BLOCK, G_A_MARGIN, *shape,
                                                   first=last):
            x = _pixels(rgb, *(STRIDE * v for v in g))
            with clock("networks"):
                y = g_a(x[None])[0]
            out[a - r0:b - r0, c - c0:d - c0] = y[a - g[0]:b - g[0], c - g[2]:d - g[2]]
        if not np.isfinite(out).all():
            raise AedgeError(f"the encoder network of {self.model.name} gave non-finite values")
        return out

    def _hyper_analysis(self, y_tiles, grid, i, j, clock):
        """z of tile (i, j), before its gain: h_a block by block, reaching into the
        neighbouring tiles' y."""
        a0, a1, b0, b1 = grid.z_bounds(i, j)
        out = np.empty((a1 - a0, b1 - b0, self.z_channels), np.float32)
        h_a = self._network("h_a")
        for (p0, p1, q0, q1), g in tiles.network_calls((a0, a1, b0, b1), tiles.H_A_BLOCK,
                                                       H_A_MARGIN, *grid.y, scale=4,
                                                       first=h_a.size):
            y = tiles.gather(y_tiles, grid.tile, *g)
            with clock("networks"):
                z = h_a(y[None])[0]
            out[p0 - a0:p1 - a0, q0 - b0:q1 - b0] = \
                z[p0 - g[0] // 4:p1 - g[0] // 4, q0 - g[2] // 4:q1 - g[2] // 4]
        if not np.isfinite(out).all():
            raise AedgeError(f"the encoder network of {self.model.name} gave non-finite values")
        return out

    def _tile_hyper(self, z_tiles, grid, i, j, quality, clock):
        """Mean and scale index of tile (i, j)'s y, from the z_q tiles around it."""
        r0, r1, c0, c1 = grid.y_bounds(i, j)
        g = tiles.grown(*grid.z_bounds(i, j), H_S_MARGIN, *grid.z)
        z_q = tiles.gather(z_tiles, grid.z_tile, *g)
        top, left = r0 - 4 * g[0], c0 - 4 * g[2]
        with clock("h_s"):
            return self._hyper(z_q, quality, (top, top + r1 - r0, left, left + c1 - c0))

    def _hyper(self, z_q, quality, crop=None):
        """Integer h_s: (mean of y * gain, as float64, exact; scale index of each value), of
        the positions of y in crop (top, bottom, left, right), or of all."""
        arrays, row = self.model.arrays, quality - 1
        shift = hyper.GAIN_FRAC_BITS - hyper.ACT_FRAC_BITS
        a = hyper.shift_round(z_q * arrays["gain_z_inverse"][row], shift)
        # Integers held in float64, every value below 2**40: exact, as in h_s itself.
        mean, log2_scale = self.h_s.floats(np.clip(a, -hyper.ACT_LIMIT, hyper.ACT_LIMIT),
                                           self.threads, crop, parts=2)
        # Each step below is one pass, and exact: mu * gain_y is an integer below 2**53 and
        # the scale a power of two, so scaling the gain first changes no bit; likewise
        # ((l + c) * per_octave + 2**7) / 2**8 = l * (per_octave / 2**8) + (c * per_octave +
        # 2**7) / 2**8, every term a multiple of 2**-8 well below 2**45.
        unit = 2.0 ** -(hyper.ACT_FRAC_BITS + hyper.GAIN_FRAC_BITS)
        mean *= arrays["gain_y"][row] * unit
        half, step = 1 << (hyper.ACT_FRAC_BITS - 1), 1.0 / (1 << hyper.ACT_FRAC_BITS)
        offset = ((arrays["log2_gain_y"][row] - self.log2_scale_min) * self.per_octave
                  + half) * step
        log2_scale *= self.per_octave * step
        log2_scale += offset
        index = np.floor(log2_scale, out=log2_scale)
        np.clip(index, 0, len(self.y_model.offsets) - 1, out=index)
        return mean, index.astype(np.int64)

    # --- decompress -----------------------------------------------------------------------

    def decompress(self, data):
        _, bands = self.decompress_bands(data)
        return np.concatenate([band for _, band in bands], axis=0)

    def decompress_bands(self, data, progress=None):
        """(file, bands): the parsed bitstream.File (header, colour profile...), and bands,
        which yields (first row, uint8 rows) from top to bottom, a tile high each, so that a
        writer can stream them out without ever holding the image."""
        file = self._parse(data)
        alpha = _alpha_plane(file.alpha, file.header)
        return file, self._bands(file, alpha, progress)

    def _bands(self, file, alpha, progress):
        header = file.header
        height, width = header.height, header.width
        gains = self._gains(header.quality)
        grid = tiles.Grid(height, width)
        clock = _Clock()
        g_s = self._network("g_s", self.decoder_variant(header))
        z_tiles = grid.window(lambda i, j: self._z_tile(file, grid, i, j, clock), lag=1)

        def y_hat_tile(i, j):
            index, q, mean = self._y_tile(file, grid, z_tiles, i, j, clock)
            y_hat = np.add(q, mean, out=mean)
            # Multiplied in float64, then rounded to float32, in one pass.
            return np.multiply(y_hat, gains["gain_y_inverse"], casting="unsafe",
                               out=np.empty(y_hat.shape, np.float32))

        y_tiles = grid.window(y_hat_tile)
        band_height = grid.tile * STRIDE
        for i in range(grid.rows):
            top = i * band_height
            band = np.empty((min(height - top, band_height), width, 3), np.uint8)
            for j in range(grid.cols):
                for (a, b, c, d), g in tiles.network_calls(grid.y_bounds(i, j), tiles.BLOCK,
                                                           G_S_MARGIN, *grid.y, first=g_s.size):
                    y_hat = tiles.gather(y_tiles, grid.tile, *g)
                    with clock("networks"):
                        x = g_s(y_hat[None])[0]
                        x = x[STRIDE * (a - g[0]):STRIDE * (b - g[0]),
                              STRIDE * (c - g[2]):STRIDE * (d - g[2])]
                        if not np.isfinite(x).all():
                            raise AedgeError(f"the decoder network of {self.model.name} gave "
                                             "non-finite values")
                        # In place, and cast straight into the band: a Kodak image is 1.2
                        # million values, and each temporary of that size costs about a
                        # millisecond.
                        x *= 255
                        np.rint(x, out=x)
                        np.clip(x, 0, 255, out=x)
                        row, col = STRIDE * a - top, STRIDE * c
                        x = x[:band.shape[0] - row, :width - col]
                        np.copyto(band[row:row + x.shape[0], col:col + x.shape[1]], x,
                                  casting="unsafe")
                y_tiles.done(i, j)
                z_tiles.done(i, j)
                if progress:
                    progress(i * grid.cols + j + 1, grid.rows * grid.cols)
            self.timings = clock.spent
            yield top, _layout(band, header.mode, alpha, top)

    def _z_tile(self, file, grid, i, j, clock):
        a0, a1, b0, b1 = grid.z_bounds(i, j)
        with clock("entropy"):
            return self.z_model.decompress(file.tiles[i * grid.cols + j]["z"],
                                           (a1 - a0, b1 - b0))

    def _y_tile(self, file, grid, z_tiles, i, j, clock):
        """(scale index, q, mean) of tile (i, j)."""
        mean, index = self._tile_hyper(z_tiles, grid, i, j, file.header.quality, clock)
        with clock("entropy"):
            q = self.y_model.decompress(file.tiles[i * grid.cols + j]["y"], index)
        return index, q, mean

    def latents(self, data):
        """(z_q, scale indexes, q) of the whole image: the integers a file decodes to,
        without the networks."""
        file = self._parse(data)
        grid = tiles.Grid(file.header.height, file.header.width)
        clock = _Clock()
        z_tiles = grid.window(lambda i, j: self._z_tile(file, grid, i, j, clock))

        def whole(part):
            return np.concatenate([np.concatenate([part(i, j) for j in range(grid.cols)], axis=1)
                                   for i in range(grid.rows)])
        y_parts = {(i, j): self._y_tile(file, grid, z_tiles, i, j, clock)[:2]
                   for i, j in grid.steps()}
        return (whole(z_tiles), whole(lambda i, j: y_parts[i, j][0]),
                whole(lambda i, j: y_parts[i, j][1]))

    def _parse(self, data):
        file = bitstream.parse(data)
        if file.header.model_id not in modelfile.identities(self.model):
            raise AedgeError(modelfile.retired(file.header.model_id) or
                             f"file was made by model {file.header.model_id.hex()}, not by "
                             f"{self.identity.hex()} ({self.model.name})")
        return file

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


def _pixels(rgb, y0, y1, x0, x1):
    """A region of the image padded to whole latents by repeating its last row and column
    (cheaper to code than black), as float32 in [0, 1]."""
    height, width = rgb.shape[:2]
    if y1 <= height and x1 <= width:  # inside the image: a view, not a gather
        block = rgb[y0:y1, x0:x1]
    else:
        rows = np.minimum(np.arange(y0, y1), height - 1)
        cols = np.minimum(np.arange(x0, x1), width - 1)
        block = rgb[rows[:, None], cols]
    return np.divide(block, np.float32(255), dtype=np.float32)


class _Clock:
    """Seconds spent per stage, for the bench's split."""

    def __init__(self):
        self.spent = {}

    @contextlib.contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[stage] = self.spent.get(stage, 0.0) + time.perf_counter() - start


def _channels(image):
    """(RGB array, mode, alpha plane or None) of an HxW, HxWx2, HxWx3 or HxWx4 uint8 array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise AedgeError(f"images must be uint8 arrays, not {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)):
        raise AedgeError(f"images must be HxW, HxWx2, HxWx3 or HxWx4 arrays, not shape "
                         f"{image.shape}")
    if min(image.shape[:2]) < 1 or image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AedgeError(f"image size {image.shape[1]}x{image.shape[0]} is out of range "
                         f"(1 to {MAX_PIXELS // 1_000_000} megapixels)")
    if image.ndim == 2:
        image = image[..., None]
    alpha = image[..., -1] if image.shape[2] in (2, 4) else None
    colour = image[..., :3] if image.shape[2] >= 3 else image[..., :1]
    if colour.shape[2] == 1:
        return np.broadcast_to(colour, colour.shape[:2] + (3,)), "L", alpha
    return colour, "RGB", alpha


def _alpha_png(alpha):
    """The alpha plane, losslessly, as a greyscale PNG; nothing when it is fully opaque."""
    if alpha is None or alpha.min() == 255:
        return b""
    from PIL import Image  # only where there is alpha: the codec itself needs no Pillow
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(alpha), "L").save(out, format="PNG")
    return out.getvalue()


def _alpha_plane(data, header):
    if not data:
        return None
    from PIL import Image
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        if image.size != (header.width, header.height) or image.mode != "L":
            raise ValueError("wrong size or mode")
        return np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise AedgeError(f"corrupted aedge file (bad alpha section: {e})") from None


def _layout(band, mode, alpha, top):
    """RGB rows -> the layout the image came in: greyscale and alpha put back."""
    colour = band[..., :1] if mode == "L" else band
    if alpha is None:
        return colour[..., 0] if mode == "L" else colour
    return np.concatenate([colour, alpha[top:top + len(band), :, None]], axis=2)
