"""Image-quality and rate metrics: PSNR, MS-SSIM, BD-rate, bits per pixel.

numpy only, so the same numbers can be computed on the device as in training.
"""
import numpy as np

_PEAK = 255.0
_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Each of the 4 downsamplings floors odd sizes, and the last scale still needs a
# full window: floor(side / 2**4) >= 11  <=>  side >= 176.
_MS_SSIM_MIN_SIDE = _WIN_SIZE * 2 ** (len(_MS_SSIM_WEIGHTS) - 1)
# Values per row band in _ssim_terms (x5 moments, float32: ~1 MB, fits L2).
_BAND_ELEMENTS = 1 << 16


def _check_pair(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {a.shape}")
    return a, b


def psnr(a, b):
    """PSNR in dB of two uint8 images (all channels together, peak 255); inf if identical."""
    a, b = _check_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(_PEAK * _PEAK / mse))


def _gaussian_window(size=_WIN_SIZE, sigma=_WIN_SIGMA):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x, w, axis):
    """'valid' 1-D correlation of x with symmetric window w along axis."""
    taps = len(w)
    n = x.shape[axis] - taps + 1
    half = taps // 2

    def part(start):
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + n)
        return x[tuple(index)]

    out = part(half) * x.dtype.type(w[half])
    tmp = np.empty_like(out)
    # The window is symmetric, so pair mirrored taps: half the multiplies.
    for k in range(half):
        np.add(part(k), part(taps - 1 - k), out=tmp)
        tmp *= x.dtype.type(w[k])
        out += tmp
    return out


def _ssim_terms(x, y, w):
    """Per-channel mean SSIM and mean contrast-structure of x, y shaped (C, H, W)."""
    c1 = (_K1 * _PEAK) ** 2
    c2 = (_K2 * _PEAK) ** 2
    channels, height, width = x.shape
    taps = len(w)
    out_h, out_w = height - taps + 1, width - taps + 1
    # Working through bands of rows keeps the five filtered moments in cache;
    # done over the whole image at once, memory traffic doubles the run time.
    band = max(16, _BAND_ELEMENTS // width)
    sum_ssim = np.zeros(channels)
    sum_cs = np.zeros(channels)
    for c in range(channels):
        for top in range(0, out_h, band):
            xb = x[c, top:min(out_h, top + band) + taps - 1]
            yb = y[c, top:min(out_h, top + band) + taps - 1]
            # One stacked array so the filter loop runs once for all five moments.
            stack = np.stack([xb, yb, xb * xb, yb * yb, xb * yb])
            # Rows first: those shifted slices are contiguous, and cheaper.
            stack = _filter_valid(_filter_valid(stack, w, axis=-2), w, axis=-1)
            mu_x, mu_y, e_xx, e_yy, e_xy = stack
            mu_xx = mu_x * mu_x
            mu_yy = mu_y * mu_y
            mu_xy = mu_x * mu_y
            cs_map = (2.0 * (e_xy - mu_xy) + c2) / ((e_xx - mu_xx) + (e_yy - mu_yy) + c2)
            lum_map = (2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)
            sum_cs[c] += cs_map.sum(dtype=np.float64)
            sum_ssim[c] += (lum_map * cs_map).sum(dtype=np.float64)
    count = out_h * out_w
    return sum_ssim / count, sum_cs / count


def _downsample(x):
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) * 0.25


