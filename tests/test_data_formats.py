"""Readers and writers of real face data formats (frbook.data), on tiny files written here.

The last section reads the real LFW and ORL from ../shared/data when present and skips, saying
why, when not.
"""
import pickle
import struct

import numpy as np
import pytest
import torch
from torchvision.datasets import ImageFolder

from fake_faces import PAIRS, PAIRS_TXT, PEOPLE, faces_uint8, image_folder, jpeg, lfw_folder, orl_folder, pgm, png
from frbook.data import (
    LFW, ORL, CorruptFileError, DataNotFoundError, ImageFolderFaces, RecFaces, VerificationBin,
    find_dataset, pack, pack_folder, pairs_to_bin, read_bin, read_property, write_bin,
)
from frbook.data import images as codec
from frbook.data import recordio, root as root_module


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


# ----------------------------------------------------------------------------------------------
# Finding data
# ----------------------------------------------------------------------------------------------
def _holds_marker(folder):
    return (folder / "marker").is_file()


def test_find_dataset_order_explicit_env_default(tmp_path, monkeypatch):
    env_root, default_root, explicit = tmp_path / "env", tmp_path / "default", tmp_path / "mine"
    for folder in (env_root / "toy", default_root / "toy", explicit):
        folder.mkdir(parents=True)
        (folder / "marker").touch()
    monkeypatch.setattr(root_module, "DEFAULT_ROOT", default_root)
    monkeypatch.delenv(root_module.ENV_VAR, raising=False)
    assert find_dataset("toy", _holds_marker) == default_root / "toy"
    monkeypatch.setenv(root_module.ENV_VAR, str(env_root))
    assert find_dataset("toy", _holds_marker) == env_root / "toy"
    assert find_dataset("toy", _holds_marker, root=explicit) == explicit  # the set's own folder
    assert find_dataset("toy", _holds_marker, root=env_root) == env_root / "toy"  # a data root


def test_frbook_data_none_switches_real_data_off(tmp_path, monkeypatch):
    default_root = tmp_path / "default"
    (default_root / "toy").mkdir(parents=True)
    (default_root / "toy" / "marker").touch()
    monkeypatch.setattr(root_module, "DEFAULT_ROOT", default_root)
    monkeypatch.setenv(root_module.ENV_VAR, "none")
    assert root_module.data_roots() == []
    with pytest.raises(DataNotFoundError, match="FRBOOK_DATA=none"):
        find_dataset("toy", _holds_marker)
    # An explicit path still works: the switch only stops the search.
    assert find_dataset("toy", _holds_marker, root=default_root) == default_root / "toy"
    monkeypatch.setenv(root_module.ENV_VAR, " None ")
    assert root_module.data_roots() == []


