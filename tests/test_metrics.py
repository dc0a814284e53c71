import math
import time

import numpy as np
import pytest

from aedge import metrics
from aedge.metrics import bd_rate, bits_per_pixel, ms_ssim, psnr


def _hash_noise(shape, seed):
    """Deterministic integers in [0, 2**32) from integer hashing, so reference images
    cannot drift with numpy's random-number streams."""
    mask = np.uint64(0xFFFFFFFF)
    n = np.arange(np.prod(shape), dtype=np.uint64).reshape(shape) + np.uint64(seed) * np.uint64(0x9E3779B9)
    n = (n * np.uint64(2654435761)) & mask
    n ^= n >> np.uint64(16)
    n = (n * np.uint64(0x45D9F3B)) & mask
    n ^= n >> np.uint64(16)
    return n


def _clean_image(height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int64)
    red = np.abs((3 * xx + yy) % 400 - 200) + 20
    green = np.abs((xx - 2 * yy) % 300 - 150) + 50
    blue = ((xx // 8 + yy // 8) % 2) * 120 + 60 + (xx * yy) % 17
    return np.stack([red, green, blue], axis=-1)


def _noisy(clean, amplitude, seed=7):
    noise = (_hash_noise(clean.shape, seed) % np.uint64(2 * amplitude + 1)).astype(np.int64) - amplitude
    return np.clip(clean + noise, 0, 255).astype(np.uint8)


def reference_pair(height=256, width=768):
    clean = _clean_image(height, width)
    return clean.astype(np.uint8), _noisy(clean, 20)


def shifted_pair():
    """Contrast and brightness changed as well as noise, so luminance counts."""
    clean = _clean_image(256, 768)
    noise = (_hash_noise(clean.shape, 11) % np.uint64(21)).astype(np.int64) - 10
    return clean.astype(np.uint8), np.clip(clean * 3 // 4 + 40 + noise, 0, 255).astype(np.uint8)


# tf.image.ssim_multiscale(a[None], b[None], max_val=255.0) from TensorFlow 2.21.0
# (CPU, float32), rounded to 6 decimals. TF's float32 sums sit ~5e-6 from a
# float64 computation, hence abs=2e-5; the mistakes worth catching (weights,
# window, constants, cs instead of SSIM at the last scale) move these by >=2e-4.
TF_MS_SSIM_RGB = 0.936488      # reference_pair()
TF_MS_SSIM_GREEN = 0.893188    # reference_pair(), channel 1 alone
TF_MS_SSIM_SHIFTED = 0.944574  # shifted_pair()
TOLERANCE = 2e-5


# --- PSNR -------------------------------------------------------------------

def test_psnr_constant_error_of_one():
    a = np.full((32, 48, 3), 200, np.uint8)
    # 10 * log10(255**2 / 1)
    assert psnr(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)
    # b < a must not wrap around in uint8.
    assert psnr(a, a - 1) == pytest.approx(48.1308036, abs=1e-6)


def test_psnr_over_all_channels_together():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 255  # a third of the values off by 255: MSE = 255**2 / 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(3), abs=1e-9)


def test_psnr_identical_is_inf():
    a = _clean_image(20, 30).astype(np.uint8)
    assert psnr(a, a) == float("inf")


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


# --- MS-SSIM ----------------------------------------------------------------

def test_ms_ssim_identical_is_one():
    a, _ = reference_pair(200, 300)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert ms_ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0, abs=1e-9)


def test_ms_ssim_decreases_as_noise_grows():
    clean = _clean_image(192, 256)
    a = clean.astype(np.uint8)
    scores = [ms_ssim(a, _noisy(clean, amp)) for amp in (0, 2, 5, 10, 20, 40, 80)]
    assert scores[0] == pytest.approx(1.0, abs=1e-9)
    assert all(x > y for x, y in zip(scores, scores[1:])), scores
    assert 0.0 < scores[-1] < 0.9


def test_ms_ssim_matches_tensorflow_rgb():
    a, b = reference_pair()
    assert ms_ssim(a, b) == pytest.approx(TF_MS_SSIM_RGB, abs=TOLERANCE)


def test_ms_ssim_matches_tensorflow_greyscale():
    a, b = reference_pair()
    assert ms_ssim(a[..., 1], b[..., 1]) == pytest.approx(TF_MS_SSIM_GREEN, abs=TOLERANCE)


def test_ms_ssim_matches_tensorflow_with_luminance_change():
    a, b = shifted_pair()
    assert ms_ssim(a, b) == pytest.approx(TF_MS_SSIM_SHIFTED, abs=TOLERANCE)


def test_ms_ssim_negative_structure_clipped_to_zero():
    # Inverted image: cs < 0, which relu turns into 0 (TF gives 0.0 too), not NaN.
    a, _ = reference_pair(192, 256)
    assert ms_ssim(a, 255 - a) == 0.0


def test_ms_ssim_colour_is_mean_of_channels():
    a, b = reference_pair(192, 256)
    per_channel = [ms_ssim(a[..., c], b[..., c]) for c in range(3)]
    assert ms_ssim(a, b) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_ms_ssim_symmetric():
    a, b = reference_pair(192, 256)
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), abs=1e-9)


