"""make quantize: QAT export, pruning to its target, distillation, and variants that decode
each other's files. A tiny run (a few steps on synthetic photos) from the shipped weights."""
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import round_trips, synthetic

pytestmark = pytest.mark.train
tf = pytest.importorskip("tensorflow")

ROOT = Path(__file__).parent.parent
# photo188 and photo195 fall in the 3% that train/files.py holds out (by their names' hash):
# the int8 choice is made on them.
NAMES = ["photo188.png", "photo195.png"] + [f"photo{i}.png" for i in range(6)]


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from aedge.optimize.variants import main
    photos = tmp_path_factory.mktemp("photos")
    for seed, name in enumerate(NAMES):
        Image.fromarray(synthetic(288, 288, seed=seed)).save(photos / name)
    out = tmp_path_factory.mktemp("build")
    shipped = _digest(ROOT / "models" / "aedge.aem")
    result = CliRunner().invoke(main, [
        str(ROOT / "models" / "hyper" / "weights.npz"),
        "--base", str(ROOT / "models" / "aedge.aem"),
        "--data", str(photos), "-o", str(out), "--steps", "6", "--int8-qat-steps", "6",
        "--distill-steps", "4",
        "--decoder-steps", "3", "--joint-steps", "2", "--int8-decoder-steps", "2",
        "--crop", "64", "--batch", "2", "--prune", "0.5"])
    assert result.exit_code == 0, result.output
    assert _digest(ROOT / "models" / "aedge.aem") == shipped  # models/ only with --ship
    return out


def _ops(flatbuffer):
    from aedge.interpreter import _interpreter_class
    interpreter = _interpreter_class()(model_content=flatbuffer)
    return interpreter, interpreter._get_ops_details()


def test_qat_networks_are_full_integer(built):
    from aedge import modelfile
    qat, base = modelfile.read(built / "aedge-qat.aem"), modelfile.read(built / "aedge-base.aem")
    for part in modelfile.NETWORKS:
        flatbuffer = qat.network(part, "int8")
        assert flatbuffer != base.network(part, "int8")
        interpreter, ops = _ops(flatbuffer)
        names = [op["op_name"] for op in ops]
        assert "QUANTIZE" in names and "DEQUANTIZE" in names
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        int8_convs = [op for op in ops if op["op_name"] == "CONV_2D"
                      and tensors[op["inputs"][1]]["dtype"] == np.int8]
        assert int8_convs, part
        assert round_trips(flatbuffer) == [] and round_trips(base.network(part, "int8")) == []
    choice = json.loads((built / "optimize.json").read_text())["int8_choice"]
    assert choice["held_out_crops"] == 2
    assert set(choice["bd_rate_vs_float32"]) == {"post-training", "qat"}


def test_without_round_trips_drops_the_rounding_and_nothing_else():
    """A float -> int8 -> float round trip between two float convolutions goes, and the network
    then computes what it computes without the rounding."""
    from aedge.optimize.export import without_round_trips
    rng = np.random.default_rng(0)
    k1 = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype(np.float32))
    k2 = tf.constant(rng.normal(size=(3, 3, 4, 2)).astype(np.float32))

    def flatbuffer(rounded, last=False):
        @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
        def network(x):
            y = tf.nn.conv2d(x, k1, 1, "SAME")
            if last:  # the rounding gives the network's output: it is what the network is
                return tf.quantization.fake_quant_with_min_max_args(y, -4.0, 4.0)
            if rounded:
                y = tf.quantization.fake_quant_with_min_max_args(y, -4.0, 4.0)
            return tf.nn.conv2d(y, k2, 1, "SAME")
        return tf.lite.TFLiteConverter.from_concrete_functions(
            [network.get_concrete_function()], network).convert()

    rounded, plain = flatbuffer(True), flatbuffer(False)
    assert len(round_trips(rounded)) == 1
    fixed = without_round_trips(rounded)
    assert round_trips(fixed) == []
    assert [op["op_name"] for op in _ops(fixed)[1]] == ["CONV_2D", "CONV_2D"]
    x = rng.random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(_run(fixed, x), _run(plain, x), rtol=0, atol=1e-5)
    assert np.abs(_run(rounded, x) - _run(plain, x)).max() > 1e-3
    assert without_round_trips(plain) is plain
    last = flatbuffer(True, last=True)
    assert [op["op_name"] for op in _ops(last)[1]] == ["CONV_2D", "QUANTIZE", "DEQUANTIZE"]
    assert round_trips(last) == [] and without_round_trips(last) is last