def test_missing_dataset_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(root_module, "DEFAULT_ROOT", tmp_path / "default")
    monkeypatch.setenv(root_module.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as info:
        find_dataset("toy", _holds_marker, how_to_get="Get it from the toy shop.")
    message = str(info.value)
    assert str(tmp_path / "env" / "toy") in message and str(tmp_path / "default" / "toy") in message
    assert "FRBOOK_DATA" in message and "toy shop" in message
    assert isinstance(info.value, FileNotFoundError)
    # An explicit path that does not hold the set fails; it never falls back to another copy.
    (tmp_path / "env" / "toy").mkdir(parents=True)
    (tmp_path / "env" / "toy" / "marker").touch()
    with pytest.raises(DataNotFoundError, match="nowhere"):
        find_dataset("toy", _holds_marker, root=tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------
# Decoding, preparing, encoding
# ----------------------------------------------------------------------------------------------
def test_png_decodes_exactly_and_grey_becomes_colour():
    image = faces_uint8(1, 1, 20)[0]
    assert torch.equal(codec.decode(png(image), channels=3), image)
    grey = faces_uint8(1, 1, 20, channels=1)[0]
    colour = codec.decode(png(grey), channels=3)
    assert colour.shape == (3, 20, 20) and all(torch.equal(c, grey[0]) for c in colour)


def test_pgm_as_orl_stores_it():
    grey = faces_uint8(1, 1, 16, channels=1)[0][:, :, :12].contiguous()  # 16 high, 12 wide
    assert torch.equal(codec.decode(pgm(grey), channels=1), grey)  # with a comment line
    assert torch.equal(codec.decode(pgm(grey, comment=b""), channels=3)[2], grey[0])
    with pytest.raises(CorruptFileError, match="face.pgm: cannot decode"):
        codec.decode(pgm(grey)[:-5], 1, where="face.pgm")


def test_encode_png_is_exact_and_jpeg_close():
    image = faces_uint8(1, 1, 32)[0]
    assert torch.equal(codec.decode(codec.encode(image, "png"), 3), image)
    again = codec.decode(codec.encode(image, "jpeg", quality=95), 3).float()
    assert (again - image.float()).abs().mean() < 4
    with pytest.raises(TypeError, match="uint8"):
        codec.encode(image.float())
    with pytest.raises(ValueError, match="format"):
        codec.encode(image, "gif")


def test_undecodable_bytes_name_the_image():
    with pytest.raises(CorruptFileError, match="a/b.jpg: cannot decode"):
        codec.decode(b"\xff\xd8 not really a jpeg", 3, where="a/b.jpg")
    with pytest.raises(CorruptFileError, match="empty"):
        codec.decode(b"", 3, where="x")


def test_prepare_crops_the_centre_then_resizes():
    image = torch.arange(36, dtype=torch.uint8).view(1, 6, 6)
    assert torch.equal(codec.prepare(image, crop=2), image[:, 2:4, 2:4])
    assert torch.equal(codec.prepare(image, crop=(4, 2)), image[:, 1:5, 2:4])
    out = codec.prepare(image, crop=4, size=(2, 3))
    assert out.shape == (1, 2, 3) and out.dtype == torch.uint8
    with pytest.raises(ValueError, match="larger than the image"):
        codec.prepare(image, crop=7)
    # The resize agrees with torchvision's antialiased bilinear resize (up to rounding).
    from torchvision.transforms.v2 import functional as TF

    face = faces_uint8(1, 1, 40)[0]
    ours, theirs = codec.resize(face, (16, 20)), TF.resize(face, [16, 20], antialias=True)
    assert ours.dtype == torch.uint8 and (ours.int() - theirs.int()).abs().max() <= 1
    grey = codec.to_grey(face.float() / 255)
    assert grey.shape == (1, 40, 40)
    assert (grey * 255 - codec.decode(png(face), channels=1).float()).abs().max() <= 1  # Pillow's luma
    with pytest.raises(ValueError, match="size must be"):
        codec.prepare(image, size=0)
    with pytest.raises(ValueError, match="channels"):
        codec.decode(png(faces_uint8(1, 1, 16)[0]), channels=2)


# ----------------------------------------------------------------------------------------------
# Image folders, LFW, ORL
# ----------------------------------------------------------------------------------------------
def test_image_folder_matches_torchvision_and_decodes(tmp_path):
    written = image_folder(tmp_path / "faces", identities=3, per_identity=2)
    faces = ImageFolderFaces(tmp_path / "faces", channels=3)
    reference = ImageFolder(str(tmp_path / "faces"))
    assert [str(f) for f in faces.files] == [p for p, _ in reference.samples]
    assert faces.labels.tolist() == [y for _, y in reference.samples] == [0, 0, 1, 1, 2, 2]
    assert faces.identities == ["id0", "id1", "id2"] and faces.num_classes == 3
    x = faces.images()
    assert x.shape == (6, 3, 24, 24) and x.dtype == torch.float32
    for k, path in enumerate(faces.files):  # PNG is lossless: every pixel comes back
        assert torch.equal((x[k] * 255).round().to(torch.uint8), written[path][2])
    image, label = faces[3]
    assert label == 1 and torch.equal(image, x[3])
    images, labels = next(iter(faces.loader(4, shuffle=False)))
    assert images.shape == (4, 3, 24, 24) and labels.tolist() == [0, 0, 1, 1]
    grey = ImageFolderFaces(tmp_path / "faces", channels=1, size=12)
    assert grey.images([0]).shape == (1, 1, 12, 12)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="no such folder"):
        ImageFolderFaces(tmp_path / "missing")
    (tmp_path / "empty" / "person").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="person"):  # torchvision's reason, kept
        ImageFolderFaces(tmp_path / "empty")
    written = image_folder(tmp_path / "faces", identities=1, per_identity=2)
    broken = next(iter(written))
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    faces = ImageFolderFaces(tmp_path / "faces")
    with pytest.raises(CorruptFileError, match=str(broken)):
        faces.images()


