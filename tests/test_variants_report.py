"""The variants table's measurements read from the TFLite graphs themselves."""
import pytest

from aedge import modelfile, registry
from aedge.optimize import report
from aedge.train import architecture as arch


@pytest.mark.parametrize("variant", ["float32", "int8", "int8-dynamic"])
def test_macs_counted_in_the_graph_match_the_architecture(variant):
    """g_a + g_s by architecture.py, GDN's C x C per position at its six places, and h_a."""
    gdn = 2 * arch.N_FILTERS ** 2 * (1 / 4 + 1 / 16 + 1 / 64)
    expected = (arch.macs_per_pixel(arch.G_A, 3)
                + arch.macs_per_pixel(arch.G_S, arch.M_LATENT, 1 / 16) + gdn
                + arch.macs_per_pixel(arch.H_A, arch.M_LATENT, 1 / 16))
    sparsity, macs = report.network_stats(modelfile.read(registry.default_model()), variant)
    assert macs == pytest.approx(expected)
    assert 0 <= sparsity < 0.1  # dense: only weights that round to zero


def test_table_names_every_column():
    row = {"variant": "float32", "networks": "float32", "file_bytes": 10_000_000,
           "gzip_bytes": 9_900_000, "network_bytes": 5_000_000, "sparsity": 0.5,
           "macs_per_pixel": 24840, "bpp": 1.1, "psnr": 34.0, "ms_ssim": 0.98,
           "bd_rate_vs_float32": 0.0, "bd_psnr_vs_float32": 0.0, "bd_rate_vs_jpeg": -21.3,
           "encode_ms": 60.0, "decode_ms": 120.0, "tflite_runtime_max_difference": 1}
    text = report.markdown({"images": 24, "machine": {"cpu": "x"}, "rows": [row]})
    assert ("| float32 | float32 | 10.00 | 9.90 | 5.00 | 50.0% | 24.8 | 1.100 | 34.00 | "
            "0.9800 | +0.0% | +0.00 | -21.3% | 60 | 120 | 1 |") in text
