"""Where models are found: the ones aedge ships, and folders named in $AEDGE_MODEL_PATH."""
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from aedge import modelfile
from aedge.codec import Codec
from aedge.errors import AedgeError

DEFAULT_MODEL = "aedge.aem"


def model_folders():
    extra = [Path(p) for p in os.environ.get("AEDGE_MODEL_PATH", "").split(os.pathsep) if p]
    return extra + [Path(str(resources.files("aedge.models")))]


def model_paths():
    return [p for folder in model_folders() if folder.is_dir()
            for p in sorted(folder.glob("*.aem"))]


@lru_cache(maxsize=None)
def read_model(path):
    return modelfile.read(path)


def default_model():
    path = model_folders()[-1] / DEFAULT_MODEL
    if not path.is_file():
        raise AedgeError(f"the shipped model {path} is missing: reinstall aedge, or pass --model")
    return path


def find_by_identity(identity, variant=None):
    """The first model file with this identity that has the `variant` networks (none named:
    the default ones), else the first with this identity: a model and its float32 file share
    one (export.write_split)."""
    variant = variant or modelfile.VARIANTS[0]
    found = []
    for path in model_paths():
        try:
            model = read_model(path)
            if identity in modelfile.identities(model):
                if variant in model.variants:
                    return path
                found.append(path)
        except AedgeError:
            continue  # one broken file in a model folder must not hide the others
    if found:
        return found[0]
    raise AedgeError(modelfile.retired(identity) or
                     f"no model with identity {identity.hex()} is installed; pass the model "
                     "that made this file with --model, or add its folder to $AEDGE_MODEL_PATH")


@lru_cache(maxsize=None)
def _codec(path, variant, threads):
    return Codec(read_model(path), variant, threads)


def load(model=None, variant=None, threads=None):
    """A codec for a model file, or for the shipped model. Codecs are cached: loading the same
    model with the same variant twice costs nothing (no variant and the default's name are two
    codecs, for they decode differently)."""
    if model is not None:
        path = Path(model)
        if not path.is_file():
            raise AedgeError(f"no such model file: {path}")
    else:
        path = default_model()
        shipped = read_model(path)
        if variant and variant not in shipped.variants:
            # The shipped file leaves float32 to a file of its own, found in a model folder.
            try:
                path = find_by_identity(shipped.identity, variant)
            except AedgeError:
                pass  # the codec then says which networks the shipped model lacks
    # No variant asked for is not the default's name: such a codec decodes each file with the
    # networks that encoded it (codec.py).
    return _codec(path.resolve(), variant, threads)


def codec_for(data, model=None, variant=None):
    """The codec that reads these .aei bytes: the given model file, else the installed model
    that made them."""
    from aedge import bitstream

    header = bitstream.parse_header(bytes(data))
    return load(model=model or find_by_identity(header.model_id, variant or header.networks),
                variant=variant)


def decompress(data, variant=None):
    """Decompresses .aei bytes with whichever installed model made them."""
    return codec_for(data, variant=variant).decompress(data)