@pytest.mark.parametrize("nested", [True, False])
def test_lfw_format_pairs_in_file_order(tmp_path, nested):
    lfw = LFW(lfw_folder(tmp_path, nested=nested))
    assert lfw.identities == PEOPLE + ["Ed_Fox"] and len(lfw) == 15 and lfw.num_folds == 2
    i, j, same = lfw.pairs()
    a, b, issame = lfw.pair_paths()
    for k, (n1, k1, n2, k2, s) in enumerate(PAIRS):
        assert a[k].name == f"{n1}_{k1:04d}.jpg" and b[k].name == f"{n2}_{k2:04d}.jpg"
        assert lfw.files[i[k]] == a[k] and lfw.files[j[k]] == b[k]
        assert same[k] == issame[k] == s
    fold1 = lfw.pairs(1)
    np.testing.assert_array_equal(fold1.i, i[4:])
    assert lfw.fold_identities(0) == {"Ann_Lee", "Bo_Chan"}
    # Two folds: fold 0 tests, fold 1 validates, and only the person in no pair trains.
    assert lfw.train_identities(test_fold=0) == ["Ed_Fox"] and lfw.validation_fold(0) == 1
    train = lfw.train_set(0)
    assert len(train) == 3 and train.labels.tolist() == [0, 0, 0] and train.identities == ["Ed_Fox"]
    with pytest.raises(ValueError, match="0..1"):
        lfw.pairs(2)
    sized = LFW(tmp_path, channels=1, crop=24, size=16)
    assert sized.images(i[:2]).shape == (2, 1, 16, 16)


def test_lfw_bad_pairs_file_names_the_line(tmp_path):
    bad_name = PAIRS_TXT.replace("Bo_Chan\t1\t3", "Bo_Chan\t1\t9")
    lfw = LFW(lfw_folder(tmp_path / "a", pairs_txt=bad_name))
    with pytest.raises(CorruptFileError, match=r"pairs.txt:3: no image 9 of 'Bo_Chan' \(named Bo_Chan/Bo_Chan_0009"):
        lfw.pairs()
    wrong_shape = PAIRS_TXT.replace("Ann_Lee\t3\tBo_Chan\t2", "Ann_Lee\t3\t2")
    with pytest.raises(CorruptFileError, match=r"pairs.txt:4: expected a mismatched"):
        LFW(lfw_folder(tmp_path / "b", pairs_txt=wrong_shape)).pairs()
    short = "\n".join(PAIRS_TXT.splitlines()[:-1])
    with pytest.raises(CorruptFileError, match="8 lines, but the file has 7"):
        LFW(lfw_folder(tmp_path / "c", pairs_txt=short)).pairs()
    with pytest.raises(CorruptFileError, match="FOLDS PAIRS"):
        LFW(lfw_folder(tmp_path / "d", pairs_txt="ten\n")).pairs()


def test_orl_format_orders_by_number(tmp_path):
    orl = ORL(orl_folder(tmp_path / "orl", people=11, per_person=10))
    assert len(orl) == 110 and orl.num_classes == 11
    assert orl.identities[:3] == ["s1", "s2", "s3"] and orl.identities[-1] == "s11"
    assert orl.files[10].parent.name == "s2" and orl.files[9].name == "10.pgm"
    np.testing.assert_array_equal(orl.labels.numpy(), np.repeat(np.arange(11), 10))
    x = orl.images([0, 109])
    assert x.shape == (2, 1, 24, 20)
    expected = faces_uint8(11, 10, 24, channels=1)[109, :, :, 2:22]
    assert torch.equal((x[1] * 255).round().to(torch.uint8), expected)
    assert ORL(tmp_path).root == tmp_path / "orl"  # a data root works too


