import subprocess
import sys

import pytest

from conftest import DATA


def aedge(*args, stdin=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "aedge", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "robin.png"
    path.write_bytes((DATA / "robin.png").read_bytes())
    return path


def one_line_error(result, fragment):
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1 and err.startswith("aedge: ") and fragment in err, err
    assert "Traceback" not in err


def test_compress_decompress_info(photo, tmp_path):
    assert aedge("compress", photo).returncode == 0
    compressed = tmp_path / "robin.aei"
    assert compressed.stat().st_size < photo.stat().st_size
    info = aedge("info", compressed)
    assert info.returncode == 0 and b"256x256" in info.stdout and b"bpp" in info.stdout
    import aedge as package
    assert f"quality {package.load().default_quality},".encode() in info.stdout
    out = tmp_path / "back.png"
    assert aedge("decompress", compressed, "-o", out).returncode == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_variant_options(photo, tmp_path):
    made = {}
    for args in (["--variant", "int8"], ["--float"], []):
        out = tmp_path / f"{len(made)}.aei"
        assert aedge("compress", photo, "-o", out, *args).returncode == 0
        made[tuple(args)] = out.read_bytes()
    assert len(set(made.values())) == 3  # three sets of networks, three different files
    result = aedge("compress", photo, "-o", tmp_path / "x.aei", "--variant", "int4")
    assert result.returncode == 2 and b"int4" in result.stderr
    result = aedge("compress", photo, "-o", tmp_path / "x.aei", "--variant", "int8", "--float")
    assert result.returncode == 2 and b"not both" in result.stderr


def test_stdin_to_stdout(photo):
    packed = aedge("compress", "-", "-o", "-", stdin=photo.read_bytes())
    assert packed.returncode == 0 and packed.stdout[:4] == b"\x89AEI"
    image = aedge("decompress", "-", "-o", "-", stdin=packed.stdout)
    assert image.returncode == 0 and image.stdout[:4] == b"\x89PNG"


def test_several_inputs_into_a_folder(photo, tmp_path):
    other = tmp_path / "copy.png"
    other.write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    assert aedge("compress", photo, other, "-o", out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["copy.aei", "robin.aei"]


def test_existing_output_is_kept_without_force(photo, tmp_path):
    target = tmp_path / "robin.aei"
    target.write_bytes(b"precious")
    one_line_error(aedge("compress", photo), "exists")
    assert target.read_bytes() == b"precious"
    assert aedge("compress", photo, "--force").returncode == 0
    assert target.read_bytes()[:4] == b"\x89AEI"


def test_not_an_image_leaves_no_output(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    one_line_error(aedge("compress", bad), "not an image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png"]


def test_missing_input(tmp_path):
    one_line_error(aedge("compress", tmp_path / "nope.png"), "nope.png")


@pytest.mark.parametrize("cut", [10, 100, -1])
def test_truncated_file_leaves_no_output(photo, tmp_path, cut):
    aedge("compress", photo)
    data = (tmp_path / "robin.aei").read_bytes()
    bad = tmp_path / "bad.aei"
    bad.write_bytes(data[:cut])
    one_line_error(aedge("decompress", bad), "bad.aei")
    assert not (tmp_path / "bad.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_wrong_model_is_a_clear_error(photo, tmp_path, other_model):
    aedge("compress", photo)
    one_line_error(aedge("decompress", tmp_path / "robin.aei", "--model", other_model),
                   "made by model")


def test_quality_goes_in_the_file(photo, tmp_path):
    sizes = []
    for q in (10, 50, 90):
        out = tmp_path / f"q{q}.aei"
        assert aedge("compress", photo, "-q", q, "-o", out).returncode == 0
        assert f"quality {q},".encode() in aedge("info", out).stdout
        sizes.append(out.stat().st_size)
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_version_1_files_name_the_aedge_that_reads_them(tmp_path):
    old = tmp_path / "old.aei"
    old.write_bytes(b"\x89AEI\x01" + bytes(40))
    one_line_error(aedge("decompress", old), "version 1, which aedge 0.1 reads")


def test_info_checks_the_whole_file(photo, tmp_path):
    aedge("compress", photo)
    bad = tmp_path / "short.aei"
    bad.write_bytes((tmp_path / "robin.aei").read_bytes()[:100])
    one_line_error(aedge("info", bad), "truncated")


def test_broken_model_file_is_a_clear_error(photo, tmp_path):
    import zipfile
    model = tmp_path / "broken.aem"
    with zipfile.ZipFile(model, "w") as z:
        z.writestr("manifest.json", "[1, 2]")
    one_line_error(aedge("compress", photo, "--model", model), "broken.aem is not")


def test_folder_outputs_must_not_collide(photo, tmp_path):
    (tmp_path / "a").mkdir()
    twin = tmp_path / "a" / "robin.png"
    twin.write_bytes(photo.read_bytes())
    result = aedge("compress", photo, twin, "-o", tmp_path)
    assert result.returncode == 2 and b"same file" in result.stderr


def test_transparent_image_is_refused(tmp_path):
    from PIL import Image
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 128)).save(path)
    one_line_error(aedge("compress", path), "transparent")


@pytest.mark.parametrize("quality", [0, 101, "high"])
def test_quality_out_of_range_is_a_usage_error(photo, quality):
    result = aedge("compress", photo, "-q", quality)
    assert result.returncode == 2 and b"--quality" in result.stderr


@pytest.mark.parametrize("command", ["", "compress", "decompress", "info", "bench", "models"])
def test_help_everywhere(command):
    result = aedge(*([command] if command else []), "--help")
    assert result.returncode == 0 and b"Usage:" in result.stdout


def test_usage_errors_exit_2():
    assert aedge("compress").returncode == 2
    assert aedge("frobnicate").returncode == 2


def test_bench_sweeps_qualities_and_reports_the_split(tmp_path):
    import json
    from PIL import Image
    from conftest import synthetic
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(synthetic(176, 192, seed=i)).save(photos / f"p{i}.png")
    out = tmp_path / "report"
    result = aedge("bench", photos, "-o", out, "-q", 5, "-q", 50, "-q", 95, "--codec", "jpeg")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads((out / "bench.json").read_text())
    ours = [s for s in report["summary"] if s["codec"] == "aedge"]
    assert [s["q"] for s in ours] == [5, 50, 95] and all(s["images"] == 2 for s in ours)
    assert all(s["encode_networks_ms"] > 0 and s["decode_entropy_ms"] > 0 for s in ours)
    assert set(report["bd_rate_percent"]) == {"jpeg", "bmshj2018-factorized",
                                               "bmshj2018-hyperprior", "mbt2018-mean"}
    table = (out / "bench.md").read_text()
    assert "Where aedge's time goes" in table and "| mbt2018-mean |" in table
