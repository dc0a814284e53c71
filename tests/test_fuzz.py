"""Hostile files: mutated, truncated, and lying headers with the CRC made good again. Each
must decode to an image of the size it claims or end in aedge's own error, quickly, under a
memory limit (allocations beyond it raise MemoryError, which fails the test)."""
import io
import json
import resource
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aedge
from aedge import bitstream, modelfile, registry
from aedge.errors import AedgeError
from conftest import DATA

GOOD = (DATA / "robin.aei").read_bytes()
# Offset and size of each header field and of the first tile's section table.
FIELDS = {"mode": (5, 1), "width": (14, 4), "height": (18, 4), "quality": (22, 1),
          "networks": (23, 1), "alpha": (24, 4), "icc": (28, 4), "z lanes": (32, 2),
          "z stream": (34, 4), "z escapes": (38, 4), "y lanes": (42, 2), "y stream": (44, 4),
          "y escapes": (48, 4)}
HEADROOM = 300 << 20


@pytest.fixture()
def memory_limit():
    """No more than HEADROOM of address space beyond what the process already has."""
    size = int(dict(line.split(":", 1) for line in open("/proc/self/status"))["VmSize"]
               .split()[0]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + HEADROOM, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def with_crc(body):
    return body + struct.pack("<I", zlib.crc32(body))


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(GOOD) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(GOOD) - 1), st.just(0)),
    st.tuples(st.just("lie"), st.sampled_from(sorted(FIELDS)), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("lie"), st.sampled_from(sorted(FIELDS)), st.integers(0, 70)),
)