def test_ms_ssim_odd_sizes():
    a, b = reference_pair(177, 183)
    assert 0.5 < ms_ssim(a, b) < 1.0


def test_ms_ssim_size_limit():
    # Four floored halvings must leave at least the 11-px window: 176 px.
    for height, width in ((175, 300), (300, 175), (100, 100)):
        a, b = reference_pair(height, width)
        with pytest.raises(ValueError, match="at least 176 px"):
            ms_ssim(a, b)
    a, b = reference_pair(176, 176)
    assert 0.5 < ms_ssim(a, b) < 1.0


def test_ms_ssim_shape_mismatch():
    a, b = reference_pair(200, 200)
    with pytest.raises(ValueError):
        ms_ssim(a, b[:, :199])


def test_ms_ssim_is_vectorised():
    # Loose bound so a loaded machine does not fail it; a per-pixel Python loop
    # would take tens of seconds.
    a, b = reference_pair(512, 768)
    ms_ssim(a, b)
    best = min(_timed(ms_ssim, a, b) for _ in range(3))
    assert best < 1.0


def _timed(f, *args):
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start


# --- BD-rate ----------------------------------------------------------------

RATES = [0.12, 0.25, 0.48, 0.90]
PSNRS = [29.1, 32.0, 34.8, 37.3]


def test_bd_rate_identical_curves_is_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_constant_ratio():
    cheaper = [0.8 * r for r in RATES]
    assert bd_rate(RATES, PSNRS, cheaper, PSNRS) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(cheaper, PSNRS, RATES, PSNRS) == pytest.approx(25.0, abs=1e-6)


def test_bd_rate_few_points_lower_degree():
    cheaper = [0.8 * r for r in RATES[:3]]
    assert bd_rate(RATES[:3], PSNRS[:3], cheaper, PSNRS[:3]) == pytest.approx(-20.0, abs=1e-6)
    cheaper = [0.8 * r for r in RATES[:2]]
    assert bd_rate(RATES[:2], PSNRS[:2], cheaper, PSNRS[:2]) == pytest.approx(-20.0, abs=1e-6)


def test_bd_rate_unsorted_input():
    order = [2, 0, 3, 1]
    cheaper = [0.8 * r for r in RATES]
    shuffled = bd_rate([RATES[i] for i in order], [PSNRS[i] for i in order], cheaper, PSNRS)
    assert shuffled == pytest.approx(-20.0, abs=1e-6)


def test_bd_rate_integrates_over_overlap_only():
    # log rate is exactly cubic in q for both curves, so the fits are exact.
    # log r_b - log r_a = 0.05 * (q - 35): averages 0 over [30, 40] but 0.05
    # over the overlap [32, 40] actually sampled.
    def log_rate_a(q):
        return -2.0 + 0.1 * (q - 30) + 0.002 * (q - 30) ** 2 - 0.0001 * (q - 30) ** 3

    qa = np.array([30.0, 33.0, 36.5, 40.0])
    qb = np.array([32.0, 35.0, 39.0, 44.0])
    ra = np.exp(log_rate_a(qa))
    rb = np.exp(log_rate_a(qb) + 0.05 * (qb - 35))
    expected = (math.exp(0.05) - 1) * 100
    assert bd_rate(ra, qa, rb, qb) == pytest.approx(expected, abs=1e-6)


def test_bd_rate_errors():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(RATES, PSNRS, RATES, [q + 20 for q in PSNRS])
    with pytest.raises(ValueError, match="at least 2"):
        bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS)
    with pytest.raises(ValueError):
        bd_rate(RATES, PSNRS[:3], RATES, PSNRS)


# --- bits per pixel ---------------------------------------------------------

def test_bits_per_pixel():
    assert bits_per_pixel(1000, 100, 80) == pytest.approx(1.0)
    assert bits_per_pixel(24576, 768, 512) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        bits_per_pixel(10, 0, 10)


def test_bd_rate_ignores_dominated_points():
    from aedge.bench import pareto
    points = [{"bpp": 1.0, "psnr": 30.0}, {"bpp": 0.5, "psnr": 28.0},
              {"bpp": 1.2, "psnr": 29.5}, {"bpp": 2.0, "psnr": 33.0}]
    assert [p["bpp"] for p in pareto(points, "psnr")] == [0.5, 1.0, 2.0]


def test_bd_psnr_of_a_shifted_curve_is_the_shift():
    rates = [0.25, 0.5, 1.0, 2.0]
    psnr = [28.0, 31.0, 34.5, 38.0]
    assert metrics.bd_psnr(rates, psnr, rates, psnr) == pytest.approx(0.0, abs=1e-9)
    assert metrics.bd_psnr(rates, psnr, rates, [p + 0.5 for p in psnr]) == pytest.approx(0.5)
    # The same curve at 10% fewer bits: better by the curve's slope times log(1/0.9).
    better = metrics.bd_psnr(rates, psnr, [r * 0.9 for r in rates], psnr)
    assert 0.4 < better < 0.6
    with pytest.raises(ValueError, match="overlap"):
        metrics.bd_psnr([0.1, 0.2], [20, 22], [1.0, 2.0], [30, 32])
