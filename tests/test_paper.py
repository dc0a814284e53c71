"""The seed paper's autoencoders (train/paper.py) and how they are measured."""
import numpy as np
import pytest

pytestmark = pytest.mark.train
tf = pytest.importorskip("tensorflow")

from aedge.train import paper  # noqa: E402


@pytest.mark.parametrize("arch, layers", sorted(paper.ARCHS.items()))
def test_each_architecture_has_its_depth_and_a_smaller_latent(arch, layers):
    autoencoder, encoder, decoder = paper.build(arch)
    convs = [layer for layer in encoder.layers if isinstance(layer, tf.keras.layers.Conv2D)]
    deconvs = [layer for layer in decoder.layers
               if isinstance(layer, tf.keras.layers.Conv2DTranspose)]
    assert len(convs) == len(deconvs) == layers
    assert encoder.output_shape == (None, 16, 16, paper.LATENT_CHANNELS)
    assert 16 * 16 * paper.LATENT_CHANNELS < paper.SIZE * paper.SIZE * 3
    out = autoencoder(np.random.default_rng(0).random((2, 128, 128, 3), np.float32)).numpy()
    assert out.shape == (2, 128, 128, 3) and out.min() >= 0 and out.max() <= 1  # sigmoid


@pytest.mark.parametrize("text", ["0.5,0.5", "0.5,0.6,0.1", "-0.1,0.6,0.5", "a,b,c"])
def test_loss_weights_must_be_three_summing_to_one(text):
    with pytest.raises(paper.PaperError, match="loss weights"):
        paper.loss_weights(text)
    assert paper.loss_weights("0.2,0.3,0.5") == (0.2, 0.3, 0.5)


def test_the_perceptual_term_never_runs_on_random_vgg_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    assert paper.vgg_weights_path(None) is None
    with pytest.raises(paper.PaperError, match="--vgg-weights PATH"):
        paper.hybrid_loss((0.2, 0.4, 0.4), None)
    with pytest.raises(paper.PaperError, match="no such VGG16 weights file"):
        paper.vgg_weights_path(str(tmp_path / "missing.h5"))


def test_hybrid_loss_terms():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, 128, 128, 3), np.float32))
    y = tf.constant(np.clip(x.numpy() + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32))
    mse = float(tf.reduce_mean(tf.square(x - y)))
    assert float(paper.hybrid_loss((0, 0, 1))(x, y)) == pytest.approx(mse, rel=1e-5)
    ssim = float(tf.reduce_mean(tf.image.ssim(x, y, 1.0)))
    assert float(paper.hybrid_loss((0, 1, 0))(x, y)) == pytest.approx(1 - ssim, rel=1e-5)
    assert float(paper.hybrid_loss((0, 0.5, 0.5))(x, x)) == pytest.approx(0, abs=1e-6)


def test_a_tiny_training_run_without_vgg(tmp_path, monkeypatch):
    from PIL import Image
    from conftest import synthetic
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        Image.fromarray(synthetic(140, 150, seed=i)).save(photos / f"p{i:02d}.png")
    with pytest.raises(paper.PaperError, match="VGG16"):  # asked for explicitly: no silent 0
        paper.train("paper-3", photos, tmp_path / "run", (0.2, 0.4, 0.4), epochs=1, batch=4)
    record = paper.train("paper-3", photos, tmp_path / "run", epochs=2, batch=4)
    assert record["epochs_run"] == 2 and record["loss_weights"] == (0.0, 0.5, 0.5)
    assert "perceptual weight 0" in record["note"]
    encoder, decoder = paper.load("paper-3", tmp_path / "run")
    assert encoder.output_shape == (None, 16, 16, 12)


def test_the_latent_coder_round_trips_its_symbols():
    from aedge.train.paper_eval import LatentCoder
    rng = np.random.default_rng(1)
    training = rng.normal(0, 2, (20, 16, 16, 12)).astype(np.float32)
    coder = LatentCoder(training)
    latent = rng.normal(0, 2, (16, 16, 12)).astype(np.float32)
    stream, lanes = coder.encode(latent)
    back = coder.decode(stream, lanes, latent.shape)
    np.testing.assert_array_equal(coder.quantize(back), coder.quantize(latent))
    step = (coder.high - coder.low) / 255
    inside = (latent >= coder.low) & (latent <= coder.high)
    assert np.all(np.abs(back - latent)[inside] <= (step / 2 + 1e-6)[np.nonzero(inside)[2]])
    assert len(stream) < latent.size  # fewer than 8 bits a value