def test_qat_rounds_no_gdn_output_that_a_float_convolution_reads():
    """In training as in the converted network: the last GDN of g_a and of g_s feeds a
    convolution kept in float, so its output is not quantized; every other GDN's is."""
    from aedge.optimize import equalize, qat
    from aedge.train import architecture as arch
    from aedge.train.model import GDN
    codec = equalize.equalize(_shipped_codec(), _crops(2, 64))
    for part, channels in (("g_a", 3), ("g_s", arch.M_LATENT)):
        quantized = qat.quantize_part(getattr(codec, part), channels, qat.FLOAT_LAYERS[part])
        gdns = [layer for layer in quantized.layers
                if isinstance(getattr(layer, "layer", layer), GDN)]
        assert [type(layer).__name__ for layer in gdns] == ["QuantizeWrapperV2"] * 2 + [
            "GDN"], part


def test_int8_alone_is_made_from_equalized_outputs():
    """export.networks equalizes the convolutions' outputs for the int8 networks only: the
    int8-dynamic and int16x8 ones are made before, from the codec as it was (with them
    equalized, int8-dynamic measured +37% against float32)."""
    from aedge.optimize import equalize, export
    from aedge.train import architecture as arch
    crops = _crops(2, 64)
    built = export.networks(_shipped_codec(), crops)
    codec = equalize.equalize(_shipped_codec(), crops)
    decoded = export.decoder_inputs(codec, [codec.g_a(x).numpy() for x in crops])
    y_hat = decoded[-1]
    got = _run(built["g_s", "int8-dynamic"], y_hat)
    np.testing.assert_array_equal(
        got, _run(export.to_tflite(codec.g_s, arch.M_LATENT, dynamic=True), y_hat))
    equalize.equalize_outputs(codec.g_s, decoded)
    assert not np.array_equal(
        got, _run(export.to_tflite(codec.g_s, arch.M_LATENT, dynamic=True), y_hat))


def test_dynamic_qat_changes_only_the_int8_dynamic_networks(built):
    from aedge import modelfile
    dynamic = modelfile.read(built / "aedge-dynamic-qat.aem")
    base = modelfile.read(built / "aedge-base.aem")
    assert dynamic.identity == base.identity
    for part in modelfile.NETWORKS:
        assert dynamic.network(part, "int8-dynamic") != base.network(part, "int8-dynamic")
        assert dynamic.network(part, "float32") == base.network(part, "float32")
    choice = json.loads((built / "optimize.json").read_text())["int8_dynamic_choice"]
    assert set(choice["bd_rate_vs_float32"]) == {"converted", "qat"}


def _changed(built, stage):
    """The networks a stage's file has that differ from those it started from (same identity)."""
    from aedge import modelfile
    after = modelfile.read(built / f"aedge-{stage}.aem")
    before = modelfile.read(built / f"aedge-before-{stage}.aem")
    assert after.identity == before.identity
    return {key for key in before.networks() if after.network(*key) != before.network(*key)}


def test_decoder_finetune_changes_only_the_int8_dynamic_g_s(built):
    assert _changed(built, "decoder") == {("g_s", "int8-dynamic")}
    summary = json.loads((built / "optimize.json").read_text())
    assert summary["models"]["decoder"]["steps"] == 3
    assert summary["models"]["decoder"]["crop"] == 256  # MS-SSIM's five scales
    assert summary["models"]["decoder"]["msssim_weight"] == 3.0
    choice = summary["int8_dynamic_decoder"]["bd_rate_vs_float32"]
    assert set(choice) == {"before", "decoder"}
    assert all(set(v) == {"psnr", "ms_ssim"} for v in choice.values())


def test_int8_decoder_finetune_changes_only_the_int8_g_s(built):
    """g_s of the QAT int8 networks, tuned alone (still quantization-aware): full-integer
    still, with QAT's encoder, and shipped only if nearer float32 on the held-out crops."""
    from aedge import modelfile
    qat = modelfile.read(built / "aedge-qat.aem")
    tuned = modelfile.read(built / "aedge-int8-decoder.aem")
    assert tuned.identity == qat.identity
    assert {key for key in qat.networks() if tuned.network(*key) != qat.network(*key)} == \
        {("g_s", "int8")}
    _, ops = _ops(tuned.network("g_s", "int8"))
    assert {"QUANTIZE", "DEQUANTIZE"} <= {op["op_name"] for op in ops}
    summary = json.loads((built / "optimize.json").read_text())
    stage = summary["models"]["int8-decoder"]
    assert (stage["steps"], stage["crop"], stage["msssim_weight"]) == (2, 256, 0.0)
    choice = summary["int8_decoder"]["bd_rate_vs_float32"]
    won = summary["int8_choice"]["bd_rate_vs_float32"]
    before = "qat" if won["qat"] is not None and (won["post-training"] is None or
                                                 won["qat"] < won["post-training"]) \
        else "post-training"
    assert set(choice) == {before, "decoder"}
    assert all(set(v) == {"psnr", "ms_ssim"} for v in choice.values())
    assert choice[before]["psnr"] == won[before]  # compared with the networks chosen before
    assert stage["made_from"] == [_digest(ROOT / "models" / "hyper" / "weights.npz")[:16],
                                  _digest(built / "qat" / "weights.npz")[:16]]
    nearer = None not in choice["decoder"].values() and (
        None in choice[before].values() or
        sum(choice["decoder"].values()) < sum(choice[before].values()))
    shipped = modelfile.read(built / "aedge.aem")
    assert (shipped.network("g_s", "int8") == tuned.network("g_s", "int8")) == nearer
    assert (shipped.manifest["optimization"]["int8"] == tuned.manifest["optimization"]["int8"]
            ) == nearer