# ----------------------------------------------------------------------------------------------
# RecordIO
# ----------------------------------------------------------------------------------------------
MAGIC_BYTES = struct.pack("<I", recordio.MAGIC)


@pytest.mark.parametrize("payload", [
    b"", b"abc", b"abcd" * 5 + b"x",
    MAGIC_BYTES,                                        # magic at the start: an empty first part
    b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES,      # magic at aligned offsets 4 and 12
    b"abcd" + MAGIC_BYTES + MAGIC_BYTES + b"tail!",     # two magics in a row
    b"ab" + MAGIC_BYTES + b"cd",                        # unaligned: not cut
])
def test_recordio_round_trip_including_magic_in_payload(tmp_path, payload):
    rec, idx = tmp_path / "t.rec", tmp_path / "t.idx"
    with recordio.RecordWriter(rec, idx) as writer:
        writer.write(7, b"before")
        writer.write(3, payload)
        writer.write(5, b"after")
    reader = recordio.RecordReader(rec, idx)
    assert reader.keys == [7, 3, 5]
    assert reader.read(3) == payload and reader.read(7) == b"before" and reader.read(5) == b"after"
    data = rec.read_bytes()
    assert len(data) % 4 == 0  # every part is padded to 4 bytes
    # Framing, checked by hand: the parts of record 3 carry the flags 0 or 1, 2, ..., 3.
    offset = reader.index[3]
    words = np.frombuffer(payload[: len(payload) // 4 * 4], "<u4")
    n_cuts = int(np.sum(words == recordio.MAGIC))
    flags = []
    while True:
        magic, lrec = struct.unpack_from("<II", data, offset)
        assert magic == recordio.MAGIC
        flags.append(lrec >> 29)
        length = lrec & (2**29 - 1)
        offset += 8 + length + (-length % 4)
        if flags[-1] in (0, 3):
            break
    assert flags == ([0] if n_cuts == 0 else [1] + [2] * (n_cuts - 1) + [3])
    # Reading only a prefix gives the same first bytes.
    assert reader.read(3, limit=6) == payload[:6]


def test_ir_header_pack_unpack():
    header, body = recordio.unpack(recordio.pack(recordio.IRHeader(0, 17.0, 5, 0), b"jpeg"))
    assert header == (0, 17.0, 5, 0) and body == b"jpeg"
    packed = recordio.pack(recordio.IRHeader(0, (3.0, 8.5), 1, 2), b"x")
    assert packed[:24] == struct.pack("<IfQQ", 2, 0.0, 1, 2)  # flag = number of labels
    assert packed[24:32] == struct.pack("<ff", 3.0, 8.5)
    header, body = recordio.unpack(packed)
    assert header.flag == 2 and header.label == (3.0, 8.5) and body == b"x"
    with pytest.raises(CorruptFileError, match="too short"):
        recordio.unpack(b"short", "r.rec: record 4")
    with pytest.raises(CorruptFileError, match="announces 3 labels"):
        recordio.unpack(struct.pack("<IfQQ", 3, 0.0, 0, 0) + b"1234")


@pytest.fixture
def packed_set(tmp_path):
    written = image_folder(tmp_path / "faces", identities=3, per_identity=3, encoder=jpeg)
    info = pack_folder(tmp_path / "faces", tmp_path / "out" / "train.rec")
    return written, info, tmp_path / "out"


def test_pack_folder_round_trip_is_exact(packed_set):
    written, info, out = packed_set
    assert info["num_images"] == 9 and info["num_classes"] == 3
    assert read_property(out / "property") == (3, 24, 24)
    faces = RecFaces(out, channels=3)
    folder = ImageFolderFaces(out.parent / "faces", channels=3)
    assert len(faces) == 9 and faces.num_classes == 3
    for k in range(9):
        header, data = faces.record(k)
        original, label, _ = written[folder.files[k]]
        assert data == original  # the encoded bytes, unchanged
        assert header.label == label and faces.label(k) == label and header.id == k + 1
    assert faces.labels.tolist() == folder.labels.tolist()
    assert torch.equal(faces.images(), folder.images())
    image, label = faces[4]
    assert label == 1 and image.shape == (3, 24, 24)
    # InsightFace's layout: record 0 says images are keys 1..9, identities keys 10..12, and each
    # identity record holds its run of image keys.
    reader = recordio.RecordReader(out / "train.rec", out / "train.idx")
    header0, rest = recordio.unpack(reader.read(0))
    assert header0.flag == 2 and header0.label == (10.0, 13.0) and rest == b""
    assert list(faces.identity_keys) == [10, 11, 12]
    runs = [recordio.unpack(reader.read(key))[0].label for key in faces.identity_keys]
    assert runs == [(1.0, 4.0), (4.0, 7.0), (7.0, 10.0)]


def test_rec_without_header_record_reads_every_key(tmp_path):
    rec, idx = tmp_path / "plain.rec", tmp_path / "plain.idx"
    image = png(faces_uint8(1, 1, 16)[0])
    with recordio.RecordWriter(rec, idx) as writer:
        for key in (0, 1):
            writer.write(key, recordio.pack(recordio.IRHeader(0, float(key), key, 0), image))
    faces = RecFaces(rec)  # no property file: labels are not bounded above
    assert len(faces) == 2 and faces.labels.tolist() == [0, 1] and faces.property is None


def _corrupt_copy(out, tmp_path, name):
    target = tmp_path / name
    target.mkdir()
    for f in ("train.rec", "train.idx", "property"):
        (target / f).write_bytes((out / f).read_bytes())
    return target


def test_rec_corruptions_name_file_and_record(packed_set, tmp_path):
    _, _, out = packed_set
    index = recordio.read_index(out / "train.idx")

    truncated = _corrupt_copy(out, tmp_path, "truncated")
    data = (out / "train.rec").read_bytes()
    (truncated / "train.rec").write_bytes(data[: index[9] + 40])  # cut inside image record 9
    faces = RecFaces(truncated)
    faces.record(7)  # earlier records are intact
    with pytest.raises(CorruptFileError, match=r"train.rec: record 9 at offset \d+: truncated"):
        faces.record(8)

    shifted = _corrupt_copy(out, tmp_path, "shifted")
    lines = (shifted / "train.idx").read_text().splitlines()
    lines[5] = f"5\t{index[5] + 4}"
    (shifted / "train.idx").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptFileError, match=r"record 5 at offset \d+: bad magic"):
        RecFaces(shifted).record(4)

    undecodable = _corrupt_copy(out, tmp_path, "undecodable")
    with recordio.RecordWriter(undecodable / "train.rec", undecodable / "train.idx") as writer:
        reader = recordio.RecordReader(out / "train.rec", out / "train.idx")
        for key in reader.keys:
            payload = reader.read(key)
            if key == 2:
                payload = recordio.pack(recordio.IRHeader(0, 0.0, 2, 0), b"\xff\xd8garbage")
            writer.write(key, payload)
    faces = RecFaces(undecodable)
    with pytest.raises(CorruptFileError, match=r"record 2 at offset \d+: cannot decode"):
        faces[1]

    out_of_range = _corrupt_copy(out, tmp_path, "labels")
    (out_of_range / "property").write_text("2,24,24\n")  # but identity 2 exists
    faces = RecFaces(out_of_range)
    assert faces.label(0) == 0
    with pytest.raises(CorruptFileError, match=r"record 7 at offset \d+: label 2.0 is not a class id in 0..1"):
        faces.labels

    bad_property = _corrupt_copy(out, tmp_path, "property")
    (bad_property / "property").write_text("lots\n")
    with pytest.raises(CorruptFileError, match="num_classes,height,width"):
        RecFaces(bad_property)
    (bad_property / "train.idx").write_text("0\tnot-a-number\n")
    (bad_property / "property").write_text("3,24,24\n")
    with pytest.raises(CorruptFileError, match=r"train.idx:1: expected"):
        RecFaces(bad_property)


def test_pack_checks_its_input(tmp_path):
    written = image_folder(tmp_path / "faces", identities=2, per_identity=2)
    next(iter(written)).write_bytes(b"not an image")
    with pytest.raises(CorruptFileError, match="id0"):
        pack_folder(tmp_path / "faces", tmp_path / "train.rec")
    assert not (tmp_path / "train.rec").exists()  # nothing half-written left behind
    with pytest.raises(ValueError, match=".rec"):
        pack_folder(tmp_path / "faces", tmp_path / "train.bin")


def test_pack_resized_and_grey_reencodes(tmp_path):
    image_folder(tmp_path / "faces", identities=2, per_identity=2, size=24)
    info = pack(ImageFolderFaces(tmp_path / "faces", channels=1, crop=20, size=16), tmp_path / "t.rec")
    assert (info["height"], info["width"]) == (16, 16)
    faces = RecFaces(tmp_path / "t.rec", channels=1)
    assert faces.images().shape == (4, 1, 16, 16) and faces.labels.tolist() == [0, 0, 1, 1]


# ----------------------------------------------------------------------------------------------
# Verification .bin files
# ----------------------------------------------------------------------------------------------
def _images_and_issame():
    images = [png(im) for im in faces_uint8(2, 2, 16)]
    return images, [True, False]


def test_bin_round_trip(tmp_path):
    images, issame = _images_and_issame()
    path = write_bin(tmp_path / "toy.bin", images, issame)
    got, same = read_bin(path)
    assert got == images and same.tolist() == issame and same.dtype == bool
    data = VerificationBin(path, channels=3)
    assert len(data) == 4 and data.labels.tolist() == [-1] * 4
    i, j, s = data.pairs()
    assert i.tolist() == [0, 2] and j.tolist() == [1, 3] and s.tolist() == issame
    assert data.images().shape == (4, 3, 16, 16)


def test_bin_from_python3_protocol_2_and_python2_style_strings(tmp_path):
    images, issame = _images_and_issame()
    p2 = tmp_path / "p2.bin"
    p2.write_bytes(pickle.dumps((images, issame), protocol=2))  # bytes as _codecs.encode(...)
    assert b"_codecs" in p2.read_bytes()
    assert read_bin(p2)[0] == images
    # Python 2 wrote byte strings as (BIN|SHORT_BIN)STRING opcodes; encoding="bytes" keeps them
    # bytes. Build such a pickle by hand: PROTO 2, a tuple of a list of two strings and a list.
    body = b"".join(b"U" + bytes([len(s)]) + s for s in (b"ab", b"cd"))
    py2 = b"\x80\x02(]q\x00(" + body + b"e]q\x01\x88a" + b"t."
    p = tmp_path / "py2.bin"
    p.write_bytes(py2)
    got, same = read_bin(p)
    assert got == [b"ab", b"cd"] and same.tolist() == [True]


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # loading would create a file


def test_bin_refuses_code_and_wrong_shapes(tmp_path):
    evil = tmp_path / "evil.bin"
    created = tmp_path / "pwned"
    evil.write_bytes(pickle.dumps(([_Evil(str(created))], [True])))
    with pytest.raises(CorruptFileError, match=r"refused: it names (builtins|io)\.open"):
        read_bin(evil)
    assert not created.exists()
    numpy_labels = tmp_path / "numpy.bin"
    numpy_labels.write_bytes(pickle.dumps(([b"a", b"b"], np.array([True]))))
    with pytest.raises(CorruptFileError, match="refused: it names numpy"):
        read_bin(numpy_labels)
    sneaky = tmp_path / "sneaky.bin"  # _codecs.encode with another codec is refused too
    sneaky.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13\x86R.")
    with pytest.raises(CorruptFileError, match="refused"):
        read_bin(sneaky)
    cases = {
        "odd.bin": (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        "text.bin": ((["a", "b"], [True]), "image 0 is a str"),
        "flag.bin": (([b"a", b"b"], ["yes"]), r"issame\[0\]"),
        "single.bin": (([b"a"],), "pair"),
    }
    for name, (obj, message) in cases.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj))
        with pytest.raises(CorruptFileError, match=message):
            read_bin(tmp_path / name)
    truncated = tmp_path / "cut.bin"
    truncated.write_bytes(pickle.dumps(_images_and_issame())[:50])
    with pytest.raises(CorruptFileError, match="cut.bin: not a readable"):
        read_bin(truncated)
    (tmp_path / "bad_image.bin").write_bytes(pickle.dumps(([b"xx", b"yy"], [True])))
    with pytest.raises(CorruptFileError, match=r"bad_image.bin: image 1 \(pair 0\): cannot decode"):
        VerificationBin(tmp_path / "bad_image.bin")[1]
    with pytest.raises(ValueError, match="two per pair"):
        write_bin(tmp_path / "w.bin", [b"a"], [True])


