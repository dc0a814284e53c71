"""The variants table's measurements read from the TFLite graphs themselves."""
import time

import pytest

from aedge import modelfile, registry
from aedge.optimize import report
from aedge.train import architecture as arch


@pytest.mark.parametrize("variant", ["int8", "int8-dynamic", "int16x8"])
def test_macs_counted_in_the_graph_match_the_architecture(variant):
    """g_a + g_s by architecture.py, at the widths the model file gives the variant's
    networks, GDN's C x C per position at its six places, and h_a."""
    model = modelfile.read(registry.default_model())
    widths = report.filters_of(model, variant)
    gdn = 2 * sum(c ** 2 * area for c, area in zip(widths, (1 / 4, 1 / 16, 1 / 64)))
    expected = (arch.macs_per_pixel(arch.g_a(widths), 3)
                + arch.macs_per_pixel(arch.g_s(widths), arch.M_LATENT, 1 / 16) + gdn
                + arch.macs_per_pixel(arch.H_A, arch.M_LATENT, 1 / 16))
    sparsity, macs = report.network_stats(model, variant)
    assert macs == pytest.approx(expected)
    assert 0 <= sparsity < 0.1  # dense: only weights that round to zero


def test_table_names_every_column():
    row = {"variant": "float32", "networks": "float32", "file_bytes": 10_000_000,
           "gzip_bytes": 9_900_000, "network_bytes": 5_000_000, "sparsity": 0.5,
           "macs_per_pixel": 24840, "bpp": 1.1, "psnr": 34.0, "ms_ssim": 0.98,
           "bd_rate_vs_float32": 0.0, "bd_psnr_vs_float32": 0.0, "bd_rate_vs_jpeg": -21.3,
           "encode_ms": 60.0, "decode_ms": 120.0, "tflite_runtime_max_difference": 1,
           "default_quality": 75}
    shipped = {**row, "variant": "int8-dynamic, QAT", "networks": "int8-dynamic",
               "encode_ms": 40.0, "decode_ms": 50.0, "default": True}
    report.speed_against([row, shipped])
    text = report.markdown({"images": 24, "machine": {"cpu": "x"}, "rows": [row, shipped]})
    assert "at quality 75, the benched quality nearest the default;" in text
    assert ("| float32 | float32 | 10.00 | 9.90 | 5.00 | 50.0% | 24.8 | 1.100 | 34.00 | "
            "0.9800 | +0.0% | +0.00 | -21.3% | 60 | 120 | 0.50x | 1 |") in text
    assert "| int8-dynamic, QAT (default) | int8-dynamic | 10.00 |" in text
    assert text.count("(default)") == 1


def test_speed_is_against_the_shipped_networks_or_the_first_int8_dynamic_ones():
    rows = [{"variant": v, "networks": n, "encode_ms": e, "decode_ms": d, "default": s}
            for v, n, e, d, s in (("float32", "float32", 100.0, 200.0, False),
                                  ("int8-dynamic, converted", "int8-dynamic", 50.0, 50.0, False),
                                  ("int8-dynamic, QAT", "int8-dynamic", 60.0, 60.0, True),
                                  ("fast", "int8-dynamic", 30.0, 30.0, False))]
    report.speed_against(rows)
    assert [r["speedup_vs_default"] for r in rows] == pytest.approx([0.4, 1.2, 1.0, 2.0])
    report.speed_against(rows[:2] + rows[3:])
    assert rows[3]["speedup_vs_default"] == pytest.approx(100 / 60)
    report.speed_against(rows[:1])
    assert rows[0]["speedup_vs_default"] is None


def test_the_default_row_is_found_by_its_networks_not_its_file(tmp_path):
    """make quantize ships a stage's networks only where they win on held-out crops, so the
    row marked default is the one whose networks are the build's aedge.aem's."""
    import shutil

    model = modelfile.read(registry.default_model())
    shutil.copyfile(registry.default_model(), tmp_path / "aedge.aem")
    shutil.copyfile(registry.default_model(), tmp_path / "aedge-dynamic-qat.aem")
    manifest = {k: v for k, v in model.manifest.items() if k not in ("format", "format_version")}
    networks = model.networks()
    networks["g_s", "int8-dynamic"] = networks["g_s", "int8"]  # any other bytes
    modelfile.write(tmp_path / "aedge-decoder.aem", manifest, networks, model.arrays)
    rows = [{"file": f, "networks": n} for f, n in (("aedge-dynamic-qat.aem", "int8"),
                                                    ("aedge-decoder.aem", "int8-dynamic"),
                                                    ("aedge-dynamic-qat.aem", "int8-dynamic"),
                                                    ("aedge-dynamic-qat.aem", "int8-dynamic"))]
    report.mark_default(tmp_path, rows)
    assert [r["default"] for r in rows] == [False, False, True, False]
    (tmp_path / "aedge.aem").unlink()
    report.mark_default(tmp_path, rows)
    assert not any(r["default"] for r in rows)


def test_student_widths_run_from_the_highest_resolution_down_in_both_chains():
    w = arch.widths(arch.STUDENT_FILTERS)
    assert [layer[2] for layer in arch.g_a(arch.STUDENT_FILTERS)] == [*w, arch.M_LATENT]
    assert [layer[2] for layer in arch.g_s(arch.STUDENT_FILTERS)] == [*w[::-1], 3]
    assert w[0] < w[-1]  # narrowest where the pixels are
    assert arch.g_a(arch.N_FILTERS) == arch.G_A and arch.widths(40) == (40, 40, 40)
    with pytest.raises(ValueError, match="one number or three"):
        arch.widths((16, 32))


