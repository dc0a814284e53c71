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


def test_levels_fine_tune_from_the_given_bases(tmp_path, monkeypatch):
    from aedge.train import levels
    runs = []
    monkeypatch.setattr(levels, "_train", lambda data, out, lmbda, extra:
                        runs.append((out.name, lmbda, extra[extra.index("--init-from") + 1]
                                     if "--init-from" in extra else None)))
    lmbda, base = levels.LEVELS[3]
    args = ["--data", str(tmp_path), "--runs", str(tmp_path / "runs"), "--level", "3"]
    # Without --init-from, the base is trained first and the level starts from its run.
    assert CliRunner().invoke(levels.main, args).exit_code == 0
    assert runs == [(base, levels.BASES[base], None),
                    ("q3", lmbda, str(tmp_path / "runs" / base / "final.weights.h5"))]
    given = tmp_path / "bases"
    given.mkdir()
    (given / f"{base}.weights.h5").touch()
    runs.clear()
    assert CliRunner().invoke(levels.main, args + ["--init-from", str(given)]).exit_code == 0
    assert runs == [("q3", lmbda, str(given / f"{base}.weights.h5"))]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(levels.main, args + ["--init-from", str(empty)])
    assert result.exit_code == 1 and f"no {base}.weights.h5" in result.output


def test_levels_between_bases_train_longer(tmp_path, monkeypatch):
    from aedge.train import levels
    steps = {}
    monkeypatch.setattr(levels, "_train", lambda data, out, lmbda, extra:
                        steps.update({out.name: int(extra[extra.index("--steps") + 1])}))
    result = CliRunner().invoke(levels.main, ["--data", str(tmp_path), "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # Levels 3 and 5 lie between two bases; the others sit at their base's lambda.
    assert {k: v for k, v in steps.items() if k.startswith("q")} == {
        "q1": 3000, "q2": 3000, "q3": 5000, "q4": 3000, "q5": 5000}
    assert all(steps[base] == 37975 for base in levels.BASES)


def test_levels_refuse_a_finished_run_of_another_recipe(tmp_path):
    import json
    from aedge.train import levels
    run = tmp_path / "q1"
    run.mkdir()
    (run / "final.weights.h5").touch()
    (run / "config.json").write_text(json.dumps({"lmbda": 0.0018, "m": 96}))
    with pytest.raises(Exception, match="another recipe"):
        levels._train(tmp_path, run, 0.0018, [])
    (run / "config.json").write_text(json.dumps({"lmbda": 0.0018, "m": 192}))
    levels._train(tmp_path, run, 0.0018, [])  # the same recipe: done already, nothing to run


def test_pack_downscales_jpegs_and_leaves_out_validation_and_small_images(photos, tmp_path):
    import json
    from aedge.train.files import find_images, split
    from aedge.train.pack import main
    Image.fromarray(synthetic(100, 400)).save(tmp_path / "small.png")
    for f in photos.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    # A name that the validation rule holds out (the first byte of its SHA-1 is below 0.03).
    held_out = next(f"v{i}.png" for i in range(1000)
                    if split([f"v{i}.png"], 0.03)[1])
    Image.fromarray(synthetic(300, 300)).save(tmp_path / held_out)
    out = tmp_path / "pack"
    result = CliRunner().invoke(main, [str(tmp_path), "-o", str(out), "--crop", "256"])
    assert result.exit_code == 0, result.output
    packed = sorted(out.glob("*.jpg"))
    kept = split(find_images(photos), 0.03)[0]
    assert len(packed) == len(kept)  # not the small one, nor the held-out ones
    jpegs = sum(f.endswith(".jpg") for f in kept)
    assert 0 < jpegs < len(kept)
    sizes = sorted(Image.open(f).size for f in packed)
    # 340x300 JPEGs shrink as far as the crop allows (to 256 on the short side); PNGs stay.
    assert sizes == [(290, 256)] * jpegs + [(340, 300)] * (len(kept) - jpegs)
    assert json.loads((out / "pack.json").read_text())["images"] == len(kept)


def test_jax_trainer_computes_what_the_keras_model_computes(photos, tmp_path):
    jax = pytest.importorskip("jax")
    from aedge.train import jax_train
    from aedge.train.convert import main as convert
    from aedge.train.pack import main as pack
    assert CliRunner().invoke(pack, [str(photos), "-o", str(tmp_path / "pack")]).exit_code == 0
    result = CliRunner().invoke(jax_train.main, [
        str(tmp_path / "pack"), "-o", str(tmp_path / "gpu"), "--lmbda", "0.01", "--lmbda", "0.1",
        "--latent-channels", "24", "--minutes", "10", "--max-steps", "20", "--batch", "2",
        "--crop", "64"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(convert, [str(tmp_path / "gpu" / "lambda-0.1.npz"),
                                          "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    from aedge.optimize.export import load_codec
    codec, config = load_codec(tmp_path / "run")
    assert (config["m"], config["lmbda"], config["steps"]) == (24, 0.1, 20)
    with np.load(tmp_path / "gpu" / "lambda-0.1.npz") as saved:
        params = {k.split(":", 1)[1]: saved[k] for k in sorted(saved.files)}
    x = synthetic(48, 80)[None].astype(np.float32) / 255
    y_jax = np.asarray(jax_train.g_a(params, x))
    y = codec.g_a(x).numpy()
    np.testing.assert_allclose(y, y_jax, atol=1e-4)
    y = np.round(y)
    np.testing.assert_allclose(codec.g_s(y).numpy(), jax_train.g_s(params, y), atol=1e-4)
    bits = -np.log2(codec.entropy_bottleneck(y).numpy()).sum()
    np.testing.assert_allclose(bits, -np.log2(jax_train.likelihood(params, y)).sum(), rtol=1e-4)
    # Training moved the weights away from where they started (seed 0, second model).
    _, _, second = jax.random.split(jax.random.key(0), 3)
    start = dict(jax_train.init_params(second, m=24))
    assert set(start) == set(params)
    assert not np.allclose(params["g_a.conv0.kernel"], start["g_a.conv0.kernel"])
