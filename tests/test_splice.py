"""make splice: one variant's networks from a model file of the same identity into another."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from aedge import modelfile, registry
from aedge.optimize import splice
from aedge.optimize.variants import write_variant

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def shipped():
    return modelfile.read(registry.default_model())


def _narrowed_source(shipped, path, filters=(32, 96, 128)):
    """A file of the shipped model whose int8-dynamic networks are other real networks (its
    int16x8 ones), written as make quantize writes narrowed weights' files."""
    networks = {(p, v): shipped.network(p, "int16x8" if v == "int8-dynamic" else v)
                for p, v in shipped.networks()}
    write_variant(path, shipped, networks, {"int8-dynamic": "narrowed and tuned"},
                  filters=filters)
    return path


def _wide_source(shipped, path):
    """A file of the shipped model whose notes call nothing narrowed, as make quantize writes
    the trained model's widths' files."""
    write_variant(path, shipped, shipped.networks(), {"int8-dynamic": "wide"})
    return path


def test_the_variant_comes_from_the_source_and_the_rest_stays(shipped, tmp_path):
    source = _narrowed_source(shipped, tmp_path / "narrow.aem")
    target = tmp_path / "shipped.aem"
    target.write_bytes(shipped.path.read_bytes())
    result = CliRunner().invoke(splice.main, [str(source), "--into", str(target)])
    assert result.exit_code == 0, result.output
    spliced = modelfile.read(target)
    assert spliced.identity == shipped.identity
    assert spliced.variants == shipped.variants
    for part in modelfile.NETWORKS:
        assert spliced.network(part, "int8-dynamic") == shipped.network(part, "int16x8")
        for variant in ("int8", "int16x8"):
            assert spliced.network(part, variant) == shipped.network(part, variant)
    notes = spliced.manifest["optimization"]
    assert notes["narrowed"] == {"variants": ["int8-dynamic"], "filters": [32, 96, 128]}
    assert notes["int8-dynamic"] == "narrowed and tuned"
    assert notes["int8"] == shipped.manifest["optimization"]["int8"]
    assert spliced.manifest["name"] == shipped.name


def test_a_wide_variant_spliced_back_is_no_longer_called_narrowed(shipped, tmp_path):
    narrowed = tmp_path / "narrowed.aem"
    result = CliRunner().invoke(splice.main, [str(_narrowed_source(shipped, tmp_path / "n.aem")),
                                              "--into", str(shipped.path), "-o", str(narrowed)])
    assert result.exit_code == 0, result.output
    assert modelfile.read(narrowed).manifest["optimization"]["narrowed"]["variants"] == [
        "int8-dynamic"]
    out = tmp_path / "wide.aem"
    wide = _wide_source(shipped, tmp_path / "wide-source.aem")
    result = CliRunner().invoke(splice.main, [str(wide), "--into", str(narrowed),
                                              "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "narrowed" not in modelfile.read(out).manifest["optimization"]
    assert modelfile.read(out).manifest["optimization"]["int8-dynamic"] == "wide"
    assert modelfile.read(out).network("g_s", "int8-dynamic") == shipped.network(
        "g_s", "int8-dynamic")


def test_narrowed_variants_of_one_width_add_up_and_a_wide_one_leaves_the_others(shipped,
                                                                                 tmp_path):
    source = _narrowed_source(shipped, tmp_path / "narrow.aem")
    both = tmp_path / "both.aem"
    for variant in ("int8", "int8-dynamic"):
        result = CliRunner().invoke(splice.main, [str(source), "--variant", variant, "--into",
                                                  str(both if both.exists() else shipped.path),
                                                  "-o", str(both)])
        assert result.exit_code == 0, result.output
    assert modelfile.read(both).manifest["optimization"]["narrowed"] == {
        "variants": ["int8", "int8-dynamic"], "filters": [32, 96, 128]}
    result = CliRunner().invoke(splice.main, [str(_wide_source(shipped, tmp_path / "wide.aem")),
                                              "--into", str(both)])
    assert result.exit_code == 0, result.output
    assert modelfile.read(both).manifest["optimization"]["narrowed"] == {
        "variants": ["int8"], "filters": [32, 96, 128]}


def test_two_widths_in_one_file_are_refused(shipped, tmp_path):
    first = tmp_path / "first.aem"
    write_variant(first, shipped, shipped.networks(), {}, filters=(32, 96, 128))
    second = _narrowed_source(shipped, tmp_path / "second.aem", filters=(32, 64, 128))
    target = tmp_path / "target.aem"
    CliRunner().invoke(splice.main, [str(first), "--variant", "int8", "--into",
                                     str(shipped.path), "-o", str(target)])
    before = target.read_bytes()
    result = CliRunner().invoke(splice.main, [str(second), "--into", str(target)])
    assert result.exit_code == 1
    assert "narrowed to [32, 96, 128]" in result.output and "[32, 64, 128]" in result.output
    assert target.read_bytes() == before


def test_another_model_is_refused(shipped, other_model, tmp_path):
    out = tmp_path / "out.aem"
    result = CliRunner().invoke(splice.main, [str(other_model), "--into", str(shipped.path),
                                              "-o", str(out)])
    assert result.exit_code == 1
    assert "are different models" in result.output and not out.exists()


def test_a_missing_variant_is_refused(shipped, tmp_path):
    source = tmp_path / "no-dynamic.aem"
    write_variant(source, shipped, {k: v for k, v in shipped.networks().items()
                                    if k[1] != "int8-dynamic"}, {})
    result = CliRunner().invoke(splice.main, [str(source), "--into", str(shipped.path),
                                              "-o", str(tmp_path / "out.aem")])
    assert result.exit_code == 1
    assert "has no int8-dynamic networks (it has int8, int16x8)" in result.output


def test_an_unreadable_file_is_one_line(shipped, tmp_path):
    bad = tmp_path / "bad.aem"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(splice.main, [str(bad), "--into", str(shipped.path),
                                              "-o", str(tmp_path / "out.aem")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_a_damaged_network_or_an_unwritable_output_is_one_line(shipped, tmp_path):
    import zipfile
    damaged = tmp_path / "damaged.aem"
    with zipfile.ZipFile(shipped.path) as z, zipfile.ZipFile(damaged, "w") as out:
        for info in z.infolist():  # stored, so that a byte flipped below breaks the CRC
            out.writestr(info.filename, z.read(info))
    with zipfile.ZipFile(damaged) as z:
        info = z.getinfo("g_s.int8-dynamic.tflite")
    data = bytearray(damaged.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 1000] ^= 0xFF  # its local header: 30
    damaged.write_bytes(bytes(data))
    for args in ([str(damaged), "--into", str(shipped.path), "-o", str(tmp_path / "a.aem")],
                 [str(shipped.path), "--into", str(shipped.path), "-o",
                  str(tmp_path / "no-such-folder" / "b.aem")]):
        result = CliRunner().invoke(splice.main, args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "a.aem").exists()


def test_narrowed_widths_are_those_of_narrower_weights_only(shipped, tmp_path):
    import numpy as np
    from aedge.optimize.variants import narrowed_widths
    assert narrowed_widths(ROOT / "models" / "hyper" / "weights.npz", shipped) is None
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, **{f"g_a.{i}.kernel": np.zeros((5, 5, 3, w), np.float32)
                        for i, w in enumerate((32, 96, 128))})
    assert narrowed_widths(narrow, shipped) == [32, 96, 128]