class _Recording:
    """A real codec that notes who ran when, and is slower than it by `extra` seconds per
    compress and by a lot more on the first (warm-up) call of each image and quality."""

    def __init__(self, name, log, extra=0.0):
        self.codec, self.name, self.log, self.extra = registry.load(), name, log, extra
        self.warmed = set()

    def compress(self, array, quality):
        self.log.append((self.name, "compress", quality))
        setting = (array.shape, quality)
        time.sleep(self.extra + (0.0 if setting in self.warmed else 0.3))
        self.warmed.add(setting)
        return self.codec.compress(array, quality)

    def decompress(self, data):
        self.log.append((self.name, "decompress"))
        return self.codec.decompress(data)


def test_interleaved_timing_takes_turns_image_by_image():
    from aedge import bench
    from conftest import synthetic

    log = []
    codecs = {"a": _Recording("a", log), "b": _Recording("b", log, extra=0.02)}
    photos = [("one", synthetic(64, 96, seed=1)), ("two", synthetic(80, 64, seed=2))]
    times = bench.interleaved(codecs, photos, (10, 90), runs=3)
    # Per image and quality: one warm-up each, then three rounds, the order reversed in the
    # second; a median of three leaves out the slow warm-up, and each codec's time is its own.
    turn = {n: [(n, "compress"), (n, "decompress")] for n in codecs}
    per_setting = turn["a"] + turn["b"] + turn["a"] + turn["b"] + turn["b"] + turn["a"] \
        + turn["a"] + turn["b"]
    assert [c[:2] for c in log] == per_setting * 4
    assert [c[2] for c in log if c[1] == "compress"] == [10] * 8 + [90] * 8 + [10] * 8 + [90] * 8
    assert times["a"]["encode_ms"] < 150 and times["a"]["decode_ms"] > 0
    assert 15 < times["b"]["encode_ms"] - times["a"]["encode_ms"] < 100


def test_rows_too_slow_to_take_turns_keep_the_sweeps_times(tmp_path):
    shipped = str(registry.default_model())
    rows = [{"variant": v, "file": shipped, "networks": n, "encode_ms": e, "decode_ms": d,
             "default_quality": 75, "default": n == "int8-dynamic"}
            for v, n, e, d in (("int8", "int8", 60.0, 120.0),
                               ("int8-dynamic, QAT", "int8-dynamic", 50.0, 60.0),
                               ("int16x8", "int16x8", 2000.0, 3000.0))]
    report.speed_against(rows)
    from conftest import synthetic
    speed = report.interleave("/", rows, [("one", synthetic(64, 64))])
    report.speed_against(rows)
    assert speed == {"images": 1, "qualities": [1, 45, 75, 100], "runs": report.SPEED_RUNS}
    assert [r["timed"] for r in rows] == ["interleaved", "interleaved", "sweep"]
    assert rows[0]["sweep_encode_ms"] == 60.0 and rows[0]["encode_ms"] != 60.0
    assert rows[2]["encode_ms"] == 2000.0 and "sweep_encode_ms" not in rows[2]
    # The slow row against the default's sweep, the others against its turns.
    assert rows[2]["speedup_vs_default"] == pytest.approx(110 / 5000)
    assert rows[1]["speedup_vs_default"] == 1.0
    assert rows[0]["speedup_vs_default"] == pytest.approx(
        (rows[1]["encode_ms"] + rows[1]["decode_ms"]) / (rows[0]["encode_ms"] + rows[0]["decode_ms"]))
    for r in rows:
        r.update({"file_bytes": 1, "gzip_bytes": 1, "network_bytes": 1, "sparsity": 0,
                  "macs_per_pixel": 1, "bpp": 1, "psnr": 30, "ms_ssim": 0.9,
                  "bd_rate_vs_float32": 0, "bd_psnr_vs_float32": 0, "bd_rate_vs_jpeg": 0})
    text = report.markdown({"images": 24, "machine": {}, "speed": speed, "rows": rows})
    assert "on the first 1 images at qualities 1, 45, 75, 100, the median of 3" in text
    assert "| 2000* | 3000* | 0.02x* |" in text and text.count("*") == 4


def test_narrowed_variants_take_their_widths_from_the_manifest():
    from types import SimpleNamespace
    model = SimpleNamespace(manifest={"training": {"filters": [64, 96, 128]}, "optimization": {
        "narrowed": {"variants": ["int8-dynamic"], "filters": [32, 96, 128]}}})
    assert report.filters_of(model, "int8-dynamic") == (32, 96, 128)
    assert report.filters_of(model, "int8") == (64, 96, 128)
    assert report.filters_of(SimpleNamespace(manifest={}), "int8") == arch.N_FILTERS


def test_the_model_card_names_the_narrowed_networks_widths():
    from dataclasses import replace

    from aedge.optimize import cards
    model = modelfile.read(registry.default_model())
    notes = {k: v for k, v in model.manifest.get("optimization", {}).items() if k != "narrowed"}
    wide = cards.card(replace(model, manifest={**model.manifest, "optimization": notes}), None)
    assert "narrowed" not in wide
    narrowed = cards.card(replace(model, manifest={**model.manifest, "optimization": {
        **notes, "narrowed": {"variants": ["int8-dynamic"], "filters": [32, 96, 128]}}}), None)
    networks = next(line for line in narrowed.splitlines() if line.startswith("- Networks"))
    dynamic, rest = networks.split("full-integer int8", 1)
    assert "g_a and g_s narrowed to 32, 96, 128 channels" in dynamic and "narrowed" not in rest
