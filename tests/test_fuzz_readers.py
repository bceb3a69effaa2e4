"""Fuzzing the readers of untrusted input: whatever the bytes, only the library's own errors.

Each test feeds a reader mutated or generated input (Hypothesis, a fixed number of examples,
derandomized so a failure reproduces) and accepts exactly two outcomes: a result, or the
library's error for that input (``CorruptFileError`` for data files, ``DataNotFoundError`` for
folders without data, ``ConfigError`` for configs). Any other exception, a hang or a memory
blow-up is a bug. Bounded so the whole file runs in seconds.
"""
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_faces import faces_uint8, image_folder, png
from frbook.data import CorruptFileError, DataNotFoundError, RecFaces, pack_folder, read_bin, write_bin
from frbook.data.folder import ImageFolderFaces
from frbook.train.config import SCHEMA, ConfigError, load_config

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

IMAGES = [png(im) for im in faces_uint8(identities=2, per_identity=2, size=16)]


def _valid_bin(protocol: int) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        return write_bin(Path(d) / "v.bin", IMAGES, [True, False], protocol=protocol).read_bytes()


BINS = {p: _valid_bin(p) for p in (0, 2, 4, 5)}


def _mutate(data: bytes, edits, cut) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out[:cut % (len(out) + 1)] if cut is not None else out)


def _read_bin(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.bin"
        path.write_bytes(data)
        try:
            images, issame = read_bin(path)
        except CorruptFileError as error:
            assert str(path) in str(error) and len(str(error)) < 1000
            return
        assert len(images) == 2 * len(issame) > 0 and all(isinstance(im, bytes) for im in images)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)


@FUZZ
@given(protocol=st.sampled_from(sorted(BINS)), edits=EDITS, cut=st.none() | st.integers(0, 10**6))
def test_fuzz_bin_mutations(protocol, edits, cut):
    _read_bin(_mutate(BINS[protocol], edits, cut))


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**70) | st.binary(max_size=20) | st.text(max_size=20)
    | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20)


@FUZZ
@given(obj=_VALUES, protocol=st.integers(0, 5))
def test_fuzz_bin_structures(obj, protocol):
    _read_bin(pickle.dumps(obj, protocol=protocol))


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_bin_random_bytes(data):
    _read_bin(data)


# -- RecordIO ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzrec")
    image_folder(root / "faces", identities=3, per_identity=2, size=16)
    pack_folder(root / "faces", root / "rec" / "train.rec")
    return {name: (root / "rec" / name).read_bytes() for name in ("train.rec", "train.idx", "property")}


def _read_rec(files: dict):
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
        try:
            faces = RecFaces(d)
            faces.labels
            for i in range(len(faces)):
                faces[i]
        except CorruptFileError as error:
            assert d in str(error) and len(str(error)) < 1000


@FUZZ
@given(which=st.sampled_from(["train.rec", "train.idx", "property"]), edits=EDITS,
       cut=st.none() | st.integers(0, 10**6))
def test_fuzz_rec_mutations(packed, which, edits, cut):
    _read_rec({**packed, which: _mutate(packed[which], edits, cut)})


_IDX_LINE = st.tuples(st.integers(-5, 40) | st.integers(), st.integers(-5, 3000) | st.integers()).map(
    lambda kv: f"{kv[0]}\t{kv[1]}")


@FUZZ
@given(lines=st.lists(_IDX_LINE | st.text(max_size=12), max_size=12),
       prop=st.text(max_size=20) | st.sampled_from(["3,16,16", "0,16,16", "1000000000000,16,16", "3,0,16"]))
def test_fuzz_idx_and_property_text(packed, lines, prop):
    _read_rec({**packed, "train.idx": "\n".join(lines).encode("utf-8", "surrogatepass"),
               "property": prop.encode("utf-8", "surrogatepass")})


# -- image folders -------------------------------------------------------------------------------
KINDS = ["png", "garbage", "empty", "nested_png", "fifo", "link_own_folder", "link_root", "link_dot",
         "link_devzero", "dangling"]


@FUZZ
@given(entries=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(KINDS)), max_size=16),
       root_links=st.booleans())
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
def test_fuzz_image_folders(entries, root_links):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "faces"
        root.mkdir()
        for n, (identity, kind) in enumerate(entries):
            folder = root / f"id{identity}"
            folder.mkdir(exist_ok=True)
            path = folder / f"{n}.png"
            if kind == "png":
                path.write_bytes(IMAGES[n % len(IMAGES)])
            elif kind == "garbage":
                path.write_bytes(b"\x89PNG not really")
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "nested_png":
                (folder / "sub").mkdir(exist_ok=True)
                (folder / "sub" / f"{n}.png").write_bytes(IMAGES[0])
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "link_own_folder":
                os.symlink(folder, folder / f"loop{n}")
            elif kind == "link_root":
                os.symlink(root, folder / f"up{n}")
            elif kind == "link_dot":
                os.symlink(".", folder / f"dot{n}")
            elif kind == "link_devzero":
                os.symlink("/dev/zero", path)
            else:
                os.symlink(folder / "nowhere.png", path)
        if root_links:
            os.symlink(root, root / "self")
            os.symlink(".", root / "dot")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                faces = ImageFolderFaces(root)
            except DataNotFoundError:
                return
        regular = sum(kind in ("png", "garbage", "empty", "nested_png") for _, kind in entries)
        assert len(faces) == regular  # nothing listed twice, nothing that is not a file
        for i in range(len(faces)):
            try:
                faces[i]
            except CorruptFileError as error:
                assert str(faces.files[i]) in str(error)


# -- configs -------------------------------------------------------------------------------------
_SCALARS = (st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=12) | st.sampled_from(["1e999", ".nan", "cuda:99", "../..", "", "auto"]))
_CONFIG_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.text(max_size=16), inner, max_size=3), max_leaves=8)
_KEYS = [(section, key) for section, keys in SCHEMA.items() for key in keys]


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(_KEYS), _CONFIG_VALUES), max_size=5),
       name=st.none() | st.text(max_size=10))
def test_fuzz_config_values(changes, name):
    raw = {"train": {"steps": 4}, "name": name}
    for (section, key), value in changes:
        raw.setdefault(section, {})[key] = value
    try:
        load_config(raw=raw)
    except ConfigError as error:
        assert len(str(error)) < 1500


@FUZZ
@given(text=st.text(max_size=300) | st.sampled_from([
    "a: &a [1, 2]\nb: *a\n", "optim: {lr: .nan}\n", "[" * 200 + "]" * 200, "train: {steps: 1e999}\n",
    "name: ../../x\ntrain: {steps: 1}\n", "model: {params: {embedding_dim: 1000000000}}\n"]))
def test_fuzz_config_text(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError as error:
            assert len(str(error)) < 1500
