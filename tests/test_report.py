import re
import shutil
import subprocess

import pytest
from PIL import Image

from aedge import report
from conftest import synthetic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(2):
        Image.fromarray(synthetic(176, 208, seed=i)).save(folder / f"p{i}.png")
    html, bench = report.build(folder, qualities=(20, 80), codecs=("jpeg",), crops=1,
                               published=True)
    path = folder.parent / "report.html"
    path.write_text(html)
    return path, html, bench


def test_the_page_holds_plots_details_and_tables(page):
    _, html, bench = page
    assert html.count("<svg") == 2
    for codec in ("aedge", "jpeg", "mbt2018-mean"):
        assert f'class="curve" data-codec="{codec}"' in html
    # Original, aedge and JPEG, each at 1x and 4x, inlined.
    assert html.count('<img') == 6 and html.count("data:image/png;base64,") == 6
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # Two images, at aedge's 2 qualities and JPEG's 12.
    assert len(re.findall(r"<tr><td>p[01]\.png</td>", html)) == len(bench["records"]) == 28
    assert "BD-rate of aedge" in html and bench["machine"]["cpu"] in html


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's chromium package)")
def test_headless_chromium_renders_it(page, tmp_path):
    path, _, _ = page
    shot = tmp_path / "shot.png"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--v=0", "--window-size=1280,1600"]
    dom = subprocess.run(args + ["--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0
    # The browser's own DOM: both plots and every crop were parsed and laid out.
    assert dom.stdout.count("<svg") == 2 and dom.stdout.count("<img") == 6
    assert "CONSOLE" not in dom.stderr and "Uncaught" not in dom.stderr
    subprocess.run(args + [f"--screenshot={shot}", path.as_uri()], capture_output=True,
                   timeout=120, check=True)
    image = Image.open(shot)
    assert image.size == (1280, 1600)
    # Not a blank page: the plots' colours are on it.
    colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert (214, 39, 40) in colours  # aedge's red