def test_a_stage_is_reused_only_if_trained_as_asked(tmp_path, monkeypatch):
    """A build folder's weights stand in for a fine-tune only if they were made from the
    same weights on the same photos with the steps, crops, learning rate and settings asked
    for now: `--steps 6000` after a run of 3,000 trains anew, and so does a run from other
    weights of the same shapes or on other photos."""
    import types
    from aedge.optimize import finetune, variants
    trained = []
    monkeypatch.setattr(finetune, "training_batches", lambda *args: None)
    monkeypatch.setattr(finetune, "finetune",
                        lambda codec, batches, steps, lr, **how: trained.append((steps, lr)))
    part = types.SimpleNamespace(weights=[tf.Variable(np.arange(3, dtype=np.float32))])
    codec = types.SimpleNamespace(g_a=part, h_a=part, g_s=part)

    start, photos = tmp_path / "start.npz", tmp_path / "photos"
    photos.mkdir()

    def run(steps=4, lr=1e-5, crop=64, batch=2, start_with=0, photo=8, **settings):
        np.savez(start, np.full(3, start_with, np.float32))
        Image.fromarray(synthetic(photo, 8)).save(photos / "photo.png")
        _, stage = variants._finetune(tmp_path / "stage", codec, [start], photos, steps, crop,
                                      batch, lr, False, lambda codec: [], settings=settings)
        return stage

    asked = [dict(), dict(), dict(steps=8), dict(steps=8), dict(steps=8, lr=2e-5),
             dict(steps=8, lr=2e-5, crop=96), dict(steps=8, lr=2e-5, crop=96, batch=4),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0, start_with=1),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0, start_with=1),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0, start_with=1, photo=16),
             dict(steps=8, lr=2e-5, crop=96, batch=4, weight=1.0, start_with=1, photo=16)]
    for how in asked:
        stage = run(**how)
        assert (stage["steps"], stage["learning_rate"], stage["crop"], stage["batch"]) == (
            how.get("steps", 4), how.get("lr", 1e-5), how.get("crop", 64), how.get("batch", 2))
    assert trained == [(4, 1e-5), (8, 1e-5), (8, 2e-5), (8, 2e-5), (8, 2e-5), (8, 2e-5),
                       (8, 2e-5), (8, 2e-5)]


def test_joint_finetune_changes_only_the_int8_dynamic_networks(built):
    from aedge import modelfile
    assert _changed(built, "joint") == {(p, "int8-dynamic") for p in modelfile.NETWORKS}
    joint = modelfile.read(built / "aedge-joint.aem")
    summary = json.loads((built / "optimize.json").read_text())
    stage = summary["models"]["joint"]
    assert (stage["steps"], stage["crop"], stage["msssim_weight"]) == (2, 256, 0.7)
    # It starts from the networks chosen so far: the QAT's and the g_s fine-tune's where they
    # won (a run this tiny may go either way).
    qat = summary["int8_dynamic_choice"]["bd_rate_vs_float32"]
    decoder = summary["int8_dynamic_decoder"]["bd_rate_vs_float32"]
    won = [name for name, better in (
        ("dynamic-qat", qat["qat"] is not None and (qat["converted"] is None
                                                    or qat["qat"] < qat["converted"])),
        ("decoder", sum(decoder["decoder"].values()) < sum(decoder["before"].values())))
        if better]
    assert stage["from"] == (" + ".join(won) or "converted")
    assert stage["made_from"] == [_digest(ROOT / "models" / "hyper" / "weights.npz")[:16]] + [
        _digest(built / name / "weights.npz")[:16] for name in won[-1:]]
    choice = summary["int8_dynamic_joint"]["bd_rate_vs_float32"]
    assert set(choice) == {"before", "joint"}
    assert all(set(v) == {"psnr", "ms_ssim"} for v in choice.values())
    nearer = sum(choice["joint"].values()) < sum(choice["before"].values())
    shipped = modelfile.read(built / "aedge.aem")
    assert (shipped.network("g_a", "int8-dynamic") == joint.network("g_a", "int8-dynamic")) \
        == nearer


