"""aedge: learned image compression for small CPU devices.

    import aedge
    codec = aedge.load()                 # the default quality level; aedge.load(level=1..5)
    data = codec.compress(array)         # uint8 HxWx3 (or HxW greyscale) -> bytes (.aei)
    array = codec.decompress(data)
    array = aedge.decompress(data)       # finds the model that made the file by itself

Nothing here imports TensorFlow: the networks run in the LiteRT interpreter.
"""
from aedge.errors import AedgeError
from aedge.registry import decompress, load

__all__ = ["AedgeError", "decompress", "load"]
