"""Where models are found: the ones aedge ships, and folders named in $AEDGE_MODEL_PATH."""
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from aedge import modelfile
from aedge.codec import Codec
from aedge.errors import AedgeError

DEFAULT_LEVEL = 3


def model_folders():
    extra = [Path(p) for p in os.environ.get("AEDGE_MODEL_PATH", "").split(os.pathsep) if p]
    return extra + [Path(str(resources.files("aedge.models")))]


def model_paths():
    return [p for folder in model_folders() if folder.is_dir()
            for p in sorted(folder.glob("*.aem"))]


@lru_cache(maxsize=None)
def read_model(path):
    return modelfile.read(path)


def shipped_levels():
    """{level: path} of the models aedge ships."""
    folder = model_folders()[-1]
    return {read_model(p).manifest["level"]: p for p in sorted(folder.glob("*.aem"))}


def path_for_level(level):
    levels = shipped_levels()
    if level not in levels:
        known = ", ".join(str(k) for k in sorted(levels)) or "none installed"
        raise AedgeError(f"no model for quality level {level} (levels: {known})")
    return levels[level]


def find_by_identity(identity):
    for path in model_paths():
        try:
            if read_model(path).identity == identity:
                return path
        except AedgeError:
            continue  # one broken file in a model folder must not hide the others
    raise AedgeError(f"no model with identity {identity.hex()} is installed; pass the model "
                     "that made this file with --model, or add its folder to $AEDGE_MODEL_PATH")


@lru_cache(maxsize=None)
def _codec(path, variant, threads):
    return Codec(read_model(path), variant, threads)


def load(model=None, level=None, variant=None, threads=None):
    """A codec for a model file, or for a shipped quality level (the default level when neither
    is given). Codecs are cached: loading the same model twice costs nothing."""
    if model is not None and level is not None:
        raise AedgeError("give a model file or a quality level, not both")
    if model is not None:
        path = Path(model)
        if not path.is_file():
            raise AedgeError(f"no such model file: {path}")
    else:
        path = path_for_level(DEFAULT_LEVEL if level is None else level)
    path = path.resolve()
    # Resolved here so that the default and its name share one cached codec.
    return _codec(path, variant or read_model(path).default_variant, threads)


def codec_for(data, model=None, variant=None):
    """The codec that reads these .aei bytes: the given model file, else the installed model
    that made them."""
    from aedge import bitstream

    header, _ = bitstream.parse_header(bytes(data))
    return load(model=model or find_by_identity(header.model_id), variant=variant)


def decompress(data, variant=None):
    """Decompresses .aei bytes with whichever installed model made them."""
    return codec_for(data, variant=variant).decompress(data)
