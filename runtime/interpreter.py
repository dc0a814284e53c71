"""A TFLite network behind a plain call: float32 array in, float32 array out.

LiteRT (ai-edge-litert) is the interpreter aedge installs; tflite_runtime or TensorFlow's own
tf.lite serve where that is what a device has.
"""
import numpy as np

from aedge.errors import AedgeError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                import tensorflow as tf
            except ImportError:
                raise AedgeError("no TFLite interpreter: pip install ai-edge-litert") from None
            Interpreter = tf.lite.Interpreter
    return Interpreter


class Network:
    def __init__(self, flatbuffer, threads):
        self._interpreter = _interpreter_class()(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape = None

    def __call__(self, x):
        # Resizing re-plans the graph: worth it only when the image size changes.
        if x.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input, x.shape, strict=False)
            self._interpreter.allocate_tensors()
            self._shape = x.shape
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(x, dtype=np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)
