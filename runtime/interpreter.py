"""A TFLite network behind a plain call: float32 array in, float32 array out.

LiteRT (ai-edge-litert) is the interpreter aedge installs; tflite_runtime serves where that is
what a device has. TensorFlow's tf.lite is deliberately not a fallback: the runtime never
imports TensorFlow.
"""
import contextlib
import os

import numpy as np

from aedge.errors import AedgeError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise AedgeError("no TFLite interpreter: pip install ai-edge-litert") from None
    return Interpreter


@contextlib.contextmanager
def quiet_stderr():
    """C libraries that print straight to file descriptor 2 (LiteRT an INFO line per
    interpreter, libtiff its warnings) would break the one-line error promise."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Network:
    def __init__(self, flatbuffer, threads, name="the model's network"):
        cls = _interpreter_class()
        self.name = name
        try:
            with quiet_stderr():
                self._interpreter = cls(model_content=flatbuffer, num_threads=threads)
            inputs = self._interpreter.get_input_details()
            outputs = self._interpreter.get_output_details()
        except Exception as e:  # LiteRT raises what it likes on a damaged flatbuffer
            raise AedgeError(f"{name} cannot be loaded ({type(e).__name__}: {e})") from None
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0]["shape"]) != 4 or \
                len(outputs[0]["shape"]) != 4:
            raise AedgeError(f"{name} is not a network of one image-shaped input and output")
        self._input, self._output = inputs[0]["index"], outputs[0]["index"]
        self.channels = int(inputs[0]["shape"][-1]), int(outputs[0]["shape"][-1])
        self._shape = None

    @property
    def size(self):
        """(height, width) of the input it was last planned for, or None."""
        return self._shape[1:3] if self._shape else None

    def __call__(self, x):
        try:
            # Resizing re-plans the graph: worth it only when the image size changes.
            if x.shape != self._shape:
                self._shape = None
                self._interpreter.resize_tensor_input(self._input, x.shape, strict=False)
                with quiet_stderr():
                    self._interpreter.allocate_tensors()
                self._shape = x.shape
            self._interpreter.set_tensor(self._input, np.ascontiguousarray(x, np.float32))
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)
        except (ValueError, RuntimeError, MemoryError) as e:
            raise AedgeError(f"{self.name} failed on a {x.shape[2]}x{x.shape[1]} input "
                             f"({e})") from None
