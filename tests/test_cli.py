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
    assert f"quality {package.load().default_quality}, int8-dynamic networks,".encode() \
        in info.stdout and b"aedge format 4," in info.stdout
    out = tmp_path / "back.png"
    assert aedge("decompress", compressed, "-o", out).returncode == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_variant_options(photo, tmp_path):
    made = {}
    for args in (["--variant", "int8"], ["--variant", "int16x8"], []):
        out = tmp_path / f"{len(made)}.aei"
        assert aedge("compress", photo, "-o", out, *args).returncode == 0
        made[tuple(args)] = out.read_bytes()
    assert len(set(made.values())) == 3  # three sets of networks, three different files
    # The shipped file leaves the float32 networks out (export.write_split): say where they are.
    result = aedge("compress", photo, "-o", tmp_path / "x.aei", "--float")
    one_line_error(result, "has no float32 networks; its float32 networks are in a file")
    assert not (tmp_path / "x.aei").exists()
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


def test_alpha_and_colour_profile_come_back(tmp_path):
    import io
    from PIL import Image, ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (40, 20), (255, 0, 0, 128)).save(path, icc_profile=icc)
    assert aedge("compress", path).returncode == 0
    assert b"+ alpha, colour profile" in aedge("info", tmp_path / "alpha.aei").stdout
    for suffix in (".png", ".webp"):
        out = tmp_path / f"back{suffix}"
        assert aedge("decompress", tmp_path / "alpha.aei", "-o", out).returncode == 0
        back = Image.open(io.BytesIO(out.read_bytes()))
        assert back.mode == "RGBA" and back.getpixel((3, 3))[3] == 128
        assert back.info["icc_profile"] == icc
    one_line_error(aedge("decompress", tmp_path / "alpha.aei", "-o", tmp_path / "a.jpg"),
                   "cannot write JPEG images of mode RGBA")
    assert not (tmp_path / "a.jpg").exists()


def test_several_frames_give_the_first_with_a_note(tmp_path):
    from PIL import Image
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), (200 * i, 0, 0)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    result = aedge("compress", path)
    assert result.returncode == 0
    assert result.stderr.decode() == f"aedge: note: {path}: has 3 frames; coding the first " \
                                     "(--frame N for another)\n"
    result = aedge("compress", path, "--frame", 2, "-o", tmp_path / "2.aei")
    assert result.returncode == 0 and result.stderr == b""
    one_line_error(aedge("compress", path, "--frame", 3, "-o", tmp_path / "3.aei"),
                   "has no frame 3 (frames 0 to 2)")


def test_outputs_go_where_cp_would_put_them(photo, tmp_path):
    # -o ending in / makes the folder; an existing folder takes the files too.
    assert aedge("compress", photo, "-o", tmp_path / "new" / "deeper", "-o",
                 f"{tmp_path / 'new'}/").returncode == 0
    assert (tmp_path / "new" / "robin.aei").is_file()
    (tmp_path / "old").mkdir()
    assert aedge("compress", photo, "-o", tmp_path / "old").returncode == 0
    assert (tmp_path / "old" / "robin.aei").is_file()
    assert aedge("decompress", tmp_path / "old" / "robin.aei", "-o", f"{tmp_path}/png/"
                 ).returncode == 0
    assert (tmp_path / "png" / "robin.png").is_file()
    result = aedge("compress", photo, photo, "-o", tmp_path / "nowhere")
    assert result.returncode == 2 and b"must name a folder" in result.stderr


def test_an_input_is_never_overwritten(photo, tmp_path):
    before = photo.read_bytes()
    one_line_error(aedge("compress", photo, "-o", photo, "--force"), "overwrite the input")
    (tmp_path / "x.aei").write_bytes(b"")
    one_line_error(aedge("decompress", photo, "-o", tmp_path / ".." / tmp_path.name /
                         "robin.png", "--force"), "overwrite the input")
    assert photo.read_bytes() == before


def test_binary_output_never_goes_to_a_terminal(photo):
    import os
    import pty
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "aedge", "compress", str(photo), "-o",
                                 "-"], stdout=follower, stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1 and b"terminal" in result.stderr


