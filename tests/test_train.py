"""The TensorFlow side: model, training run, export to a .aem the runtime can use."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import synthetic

pytestmark = pytest.mark.train
tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        image = Image.fromarray(synthetic(300, 340, seed=i))
        image.save(folder / (f"p{i}.png" if i % 2 else f"p{i}.jpg"))
    return folder


@pytest.fixture(scope="module")
def run_dir(photos, tmp_path_factory):
    from aedge.train.train import main
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(main, ["--data", str(photos), "--out", str(out), "--lmbda",
                                       "0.01", "--steps", "4", "--steps-per-epoch", "2",
                                       "--crop", "64", "--batch", "2",
                                       "--latent-channels", "40"])
    assert result.exit_code == 0, result.output
    return out


def test_density_sums_to_one_over_integers():
    from aedge.train.model import EntropyBottleneck
    bottleneck = EntropyBottleneck()
    # The initial density is wide: integers over +-400 hold all but a sliver of its mass.
    values = tf.reshape(tf.range(-400.0, 401.0), (1, 1, -1, 1)) * tf.ones((1, 1, 1, 5))
    mass = tf.reduce_sum(bottleneck(values), axis=2).numpy().ravel()
    np.testing.assert_allclose(mass, 1.0, atol=1e-3)


def test_tables_cost_what_the_model_predicts():
    from aedge import rans
    from aedge.optimize import entropy_tables
    from aedge.train.model import EntropyBottleneck
    bottleneck = EntropyBottleneck()
    bottleneck(tf.zeros((1, 1, 1, 3)))
    medians, offsets, freqs = entropy_tables.build(bottleneck)
    q = np.arange(-4, 5)
    for c in range(3):
        y = tf.constant((medians[c] + q).reshape(1, 1, -1, 1) * np.ones((1, 1, 1, 3)),
                        tf.float32)
        model_bits = -np.log2(bottleneck(y).numpy()[0, 0, :, c])
        table_bits = rans.PRECISION - np.log2(freqs[c][q - offsets[c]])
        np.testing.assert_allclose(table_bits, model_bits, atol=0.02)


def test_training_writes_weights_logs_and_history(run_dir):
    assert (run_dir / "final.weights.h5").is_file()
    assert '"m": 40' in (run_dir / "config.json").read_text()
    assert len((run_dir / "history.csv").read_text().strip().splitlines()) == 3  # header + 2
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))


def test_ms_ssim_training(photos, tmp_path):
    from aedge.train.train import main
    args = ["--data", str(photos), "--out", str(tmp_path), "--lmbda", "5", "--steps", "2",
            "--steps-per-epoch", "2", "--batch", "2", "--distortion", "ms-ssim"]
    assert "needs --crop 176" in CliRunner().invoke(main, args + ["--crop", "64"]).output
    result = CliRunner().invoke(main, args + ["--crop", "176"])
    assert result.exit_code == 0, result.output
    assert '"distortion": "ms-ssim"' in (tmp_path / "config.json").read_text()


def test_missing_data_folder_is_a_clear_error(tmp_path):
    from aedge.train.train import main
    result = CliRunner().invoke(main, ["--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                       "--lmbda", "0.01"])
    assert result.exit_code == 1 and "no images" in result.output


def test_export_gives_a_model_the_runtime_uses(run_dir, photos, tmp_path):
    import aedge
    from aedge import modelfile
    from aedge.optimize.export import export
    manifest, networks, medians, offsets, freqs = export(run_dir, photos, level=7)
    path = tmp_path / "tiny.aem"
    modelfile.write(path, manifest, networks, medians, offsets, freqs)
    model = modelfile.read(path)
    assert model.manifest["level"] == 7 and len(model.freqs) == len(medians)
    assert all(f.sum() == 1 << 16 for f in model.freqs)
    image = synthetic(40, 52)
    for variant in ("int8", "float32"):
        codec = aedge.load(model=path, variant=variant)
        assert codec.decompress(codec.compress(image)).shape == image.shape


def test_a_killed_run_resumes_where_it_stopped(photos, tmp_path):
    import csv
    import subprocess
    import sys
    import time
    epochs = 200
    command = [sys.executable, "-m", "aedge.train.train", "--data", str(photos), "--out",
               str(tmp_path), "--lmbda", "0.01", "--steps", str(2 * epochs),
               "--steps-per-epoch", "2", "--crop", "32", "--batch", "2", "--threads", "1"]
    history = tmp_path / "history.csv"

    def epochs_done():
        with history.open() as f:
            return [int(row["epoch"]) for row in csv.DictReader(f)]

    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (history.is_file() and len(epochs_done()) >= 3) and run.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    run.kill()
    assert run.wait() != 0, "the run ended before it could be interrupted"
    stopped_after = epochs_done()[-1]
    assert stopped_after < epochs - 1
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = epochs_done()
    # Resumed from the last backup: no epoch trained twice, none restarted from zero.
    assert done[0] == 0 and done[-1] == epochs - 1
    assert all(a < b for a, b in zip(done, done[1:]))
    assert (tmp_path / "final.weights.h5").is_file()


def test_levels_go_on_after_the_latest_base_stage_given(tmp_path, monkeypatch):
    from aedge.train import levels
    runs = []
    monkeypatch.setattr(levels, "_train", lambda data, out, lmbda, steps, extra:
                        runs.append((out.name, extra[extra.index("--init-from") + 1]
                                     if "--init-from" in extra else None)))
    given = tmp_path / "bases"
    given.mkdir()
    first, second = (stage[0] for stage in levels.BASES["base-high"][:2])
    (given / f"{first}.weights.h5").touch()
    args = ["--data", str(tmp_path), "--runs", str(tmp_path / "runs"), "--level", "4"]
    assert CliRunner().invoke(levels.main, args + ["--init-from", str(given)]).exit_code == 0
    assert runs[0] == (second, str(given / f"{first}.weights.h5"))
    last = levels.BASES["base-high"][-1][0]
    assert runs[-1][0] == "q4" and runs[-1][1].endswith(f"{last}/final.weights.h5")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(levels.main, args + ["--init-from", str(empty)])
    assert result.exit_code == 1 and "no weights for base-high" in result.output
