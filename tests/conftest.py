from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def robin():
    return np.asarray(Image.open(DATA / "robin.png").convert("RGB"))


@pytest.fixture(scope="session")
def codec():
    import aedge
    return aedge.load()


@pytest.fixture(scope="session")
def other_model(tmp_path_factory):
    """The shipped model with other tables (z's gains one step larger): another identity."""
    from aedge import modelfile, registry
    model = modelfile.read(registry.default_model())
    networks = model.networks()
    manifest = {k: v for k, v in model.manifest.items()
                if not k.startswith("format") and k != "also_decodes"}
    arrays = {**model.arrays, "gain_z": model.arrays["gain_z"] + 1}
    path = tmp_path_factory.mktemp("models") / "other.aem"
    modelfile.write(path, {**manifest, "name": "other"}, networks, arrays)
    return path


def synthetic(height, width, seed=0):
    """A smooth picture with edges and a little noise: photo-like enough for a codec test."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width, 1)
    image = np.stack([128 + 100 * np.sin(6 * x + 2 * y), 128 + 90 * np.cos(5 * y),
                      np.where(x + y > 0.8, 200.0, 60.0)], axis=2)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def as_version_3(data):
    """The same .aei in format 3 (aedge 0.3 to 0.6): no networks byte, the CRC made again."""
    import struct
    import zlib
    body = data[:4] + b"\x03" + data[5:23] + data[24:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def round_trips(flatbuffer):
    """The QUANTIZEs of a network that take a float tensor and whose only reader is a
    DEQUANTIZE, neither of them giving the network's output: float in, float out, and a
    rounding between (optimize/export.py, without_round_trips)."""
    from aedge.interpreter import _interpreter_class
    interpreter = _interpreter_class()(model_content=flatbuffer)
    ops = interpreter._get_ops_details()
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    readers = {}
    for op in ops:
        for tensor in op["inputs"]:
            readers.setdefault(tensor, []).append(op)
    return [op["index"] for op in ops if op["op_name"] == "QUANTIZE"
            and dtypes[op["inputs"][0]] == np.float32 and op["outputs"][0] not in outputs
            and [r["op_name"] for r in readers.get(op["outputs"][0], [])] == ["DEQUANTIZE"]
            and readers[op["outputs"][0]][0]["outputs"][0] not in outputs]
