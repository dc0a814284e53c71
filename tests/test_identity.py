"""A model's identity is its tables, not its networks: the variants of make quantize decode
each other's files, and a file from other tables is refused."""
import struct
import zlib

import numpy as np
import pytest

import aedge
from aedge import bitstream, modelfile, registry
from aedge.errors import AedgeError
from conftest import DATA


def _rewrite(path, manifest=None, networks=None, arrays=None):
    model = modelfile.read(registry.default_model())
    base = model.networks()
    kept = {k: v for k, v in model.manifest.items() if not k.startswith("format")}
    modelfile.write(path, {**kept, **(manifest or {})}, {**base, **(networks or {})},
                    {**model.arrays, **(arrays or {})})
    return modelfile.read(path)


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    """The shipped model with its int8-dynamic networks replaced by its int8 ones."""
    model = modelfile.read(registry.default_model())
    networks = {(p, "int8-dynamic"): model.network(p, "int8") for p in modelfile.NETWORKS}
    return _rewrite(tmp_path_factory.mktemp("m") / "swapped.aem", {"name": "swapped"}, networks)


def test_networks_and_name_leave_the_identity(swapped):
    shipped = modelfile.read(registry.default_model())
    assert swapped.identity == shipped.identity
    assert swapped._data != shipped._data


def test_a_table_changes_the_identity(tmp_path):
    shipped = modelfile.read(registry.default_model())
    changed = _rewrite(tmp_path / "x.aem", arrays={"gain_y": shipped.arrays["gain_y"] + 1})
    assert changed.identity != shipped.identity
    scales = {**shipped.manifest["scales"], "skip": shipped.manifest["scales"]["skip"] + 1}
    assert _rewrite(tmp_path / "y.aem", {"scales": scales}).identity != shipped.identity


def test_variants_decode_each_other(swapped, robin):
    """Files of either network set decode with the other to the same latents."""
    ours, theirs = aedge.load(), aedge.load(model=swapped.path)
    for encoder, decoder in ((ours, theirs), (theirs, ours)):
        data = encoder.compress(robin, 40)
        for got, want in zip(decoder.latents(data), encoder.latents(data)):
            np.testing.assert_array_equal(got, want)
        assert decoder.decompress(data).shape == robin.shape


def test_a_retired_model_is_named_with_the_release_that_decodes_it():
    """robin-0.3.aei was made by aedge 0.3's model, whose tables this release no longer ships:
    the error names that release, whether the model is looked up or given."""
    data = (DATA / "robin-0.3.aei").read_bytes()
    old = data[6:14]
    assert modelfile.RETIRED[old.hex()] == "0.3"
    message = (f"^file was made by model {old.hex()}, which aedge 0.3 ships .* with aedge 0.3, "
               r"or put that release's models/aedge.aem in a folder named in \$AEDGE_MODEL_PATH$")
    with pytest.raises(AedgeError, match=message):
        aedge.decompress(data)
    with pytest.raises(AedgeError, match=message):
        aedge.load().decompress(data)


def test_a_format_3_file_of_aedge_0_6_is_named_with_its_release():
    """robin-0.6.aei: format 3, made by aedge 0.6's model, whose quality rows this release moved
    (quality 1 now reaches below the lowest anchor)."""
    data = (DATA / "robin-0.6.aei").read_bytes()
    assert bitstream.parse(data).header.networks is None
    with pytest.raises(AedgeError, match="which aedge 0.6 ships .* decode it with aedge 0.6"):
        aedge.decompress(data)


def test_a_file_of_aedge_0_7_is_named_with_its_release():
    """robin-0.7.aei: format 4, made by aedge 0.7's model (64 channels at every stage), which
    the wider model of aedge 0.8 replaced."""
    data = (DATA / "robin-0.7.aei").read_bytes()
    assert bitstream.parse(data).header.networks == "int8-dynamic"
    with pytest.raises(AedgeError, match="which aedge 0.7 ships .* decode it with aedge 0.7"):
        aedge.decompress(data)


def test_also_decodes_takes_files_that_name_a_listed_identity(tmp_path, robin):
    """A file whose header names another identity is refused, unless the model lists it."""
    data = bytearray(aedge.load().compress(robin, 40))
    other = bytes.fromhex("0123456789abcdef")
    data[6:14] = other
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(AedgeError, match=f"file was made by model {other.hex()}, not by"):
        aedge.load().decompress(bytes(data))
    listing = _rewrite(tmp_path / "listing.aem", {"also_decodes": [other.hex()]})
    assert other in modelfile.identities(listing)
    np.testing.assert_array_equal(aedge.load(model=listing.path).decompress(bytes(data)),
                                  aedge.load().decompress(aedge.load().compress(robin, 40)))


def test_an_lzma_model_file_is_the_same_model(tmp_path, robin):
    """What make quantize writes for the pruned models: the same identity and networks, and
    it decodes what the shipped model encodes to the same pixels."""
    import zipfile

    shipped = modelfile.read(registry.default_model())
    networks = {(p, "int8-dynamic"): shipped.network(p, "int8-dynamic")
                for p in modelfile.NETWORKS}
    kept = {k: v for k, v in shipped.manifest.items() if not k.startswith("format")}
    path = tmp_path / "lzma.aem"
    modelfile.write(path, kept, networks, shipped.arrays, zipfile.ZIP_LZMA)
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_LZMA}
    model = modelfile.read(path)
    assert model.identity == shipped.identity and model.networks() == networks
    encoder = aedge.load(variant="int8-dynamic")
    data = encoder.compress(robin, 40)
    decoded = aedge.load(model=str(path)).decompress(data)
    assert np.array_equal(decoded, encoder.decompress(data))
    with pytest.raises(ValueError, match="deflated or LZMA"):
        modelfile.write(tmp_path / "bz2.aem", kept, networks, shipped.arrays, zipfile.ZIP_BZIP2)


def test_a_file_is_read_by_the_model_file_with_its_networks(tmp_path, monkeypatch, robin):
    """A model folder beside the shipped one holds a file of the same tables with only float32
    networks, as aedge-float32.aem is (here the shipped int8 networks under that name: what
    is tested is which file is picked). Each .aei goes to the file that has the networks it
    names, and asking for float32 finds that file."""
    shipped = modelfile.read(registry.default_model())
    kept = {k: v for k, v in shipped.manifest.items() if not k.startswith("format")}
    folder = tmp_path / "models"
    folder.mkdir()
    floats = folder / "aedge-float32.aem"
    modelfile.write(floats, {**kept, "name": "floats"},
                    {(p, "float32"): shipped.network(p, "int8") for p in modelfile.NETWORKS},
                    shipped.arrays)
    with pytest.raises(AedgeError, match="float32 networks are in a file of their own"):
        aedge.load(variant="float32")
    monkeypatch.setenv("AEDGE_MODEL_PATH", str(folder))
    codec = aedge.load(variant="float32")
    assert codec.model.name == "floats"
    made = {"float32": codec.compress(robin, 40), "int8-dynamic": aedge.load().compress(robin, 40)}
    assert registry.codec_for(made["float32"]).model.name == "floats"
    assert registry.codec_for(made["int8-dynamic"]).model.name == shipped.name
    assert registry.find_by_identity(shipped.identity) == registry.default_model()
    assert registry.find_by_identity(shipped.identity, "float32") == floats