def test_lfw_pairs_to_bin_keeps_bytes_and_order(tmp_path):
    lfw = LFW(lfw_folder(tmp_path / "lfw"))
    out = pairs_to_bin(lfw, lfw.pairs(), tmp_path / "lfw.bin")
    images, issame = read_bin(out)
    a, b, same = lfw.pair_paths()
    assert images[0::2] == [p.read_bytes() for p in a] and images[1::2] == [p.read_bytes() for p in b]
    assert issame.tolist() == same.tolist()
    cropped = LFW(tmp_path / "lfw", channels=3, crop=24, size=16)
    out = pairs_to_bin(cropped, cropped.pairs(0), tmp_path / "fold0.bin", format="png")
    data = VerificationBin(out, channels=3)
    assert len(data.issame) == 4 and data.images().shape == (8, 3, 16, 16)
    np.testing.assert_array_equal(data.images()[0], cropped.images([cropped.pairs(0).i[0]])[0])


# ----------------------------------------------------------------------------------------------
# The real data sets, when this machine has them
# ----------------------------------------------------------------------------------------------
def _real(reader, **kwargs):
    try:
        return reader(**kwargs)
    except DataNotFoundError as exc:
        pytest.skip(f"real data not available: {' '.join(str(exc).split())}")


def test_real_lfw_protocol():
    lfw = _real(LFW, channels=3)
    assert len(lfw) == 13233 and lfw.num_classes == 5749
    assert lfw.num_folds == 10
    assert len(lfw.pairs().i) == 6000
    folds = [lfw.pairs(k) for k in range(10)]
    assert all(len(f.i) == 600 and f.issame.sum() == 300 for f in folds)
    assert all(f.issame[:300].all() and not f.issame[300:].any() for f in folds)
    people = [lfw.fold_identities(k) for k in range(10)]
    for a in range(10):
        for b in range(a + 1, 10):
            assert not people[a] & people[b], f"folds {a} and {b} share people"
    train = set(lfw.train_identities(3))  # outside the test fold 3 and the validation fold 4
    assert lfw.validation_fold(3) == 4 and lfw.validation_fold(9) == 0
    assert not train & (people[3] | people[4]) and len(train) + len(people[3]) + len(people[4]) == 5749
    i, j, same = folds[0]
    labels = lfw.labels
    assert (labels[i] == labels[j]).numpy().tolist() == same.tolist()
    x = lfw.images(i[:2])  # a few decodes only
    assert x.shape == (2, 3, 250, 250) and 0 <= x.min() and x.max() <= 1 and x.std() > 0.05
    small = LFW(lfw.root, channels=1, crop=128, size=64)
    assert small.images(j[:2]).shape == (2, 1, 64, 64)


def test_real_orl():
    orl = _real(ORL)
    assert len(orl) == 400 and orl.num_classes == 40
    np.testing.assert_array_equal(orl.labels.numpy(), np.repeat(np.arange(40), 10))
    assert orl.files[10].parent.name == "s2"
    x = orl.images([0, 399])
    assert x.shape == (2, 1, 112, 92) and x.std() > 0.05
