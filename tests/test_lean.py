"""The device runtime must never load TensorFlow (it is hundreds of MB a Pi does not have)."""
import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np
import aedge
codec = aedge.load()
image = np.full((40, 50, 3), 120, np.uint8)
assert codec.decompress(codec.compress(image)).shape == image.shape
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "torch",
                "jax", "jaxlib"))
print(" ".join(heavy))
"""


def test_compressing_imports_no_tensorflow():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_runtime_sources_never_import_tensorflow():
    runtime = os.path.join(os.path.dirname(__file__), os.pardir, "runtime")
    for name in os.listdir(runtime):
        if name.endswith(".py"):
            text = open(os.path.join(runtime, name)).read()
            assert "import tensorflow" not in text and "tf_keras" not in text, name
            assert "import jax" not in text, name


@pytest.mark.skipif(os.environ.get("AEDGE_LEAN_ENV") != "1",
                    reason="only in the runtime-only environment that `make test` builds")
def test_lean_environment_has_no_tensorflow():
    assert importlib.util.find_spec("tensorflow") is None