def test_rate_distortion_msssim_trades_rate_for_both_in_decibels():
    """Its value is the plain loss's; its gradient is that of
    lambda x MSE x (log MSE + w log(1 - MS-SSIM)) / (1 + w): MS-SSIM's dB weighed w times
    PSNR's, a dB of the mix worth what a dB of PSNR was."""
    from aedge.optimize.finetune import rate_distortion_msssim

    x = tf.constant(np.stack([synthetic(176, 176, seed=s) for s in range(2)]) / 255,
                    tf.float32)
    gain = tf.Variable(0.9)

    class Fake:
        lambdas = (0.5, 0.5)

        def __call__(self, inputs, training):
            return inputs[0] * gain + 0.02, tf.fill([2], 1000.0) * gain

    def terms(w):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(rate_distortion_msssim(Fake(), x, w)[0])
        return loss.numpy(), tape.gradient(loss, gain).numpy()

    with tf.GradientTape(persistent=True) as tape:
        x_hat = x * gain + 0.02
        mse = tf.reduce_mean(tf.square(x - x_hat), axis=(1, 2, 3)) * 255.0 ** 2
        error = 1 - tf.image.ssim_multiscale(x, tf.clip_by_value(x_hat, 0.0, 1.0), 1.0)
        bpp = tf.reduce_sum(1000.0 * gain / 176 ** 2 * tf.ones([2]))
        each = [(mse[i], error[i]) for i in range(2)]
    d_bpp = tape.gradient(bpp, gain).numpy()
    d_mse, d_error = ([tape.gradient(pair[k], gain).numpy() for pair in each] for k in (0, 1))
    mse, error = mse.numpy(), error.numpy()
    for w in (0.0, 1.0, 3.0):
        loss, grad = terms(w)
        np.testing.assert_allclose(loss, bpp.numpy() + 0.5 * mse.sum(), rtol=1e-5)
        want = d_bpp + 0.5 / (1 + w) * sum(d_mse[i] + w * mse[i] / error[i] * d_error[i]
                                           for i in range(2))
        np.testing.assert_allclose(grad, want, rtol=1e-4)


def test_decoder_finetune_of_plainly_converted_networks(tmp_path_factory):
    """Without the int8-dynamic QAT, g_s of the converted networks is tuned; the shipped
    file says which networks it has either way."""
    from aedge import modelfile
    from aedge.optimize.variants import main
    photos = tmp_path_factory.mktemp("photos")
    for seed, name in enumerate(NAMES):
        Image.fromarray(synthetic(288, 288, seed=seed)).save(photos / name)
    out = tmp_path_factory.mktemp("build")
    result = CliRunner().invoke(main, [
        str(ROOT / "models" / "hyper" / "weights.npz"),
        "--base", str(ROOT / "models" / "aedge.aem"),
        "--data", str(photos), "-o", str(out), "--no-qat", "--no-dynamic-qat", "--prune", "0",
        "--no-distill", "--decoder-steps", "2", "--joint-steps", "0", "--batch", "2"])
    assert result.exit_code == 0, result.output
    bd = json.loads((out / "optimize.json").read_text())["int8_dynamic_decoder"][
        "bd_rate_vs_float32"]
    assert None not in bd["decoder"].values() and None not in bd["before"].values()
    nearer = sum(bd["decoder"].values()) < sum(bd["before"].values())
    shipped = modelfile.read(out / "aedge.aem")
    tuned = modelfile.read(out / "aedge-decoder.aem").network("g_s", "int8-dynamic")
    assert (shipped.network("g_s", "int8-dynamic") == tuned) == nearer
    label = shipped.manifest["optimization"].get("int8-dynamic")
    assert label == ("converted; g_s fine-tuned for PSNR + 3 x MS-SSIM, in dB" if nearer
                     else None)


def test_decibels_is_psnr_plus_weighted_ms_ssim_in_db():
    from aedge.optimize.finetune import decibels
    from aedge.metrics import ms_ssim
    codec = _shipped_codec()
    x = tf.constant(np.stack([synthetic(192, 192, seed=s) for s in range(2)]) / 255,
                    tf.float32)
    loss, bpp, mse = (t.numpy() for t in decibels(codec, x, 0.0))
    np.testing.assert_allclose(loss, -10 * np.log10(255 ** 2 / mse), rtol=1e-5)
    assert bpp.shape == (2,) and (bpp > 0).all()
    # With a weight, MS-SSIM's dB joins in: -10 log10(1 - MS-SSIM) is positive, so the loss
    # is lower than -PSNR by at least that much for a codec this good.
    anchor = tf.zeros([2], tf.int32)
    x_hat = np.clip(codec((x, anchor), training=False)[0].numpy(), 0, 1)
    db = [-10 * np.log10(1 - ms_ssim(np.rint(a * 255).astype(np.uint8),
                                     np.rint(b * 255).astype(np.uint8)))
          for a, b in zip(x.numpy(), x_hat)]
    assert min(db) > 5
    weighted, _, mse2 = (t.numpy() for t in decibels(codec, x, 1.0))
    assert (weighted < -10 * np.log10(255 ** 2 / mse2) - 5).all()