def mutate(kind, where, value):
    if kind == "flip":
        data = bytearray(GOOD)
        data[where] ^= value
        return bytes(data)
    if kind == "cut":
        return GOOD[:where]
    offset, size = FIELDS[where]
    value &= (1 << (8 * size)) - 1
    body = GOOD[:offset] + value.to_bytes(size, "little") + GOOD[offset + size:-4]
    return with_crc(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
@given(mutations)
def test_hostile_files_end_in_a_clear_error(memory_limit, mutation):
    data = mutate(*mutation)
    codec = aedge.load()
    start = time.perf_counter()
    try:
        image = codec.decompress(data)
    except AedgeError:
        pass
    else:
        header = bitstream.parse_header(data)
        assert image.shape[:2] == (header.height, header.width)
    # 5 s per MB of input, and no file is so small that it may take more than 2 s.
    assert time.perf_counter() - start < max(2.0, 5 * len(data) / 1e6)


def test_a_tiny_file_cannot_claim_a_huge_image(codec=None):
    header = bitstream.Header(bytes(8), 6000, 6000)
    body = bitstream.pack(header, [{"z": bitstream.Coded(1, bytes(4), b""),
                                    "y": bitstream.Coded(1, bytes(4), b"")}] * 36)[:200]
    with pytest.raises(AedgeError, match="too short for the image"):
        aedge.load().decompress(with_crc(body[:-4]))


# --- model files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def members():
    with zipfile.ZipFile(registry.default_model()) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_model(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def edit_manifest(members, **changes):
    manifest = json.loads(members["manifest.json"])
    manifest.update(changes)
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def edit_arrays(members, **changes):
    with np.load(io.BytesIO(members[modelfile.ARRAYS])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    out = io.BytesIO()
    np.savez(out, **arrays)
    return {**members, modelfile.ARRAYS: out.getvalue()}


def h_s_ending_in_an_upsampling(members):
    """Layers whose sizes all fit the latents, but whose last layer is an upsampling one,
    from which the codec cannot take the means and the log-scales as two parts."""
    layers = json.loads(members["manifest.json"])["h_s"]
    layers = layers[:2] + [["up", 1, layers[-1][2], None]]
    members = edit_manifest(members, h_s=layers)
    with np.load(io.BytesIO(members[modelfile.ARRAYS])) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("h_s.3.")}
    cout = 4 * layers[-1][2]
    arrays.update({"h_s.2.kernel": np.zeros((1, 1, layers[1][2], cout), np.int64),
                   "h_s.2.bias": np.zeros(cout, np.int64), "h_s.2.shift": np.zeros(cout, np.int64)})
    out = io.BytesIO()
    np.savez(out, **arrays)
    return {**members, modelfile.ARRAYS: out.getvalue()}


def bad_freqs(f):
    f = f.copy()
    f[0, 1] += 1  # no longer sums to 2**16
    return f


def long_table(f):
    f = f.copy()
    f[0, 0] = f.shape[1] + 5
    return f


BROKEN = {
    "downsampling 0": lambda m: edit_manifest(m, downsampling=0),
    "latent channels 0": lambda m: edit_manifest(m, latent_channels=0),
    "h_s not a layer list": lambda m: edit_manifest(m, h_s=[["conv1", 3]]),
    "h_s of another width": lambda m: edit_manifest(m, hyper_channels=95),
    "h_s ending in an upsampling": h_s_ending_in_an_upsampling,
    "no scales": lambda m: edit_manifest(m, scales={"count": 64}),
    "table that does not sum": lambda m: edit_arrays(m, y_freqs=bad_freqs),
    "table lengths beyond the array": lambda m: edit_arrays(m, z_freqs=long_table),
    "gains of zero": lambda m: edit_arrays(m, gain_y=lambda g: g * 0),
    "float arrays": lambda m: edit_arrays(m, y_offsets=lambda o: o.astype(np.float64) + 0.5),
    "h_s weights out of range": lambda m: edit_arrays(
        m, **{"h_s.0.kernel": lambda k: k.astype(np.int64) * 10**6}),
    "decoder in the encoder's place": lambda m: {
        **m, **{modelfile.network_member("g_a", v): m[modelfile.network_member("g_s", v)]
                for v in modelfile.VARIANTS if modelfile.network_member("g_s", v) in m}},
    "network not a flatbuffer": lambda m: {
        **m, **{modelfile.network_member("g_s", v): b"TFL3" + bytes(100)
                for v in modelfile.VARIANTS if modelfile.network_member("g_s", v) in m}},
    "arrays member truncated": lambda m: {**m, modelfile.ARRAYS: m[modelfile.ARRAYS][:999]},
    "manifest not JSON": lambda m: {**m, "manifest.json": b"{\"format\": "},
}


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_every_broken_model_is_one_clear_line(members, tmp_path, robin, breakage):
    path = write_model(tmp_path / "broken.aem", BROKEN[breakage](members))
    with pytest.raises(AedgeError) as caught:
        codec = aedge.load(model=path)
        codec.decompress(codec.compress(robin[:40, :40]))
    assert "broken.aem" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("seed", range(6))
def test_damaged_model_bytes_are_one_clear_line(tmp_path, robin, seed):
    data = bytearray(registry.default_model().read_bytes())
    rng = np.random.default_rng(seed)
    for at in rng.integers(0, len(data), 3):
        data[at] ^= 0xFF
    path = tmp_path / "damaged.aem"
    path.write_bytes(bytes(data))
    try:
        codec = aedge.load(model=path)
        codec.decompress(codec.compress(robin[:40, :40]))
    except AedgeError as e:
        assert "damaged.aem" in str(e)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_a_member_that_inflates_past_its_claim_is_refused_without_inflating_it(
        members, tmp_path, method):
    """arrays.npz claims 1 KB and holds 200 MB of zeros (about 30 KB as LZMA, 200 KB as
    deflate): refused on its CRC, having inflated a few of zipfile's smallest reads (4 KB
    of LZMA can hold 28 MB), not the 200 MB."""
    import tracemalloc

    path = tmp_path / "bomb.aem"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            if name != modelfile.ARRAYS:
                z.writestr(name, data, zipfile.ZIP_DEFLATED)
        z.writestr(modelfile.ARRAYS, bytes(200 << 20), method)
    data = bytearray(path.read_bytes())
    # The central directory's claim of the uncompressed size (offset 24 of its entry).
    entry = data.rindex(b"PK\x01\x02", 0, data.rindex(modelfile.ARRAYS.encode()))
    data[entry + 24:entry + 28] = (1000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(AedgeError) as caught:
            modelfile.read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "bomb.aem" in str(caught.value) and "\n" not in str(caught.value)
    assert peak < 100 << 20