def ms_ssim(a, b):
    """5-scale MS-SSIM (Wang, Simoncelli & Bovik 2003) of two uint8 images, data range 255.

    Same recipe as tf.image.ssim_multiscale / pytorch_msssim: 11-tap Gaussian
    (sigma 1.5), 'valid' filtering, 2x2 average pooling between scales, relu
    before the powers. Colour images: mean over R, G, B. Odd sizes are floored
    when pooling (TF pads them symmetrically, pytorch_msssim with zeros), so
    results match those libraries exactly only where every scale is even.
    Raises ValueError below 176 px a side.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < _MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs images at least {_MS_SSIM_MIN_SIDE} px on each side for "
            f"{len(_MS_SSIM_WEIGHTS)} scales; got {a.shape[1]}x{a.shape[0]}")
    # float32 halves memory traffic, which dominates the cost; its error in
    # the variances (~1e-2 at 255**2) is tiny next to C2 = 58.5.
    x = a.astype(np.float32)
    y = b.astype(np.float32)
    if x.ndim == 2:
        x, y = x[None], y[None]
    else:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 0))
        y = np.ascontiguousarray(np.moveaxis(y, -1, 0))
    w = _gaussian_window()
    factors = []
    for scale in range(len(_MS_SSIM_WEIGHTS)):
        if scale:
            x, y = _downsample(x), _downsample(y)
        ssim, cs = _ssim_terms(x, y, w)
        factors.append(cs)
    factors[-1] = ssim
    values = np.maximum(np.stack(factors, axis=-1), 0.0)
    per_channel = np.prod(values ** np.asarray(_MS_SSIM_WEIGHTS), axis=-1)
    return float(per_channel.mean())


def _fit_log_rate(rates, quality):
    rates = np.asarray(rates, dtype=np.float64).ravel()
    quality = np.asarray(quality, dtype=np.float64).ravel()
    if rates.shape != quality.shape:
        raise ValueError(f"{rates.size} rates but {quality.size} quality values")
    if rates.size < 2:
        raise ValueError("a rate-quality curve needs at least 2 points")
    if np.any(rates <= 0) or not np.all(np.isfinite(rates)) or not np.all(np.isfinite(quality)):
        raise ValueError("rates must be positive and all values finite")
    order = np.argsort(quality, kind="stable")
    quality = quality[order]
    # A cubic needs 4 points; with fewer, fit the highest degree that is determined.
    poly = np.polyfit(quality, np.log(rates[order]), min(3, rates.size - 1))
    return poly, quality[0], quality[-1]


def bd_rate(rates_a, quality_a, rates_b, quality_b):
    """Bjontegaard delta rate of codec b against reference a, in percent (negative: b saves bits)."""
    poly_a, lo_a, hi_a = _fit_log_rate(rates_a, quality_a)
    poly_b, lo_b, hi_b = _fit_log_rate(rates_b, quality_b)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if not hi > lo:
        raise ValueError(f"quality ranges do not overlap: [{lo_a}, {hi_a}] vs [{lo_b}, {hi_b}]")
    int_a, int_b = np.polyint(poly_a), np.polyint(poly_b)
    area_a = np.polyval(int_a, hi) - np.polyval(int_a, lo)
    area_b = np.polyval(int_b, hi) - np.polyval(int_b, lo)
    mean_diff = (area_b - area_a) / (hi - lo)
    return float((np.exp(mean_diff) - 1.0) * 100.0)


def bits_per_pixel(n_bytes, width, height):
    """Compressed size in bits per pixel."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return 8.0 * n_bytes / (width * height)


def bd_psnr(rates_a, quality_a, rates_b, quality_b):
    """Bjontegaard delta quality of codec b against reference a: the mean difference of their
    quality (dB) at equal rate, over the rates both cover (positive: b is better)."""
    lo_a, hi_a = np.log(np.min(rates_a)), np.log(np.max(rates_a))
    lo_b, hi_b = np.log(np.min(rates_b)), np.log(np.max(rates_b))
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if not hi > lo:
        raise ValueError("rate ranges do not overlap")
    areas = []
    for rates, quality in ((rates_a, quality_a), (rates_b, quality_b)):
        rates = np.asarray(rates, dtype=np.float64)
        poly = np.polyfit(np.log(rates), np.asarray(quality, np.float64), min(3, rates.size - 1))
        integral = np.polyint(poly)
        areas.append(np.polyval(integral, hi) - np.polyval(integral, lo))
    return float((areas[1] - areas[0]) / (hi - lo))