def test_gains_between_anchors_are_the_model_files_gains():
    """A fine-tune that codes crops between the anchors gives them the gains a quality there
    gets in the model file (export.gain_tables, to its fixed point), extrapolated below the
    lowest anchor as export does; whole positions are the anchors' own gains."""
    from aedge.optimize import export
    codec = _shipped_codec()
    positions = np.array([-1.5, -0.3, 0.0, 2.5, 6.25, 7.0])
    tables = export.gain_tables(codec, positions)
    gains = codec._gains(tf.constant(positions, tf.float32))
    for got, name in zip(gains, ("gain_y", "gain_y_inverse", "gain_z", "gain_z_inverse")):
        np.testing.assert_allclose(got.numpy()[:, 0, 0, :], tables[name] / 2 ** 16,
                                   rtol=1e-6, atol=2 ** -16)
    whole = codec._gains(tf.constant([0, 3, 7]))
    for a, b in zip(whole, codec._gains(tf.constant([0.0, 3.0, 7.0]))):
        assert np.array_equal(a.numpy(), b.numpy())


def test_draw_positions_over_qualities_covers_the_quality_span_evenly():
    from aedge.optimize.export import EXTRAPOLATED_ANCHORS
    from aedge.optimize.finetune import draw_positions
    codec = _shipped_codec()
    top = len(codec.lambdas) - 1
    tf.random.set_seed(0)
    positions = draw_positions(codec, 20000, "qualities").numpy()
    assert positions.dtype == np.float32
    assert positions.min() >= -EXTRAPOLATED_ANCHORS and positions.max() <= top
    # Evenly: the extrapolated qualities get their share of the span, the top anchor no
    # more than the width around it.
    below = EXTRAPOLATED_ANCHORS / (EXTRAPOLATED_ANCHORS + top)
    assert abs((positions < 0).mean() - below) < 0.01
    assert abs((positions > top - 0.5).mean() - 0.5 / (EXTRAPOLATED_ANCHORS + top)) < 0.01
    anchors = draw_positions(codec, 20000).numpy()
    assert anchors.dtype == np.int32 and set(anchors) == set(range(top + 1))
    with pytest.raises(ValueError, match="over must be"):
        draw_positions(codec, 1, "lambdas")


def test_dynamic_rounding_imitates_the_converted_network():
    """g_s with its convolutions wrapped by dynamic_qat lands nearer the int8-dynamic TFLite
    network's output than the float model does (about half as far, measured): the fine-tune
    trains against the rounding that runs, not a symmetric or weights-only one."""
    from aedge.interpreter import _interpreter_class
    from aedge.optimize import dynamic_qat, export
    from aedge.train import architecture as arch
    from aedge.train.model import Codec, build, load_npz

    codec = load_npz(build(Codec()), ROOT / "models" / "hyper" / "weights.npz")
    y = np.round(np.random.default_rng(0).normal(0, 3, (1, 6, 8, arch.M_LATENT))) / 4
    y = y.astype(np.float32)
    interpreter = _interpreter_class()(model_content=export.to_tflite(
        codec.g_s, arch.M_LATENT, dynamic=True))
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], y.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], y)
    interpreter.invoke()
    converted = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    plain = codec.g_s(y).numpy()
    unwrap = dynamic_qat.wrap(codec)
    rounded = codec.g_s(y).numpy()
    unwrap()
    np.testing.assert_array_equal(codec.g_s(y).numpy(), plain)
    far, near = np.abs(plain - converted).mean(), np.abs(rounded - converted).mean()
    assert near < 0.6 * far, (near, far)


