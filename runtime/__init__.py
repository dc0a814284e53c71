"""aedge: learned image compression for small CPU devices.

    import aedge
    codec = aedge.load()                 # the shipped model; aedge.load(model="my.aem")
    data = codec.compress(array, quality=75)   # uint8 HxWx3 (or HxW) -> bytes (.aei); 1..100
    array = codec.decompress(data)
    array = aedge.decompress(data)       # finds the model that made the file by itself

Nothing here imports TensorFlow: the networks run in the LiteRT interpreter.
"""
from aedge.errors import AedgeError
from aedge.registry import decompress, load

__all__ = ["AedgeError", "decompress", "load"]