@pytest.mark.parametrize("error, message", [(MemoryError(), "out of memory"),
                                            (RuntimeError("boom"), "unexpected RuntimeError")])
def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(photo, monkeypatch,
                                                                      error, message):
    from click.testing import CliRunner
    from aedge import cli, registry

    def fail(**_):
        raise error
    monkeypatch.setattr(registry, "load", fail)
    monkeypatch.setitem(cli._DEBUG, "on", False)
    result = CliRunner().invoke(cli.main, ["compress", str(photo)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"aedge: {photo}: {message}" + (
        ": boom (aedge --debug shows where)" if "boom" in str(error) else "") + "\n"
    result = CliRunner().invoke(cli.main, ["--debug", "compress", str(photo)])
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_a_broken_model_in_the_model_path_hides_nothing(photo, tmp_path):
    import os
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "junk.aem").write_bytes(b"PK\x03\x04 not a zip at all")
    env = {**os.environ, "AEDGE_MODEL_PATH": str(folder)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "aedge", *map(str, a)], env=env,
                                    capture_output=True, timeout=300)
    assert run("compress", photo).returncode == 0
    assert run("decompress", tmp_path / "robin.aei", "-o", tmp_path / "back.png").returncode == 0
    assert run("info", tmp_path / "robin.aei").returncode == 0
    listing = run("models")
    assert listing.returncode == 1 and b"aedge.aem" in listing.stdout
    assert listing.stderr.decode().count("\n") == 1 and b"junk.aem" in listing.stderr


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
    # A codec's qualities take turns image by image; the codecs one after the other.
    assert [(r["codec"], r["image"]) for r in report["records"]] == \
        [("aedge", "p0.png")] * 3 + [("aedge", "p1.png")] * 3 + \
        [("jpeg", "p0.png")] * 12 + [("jpeg", "p1.png")] * 12


def test_bench_times_are_the_median_of_its_runs(monkeypatch):
    from aedge import bench
    from conftest import synthetic
    # encode, decode, encode, ...: the medians come from the middle run, neither first nor last
    scripted = iter([50.0, 1.0, 3.0, 8.0, 1.0, 9.0])

    def timed(fn, *args):
        return fn(*args), next(scripted)
    monkeypatch.setattr(bench, "_timed", timed)
    encode, decode = bench._pillow_codec("jpeg", 75)
    measured = bench._measure(encode, decode, synthetic(176, 192), lambda a, b: 0.0)
    assert (measured["encode_ms"], measured["decode_ms"]) == (3.0, 8.0)


def test_bench_records_a_bad_file_and_goes_on(tmp_path):
    import json
    from PIL import Image
    from conftest import synthetic
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(synthetic(176, 192)).save(photos / "good.png")
    (photos / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "report"
    result = aedge("bench", photos, "-o", out, "-q", 50, "--codec", "jpeg")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads((out / "bench.json").read_text())
    assert report["images"] == 1 and report["skipped"][0]["image"] == "bad.png"
    assert "- bad.png:" in (out / "bench.md").read_text()


def test_a_file_size_target(photo, tmp_path):
    out = tmp_path / "small.aei"
    assert aedge("compress", photo, "--max-bytes", 9000, "-o", out).returncode == 0
    size = out.stat().st_size
    assert size <= 9000
    quality = out.read_bytes()[22]
    if quality < 100:  # the next quality up would not have fitted
        bigger = tmp_path / "bigger.aei"
        assert aedge("compress", photo, "-q", quality + 1, "-o", bigger).returncode == 0
        assert bigger.stat().st_size > 9000
    bpp = tmp_path / "bpp.aei"
    assert aedge("compress", photo, "--target-bpp", 1.0, "-o", bpp).returncode == 0
    assert bpp.stat().st_size <= 256 * 256 / 8
    one_line_error(aedge("compress", photo, "--max-bytes", 500, "-o", tmp_path / "x.aei"),
                   "cannot fit in 500 bytes: the smallest file aedge makes of this image is")
    assert not (tmp_path / "x.aei").exists()
    result = aedge("compress", photo, "-q", 5, "--max-bytes", 500)
    assert result.returncode == 2 and b"one of -q" in result.stderr