def test_dynamic_rounding_levels():
    from aedge.optimize import dynamic_qat
    x = tf.constant(np.random.default_rng(1).normal(1, 2, (2, 5, 7, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        q = dynamic_qat.round_input(x)
    np.testing.assert_array_equal(tape.gradient(q, x), np.ones(x.shape))  # straight through
    for image, original in zip(q.numpy(), x.numpy()):
        step = (original.max() - min(original.min(), 0)) / 255
        assert len(np.unique(image)) <= 256
        assert np.abs(image - original).max() <= 0.5 * step + 1e-6
    kernel = tf.constant(np.random.default_rng(2).normal(0, 1, (3, 3, 4, 5)), tf.float32)
    w = dynamic_qat.round_kernel(kernel).numpy()
    peak = np.abs(kernel.numpy()).max(axis=(0, 1, 2))
    np.testing.assert_allclose(np.abs(w).max(axis=(0, 1, 2)), peak, rtol=1e-6)
    np.testing.assert_allclose(w / (peak / 127), np.round(w / (peak / 127)), atol=1e-4)


def test_pruning_reaches_its_target(built):
    from aedge import modelfile
    from aedge.optimize import report
    model = modelfile.read(built / "aedge-sparse50.aem")
    assert model.manifest["optimization"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert "qd8" in model.manifest["optimization"]["int8-dynamic"]
    with zipfile.ZipFile(built / "aedge-sparse50.aem") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_LZMA}
    # Of all convolution weights: GDN's are not pruned, a few were zero before.
    measured, _ = report.network_stats(model, "float32")
    assert 0.47 < measured < 0.53
    dense, _ = report.network_stats(modelfile.read(built / "aedge-base.aem"), "float32")
    assert dense < 0.05 and measured > dense + 0.45


def test_student_has_about_a_third_of_the_macs(built):
    from aedge import modelfile
    from aedge.optimize import report
    _, student = report.network_stats(modelfile.read(built / "aedge-fast.aem"), "float32")
    _, teacher = report.network_stats(modelfile.read(built / "aedge-base.aem"), "float32")
    # g_a + h_a + g_s and GDN, counted in the graphs: h_a is the teacher's (README: 13.6
    # thousand multiply-adds per pixel against 41.7).
    assert 0.3 < student / teacher < 0.36
    notes = modelfile.read(built / "aedge-fast.aem").manifest["optimization"]
    assert notes["filters"] == [24, 48, 96] and notes["teacher_filters"] == [64, 96, 128]


def test_every_variant_decodes_every_other(built):
    import aedge
    image = synthetic(80, 112, seed=9)
    from aedge import modelfile
    floats = built / "aedge-float32.aem"
    files = sorted(set(built.glob("aedge*.aem")) - {floats})
    # base, qat, int8-decoder, dynamic-qat, before-decoder, decoder, before-joint, joint,
    # sparse50, fast, and the one to ship
    assert len(files) == 11
    # The one to ship leaves its float32 networks to a file of their own.
    assert modelfile.read(built / "aedge.aem").variants == ("int8-dynamic", "int8", "int16x8")
    assert modelfile.read(floats).variants == ("float32",)
    # Made from the shipped weights: nothing in them is narrowed (make narrow's files are).
    assert not any("narrowed" in modelfile.read(f).manifest["optimization"]
                   for f in files + [floats])
    codecs = [aedge.load(model=str(f), variant=v) for f in files
              for v in ("int8-dynamic", "int8", "int16x8")] + [aedge.load(model=str(floats))]
    for encoder in codecs:
        data = encoder.compress(image, 50)
        want = encoder.latents(data)
        for decoder in codecs:
            for got, expected in zip(decoder.latents(data), want):
                np.testing.assert_array_equal(got, expected)
            assert decoder.decompress(data).shape == image.shape


def _shipped_codec():
    from aedge.optimize.export import load_codec
    return load_codec(ROOT / "models" / "hyper" / "weights.npz")


def _crops(count=3, size=96):
    return [tf.constant(synthetic(size, size, seed=s)[None].astype(np.float32) / 255)
            for s in range(count)]


def test_post_training_int8_writes_pixels_in_float(built):
    """g_s's last convolution stays in float, and so must the depth-to-space after it: in
    int8 its one scale, set on calibration, made a step of 13 levels of 255."""
    from aedge import modelfile
    flatbuffer = modelfile.read(built / "aedge-base.aem").network("g_s", "int8")
    interpreter, ops = _ops(flatbuffer)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    output = interpreter.get_output_details()[0]["index"]
    last = next(op for op in ops if output in op["outputs"])
    assert last["op_name"] == "DEPTH_TO_SPACE"
    assert tensors[last["inputs"][0]]["dtype"] == np.float32
    producer = next(op for op in ops if last["inputs"][0] in op["outputs"])
    assert producer["op_name"] == "CONV_2D"
    assert tensors[producer["inputs"][1]]["dtype"] == np.float32
    assert any(tensors[op["inputs"][1]]["dtype"] == np.int8 for op in ops
               if op["op_name"] == "CONV_2D")  # and the inner ones are int8


def test_calibration_feeds_g_s_what_the_codec_decodes():
    """What calibration and equalization feed g_s is the y_hat the codec decodes, anchor by
    anchor (around h_s's mean, the smallest scales not coded), not y rounded alone."""
    from aedge.optimize.export import decoder_inputs
    codec, crops = _shipped_codec(), _crops(count=8, size=64)
    latents = [codec.g_a(x).numpy() for x in crops]
    for i, (x, y_hat) in enumerate(zip(crops, decoder_inputs(codec, latents))):
        x_hat, _ = codec((x, tf.constant([i % len(codec.lambdas)])))
        np.testing.assert_allclose(codec.g_s(y_hat).numpy(), x_hat.numpy(), atol=1e-5)
        if i == 0:  # the lowest anchor: most of y is not coded and takes h_s's mean
            gain = 2.0 ** codec.gain_y.numpy()[0]
            assert not np.allclose(y_hat, np.round(latents[0] * gain) / gain, atol=1e-3)


def test_equalization_computes_the_same_and_balances_each_channel():
    from aedge.optimize import equalize
    from aedge.train.model import GDN
    codec, crops = _shipped_codec(), _crops()
    y = codec.g_a(crops[0]).numpy()
    y_hat = np.round(y * 4) / 4
    before = codec.g_s(y_hat).numpy()
    # Before equalizing: a latent that g_a's float rounding moves across a rounding boundary
    # would move a channel's peak by a whole step of the lowest anchor.
    latents = [codec.g_a(x).numpy() for x in crops]
    assert not equalize.is_equalized(codec)
    equalize.equalize(codec, crops)
    assert equalize.is_equalized(codec)
    np.testing.assert_allclose(codec.g_a(crops[0]).numpy(), y, atol=2e-4 * np.abs(y).max())
    np.testing.assert_allclose(codec.g_s(y_hat).numpy(), before, atol=1e-4)
    # On the images it was fitted on, every GDN's channel c now spans what the next kernel's
    # input channel c does (both in absolute value), up to the geometric-mean normalisation.
    from aedge.optimize.export import decoder_inputs
    decoded = [codec.g_s.layers[0](y) for y in decoder_inputs(codec, latents)]
    for chain, inputs in ((codec.g_a, crops), (codec.g_s, decoded)):
        layers = [layer for layer in chain.layers if not isinstance(layer, equalize.InputScale)]
        ranges = equalize.channel_ranges(layers, inputs)
        checked = 0
        for i, layer in enumerate(layers):
            if isinstance(layer, GDN):
                kernel = equalize._conv(layers[i + 1]).kernel.numpy()
                ratio = ranges[i] / np.abs(kernel).max(axis=(0, 1, 3))
                alive = ranges[i] > 1e-2 * ranges[i].max()
                assert np.ptp(np.log(ratio[alive])) < 0.7, (chain.name, i)  # within 2x
                checked += 1
        assert checked == 3
    # And y, through g_s's InputScale, against g_s's first kernel.
    y_range = np.mean([np.abs(np.asarray(d)).reshape(-1, d.shape[-1]).max(0) for d in decoded], 0)
    ratio = y_range / np.abs(equalize._conv(codec.g_s.layers[1]).kernel.numpy()).max(axis=(0, 1, 3))
    # Channels below equalize.RANGE_FLOOR of the widest, before the InputScale, are floored.
    unscaled = y_range / codec.g_s.layers[0].scale.numpy()
    alive = unscaled > 2 * equalize.RANGE_FLOOR * unscaled.max()
    assert alive.mean() > 0.5
    assert np.ptp(np.log(ratio[alive])) < 0.7
    # Equalized once: a second call changes nothing.
    weights = [w.numpy() for w in codec.g_s.weights]
    equalize.equalize(codec, _crops(2, 64))
    for w, v in zip(weights, codec.g_s.weights):
        np.testing.assert_array_equal(w, v.numpy())


def test_equalized_outputs_compute_the_same_and_share_one_range():
    """equalize_outputs (for full-integer int8): each convolution before GDN gets output
    channels that share one range, GDN takes the inverse, and the float chain computes what
    it did; the int8 g_s made from it decodes nearer the float one."""
    from aedge.optimize import equalize, export
    from aedge.train import architecture as arch
    from aedge.train.model import GDN
    codec, crops = _shipped_codec(), _crops(2, 128)
    equalize.equalize(codec, crops)
    decoded = export.decoder_inputs(codec, [codec.g_a(x).numpy() for x in crops])
    y_hat = decoded[1]  # the second anchor: what g_s reads at a low rate
    y, want = codec.g_a(crops[0]).numpy(), codec.g_s(y_hat).numpy()
    int8 = export.to_tflite(codec.g_s, arch.M_LATENT, decoded, [0, -1])
    equalize.equalize_outputs(codec.g_a, crops)
    equalize.equalize_outputs(codec.g_s, decoded)
    np.testing.assert_allclose(codec.g_a(crops[0]).numpy(), y, atol=1e-5 * np.abs(y).max())
    np.testing.assert_allclose(codec.g_s(y_hat).numpy(), want, atol=1e-5)
    for chain, inputs in ((codec.g_a, crops), (codec.g_s, decoded)):
        layers = equalize._layers(chain)  # g_s's InputScale included: it reads y_hat
        ranges = equalize.channel_ranges(layers, inputs)
        before_gdn = [ranges[i] for i, layer in enumerate(layers[1:]) if isinstance(layer, GDN)]
        assert len(before_gdn) == 3
        for r in before_gdn:
            alive = r > 2 * equalize.RANGE_FLOOR * r.max()
            assert alive.mean() > 0.5 and np.ptp(np.log(r[alive])) < 1e-3
    equalized = export.to_tflite(codec.g_s, arch.M_LATENT, decoded, [0, -1])
    error = lambda flatbuffer: np.sqrt(np.mean((_run(flatbuffer, y_hat) - want) ** 2))
    assert error(equalized) < 0.9 * error(int8), (error(equalized), error(int8))


def _run(flatbuffer, x):
    """A network's output on x, with TFLite."""
    from aedge.interpreter import _interpreter_class
    interpreter = _interpreter_class()(model_content=flatbuffer)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_equalized_int8_dynamic_decoder_is_nearer_float():
    """What equalization is for: the same weights, converted to int8-dynamic, decode nearer
    the float network (measured on Kodak: +3.8% BD-rate against float32 where plain
    conversion gives +8.5%)."""
    from aedge.optimize import equalize, export
    from aedge.train import architecture as arch
    codec, crops = _shipped_codec(), _crops(2, 128)
    # What g_s reads at the highest anchor, where int8 costs most.
    y_hat = codec.quantize(codec.g_a(crops[0]), tf.constant([len(codec.lambdas) - 1]))[0].numpy()
    plain = _run(export.to_tflite(codec.g_s, arch.M_LATENT, dynamic=True), y_hat)
    want = codec.g_s(y_hat).numpy()
    equalize.equalize(codec, crops)
    equalized = _run(export.to_tflite(codec.g_s, arch.M_LATENT, dynamic=True), y_hat)
    error = lambda got: np.sqrt(np.mean((got - want) ** 2))
    assert error(equalized) < 0.8 * error(plain), (error(equalized), error(plain))


def test_pruned_convolutions_round_as_int8_dynamic():
    """The pruning fine-tune rounds as the int8-dynamic networks do: dynamic_qat finds every
    convolution inside tfmot's wrappers (4 in g_a, 3 in h_a, 4 in g_s)."""
    from aedge.optimize import dynamic_qat, equalize, prune
    codec = equalize.equalize(_shipped_codec(), _crops(2, 64))
    prune.prune_codec(codec, 0.5, 10)
    assert len(list(dynamic_qat.convolutions(codec))) == 11
    x = _crops(1, 64)[0]
    plain = codec.g_a(x).numpy()
    unwrap = dynamic_qat.wrap(codec)
    rounded = codec.g_a(x).numpy()
    unwrap()
    assert not np.array_equal(plain, rounded)
    np.testing.assert_array_equal(codec.g_a(x).numpy(), plain)


def test_narrowing_trains_its_phases_keeps_the_tables_and_resumes(tmp_path, monkeypatch):
    from aedge.optimize import distill, export, narrow
    teacher = _shipped_codec()
    crops = tf.constant(np.concatenate([synthetic(64, 64, seed=s)[None] for s in range(2)])
                        .astype(np.float32) / 255)

    def batches():
        while True:
            yield crops

    def mean_loss(student):  # over anchors drawn alike for both
        loss_of = narrow.narrowing_loss(teacher, student)
        tf.random.set_seed(3)
        return np.mean([float(loss_of(crops)) for _ in range(8)])
    before = mean_loss(distill.student_from(teacher, (32, 96, 128)))
    # One phase, stopped at its fifth batch: the checkpoint of its fourth step is kept.
    monkeypatch.setattr(narrow, "CHECKPOINT_STEPS", 2)
    phases = ((2, 6, 1e-3), (4, 2, 1e-4))
    served = iter(range(5))

    def stopping():
        for _ in served:
            yield crops
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        narrow.narrow(teacher, (32, 96, 128), stopping, tmp_path, phases)
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 4
    logged = []
    student = narrow.narrow(teacher, (32, 96, 128), batches, tmp_path, phases, logged.append)
    assert logged[0] == "resuming at phase 1, step 4"
    assert [json.loads(m)["phase"] for m in logged[1:]] == [1, 2]
    assert mean_loss(student) < 0.9 * before
    saved = export.load_codec(tmp_path / "weights.npz")
    assert saved.filters == (32, 96, 128)
    for name, v in teacher.named_variables().items():  # the tables: the same identity
        if not name.startswith(("g_a.", "g_s.")):
            np.testing.assert_array_equal(saved.named_variables()[name].numpy(), v.numpy())
    with pytest.raises(Exception, match="other widths or phases"):
        narrow.narrow(teacher, (32, 96, 128), batches, tmp_path, phases[:1])


def test_narrowing_phases_train_the_highest_resolution_stages_first(tmp_path):
    from aedge.optimize import distill, narrow
    teacher = _shipped_codec()
    crops = tf.constant(synthetic(64, 64, seed=4)[None].astype(np.float32) / 255)
    start = distill.student_from(teacher, (32, 96, 128))
    student = narrow.narrow(teacher, (32, 96, 128), lambda: iter([crops] * 3), tmp_path,
                            ((2, 3, 1e-3),), log=lambda m: None)
    same = lambda a, b: all(np.array_equal(u.numpy(), v.numpy())
                            for u, v in zip(a.weights, b.weights))
    # g_a: convolution and GDN of its first two stages; g_s: its last stage and pixels.
    for chain, trained in (("g_a", range(4)), ("g_s", range(4, 7))):
        for i, (a, b) in enumerate(zip(getattr(start, chain).layers,
                                       getattr(student, chain).layers)):
            assert same(a, b) == (i not in trained), (chain, i)
    # The rest is the teacher's own, where the widths allow it.
    assert same(teacher.g_a.layers[4], student.g_a.layers[4])
    assert same(teacher.g_s.layers[0], student.g_s.layers[0])
