"""A model's identity is its tables, not its networks: the variants of make quantize decode
each other's files, and a file from other tables is refused."""
import numpy as np
import pytest

import aedge
from aedge import modelfile, registry
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
    """The shipped model with its int8-dynamic networks replaced by its float32 ones."""
    model = modelfile.read(registry.default_model())
    networks = {(p, "int8-dynamic"): model.network(p, "float32") for p in modelfile.NETWORKS}
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


def test_a_retired_model_is_named_with_the_release_that_decodes_it(tmp_path, robin):
    """robin-0.3.aei was made by aedge 0.3's model, whose tables this release no longer ships:
    the error names that release; a model that lists the identity in also_decodes takes the
    file."""
    data = (DATA / "robin-0.3.aei").read_bytes()
    old = data[6:14]
    assert modelfile.RETIRED[old.hex()] == "0.3"
    assert old not in modelfile.identities(modelfile.read(registry.default_model()))
    with pytest.raises(AedgeError, match=f"model {old.hex()}, which aedge 0.3 ships .* "
                                         "decode it with aedge 0.3$"):
        aedge.decompress(data)
    listing = _rewrite(tmp_path / "listing.aem", {"also_decodes": [old.hex()]})
    assert old in modelfile.identities(listing)
    assert aedge.load(model=listing.path).decompress(data).shape == robin.shape
