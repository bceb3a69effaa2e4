"""Issue 20: every attack of the hardening report, reproduced, with the clear error it now gets.

One test (or more) per numbered item of the issue, named after it: the attack is built here
(crafted pickles, alias bombs, corrupt RecordIO, hostile folders, bad configs, a full disk), and
each test asserts the library's own error type, the file, record or key named, a short message,
no traceback from the CLI (exit 2), nothing left behind, and, where code could run, a canary
file that must not appear.
"""
import errno
import io
import json
import os
import pickle
import struct
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from fake_faces import image_folder
from frbook import losses
from frbook.__main__ import main
from frbook.data import CorruptFileError, RecFaces, pack_folder, read_bin, write_bin
from frbook.data import recordio
from frbook.data.folder import FileFaces, ImageFolderFaces, read_image_file
from frbook.safe_io import read_jsonl, read_yaml, remove_stale_temporaries, safe_name, shorten
from frbook.train.config import ConfigError, load_config
from frbook.train.trainer import train

SHORT = 600  # no error message here may be longer: values in messages are truncated


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``python -m frbook ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


class _Canary:
    """Unpickling this creates the file ``path``: proof that a loader ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# -- 1. search state files -----------------------------------------------------------------------
def test_item1_search_state_with_a_pickle_payload_runs_nothing(tmp_path):
    from test_search import run_tiny

    canary = tmp_path / "pwned"
    state = tmp_path / "state.pt"
    torch.save({"settings": _Canary(canary)}, state)
    with pytest.raises(ValueError, match=r"state\.pt: not a readable search state") as error:
        run_tiny(epochs=2, state_path=state)
    assert not canary.exists()
    assert len(str(error.value)) < SHORT


def test_item1_a_real_search_state_still_resumes(tmp_path):
    from test_search import run_tiny

    state = tmp_path / "state.pt"
    run_tiny(epochs=2, state_path=state, stop_after=1)
    torch.load(state, weights_only=True)  # plain data only
    stale = tmp_path / f".state.pt.{_dead_pid()}.tmp"  # item 5: a kill -9 during a save
    stale.write_bytes(b"\0" * 100)
    resumed, _ = run_tiny(epochs=2, state_path=state)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert not stale.exists()


# -- 2. verification .bin ------------------------------------------------------------------------
def _p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def _memo_bomb(copies: int, size: int = 1 << 20) -> bytes:
    """([ba, ba, ... copies times], [True] * (copies / 2)) with ONE 1 MB bytearray, memo-referenced."""
    images = b"](" + b"\x96" + struct.pack("<Q", size) + b"\0" * size + b"\x94"  # EMPTY_LIST MARK BYTEARRAY8 MEMOIZE
    images += b"h\x00" * (copies - 1) + b"e"  # BINGET 0 ... APPENDS
    flags = b"](" + b"\x88" * (copies // 2) + b"e"  # NEWTRUE ...
    return _p4(images + flags + b"\x86")  # TUPLE2


def test_item2_memo_bomb_bin_costs_one_copy(tmp_path):
    path = tmp_path / "bomb.bin"
    path.write_bytes(_memo_bomb(4000))  # asked for 4 GB before the fix
    tracemalloc.start()
    images, issame = read_bin(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(images) == 4000 and len(issame) == 2000
    assert len({id(im) for im in images}) == 1  # one object, referenced 4000 times
    assert peak < 40 << 20, f"read_bin of a memo bomb used {peak / 2**20:.0f} MiB"


def test_item2_codecs_encode_bomb_is_refused(tmp_path):
    # Python 3's protocol 2 spelling of bytes, _codecs.encode(s, "latin1"), called 4000 times
    # on one memoised 1 MB string: 4 GB of new bytes from a 1 MB file.
    text = "x" * (1 << 20)
    body = b"c_codecs\nencode\nq\x00" + b"X" + struct.pack("<I", len(text)) + text.encode() + b"q\x01"
    body += b"X\x06\x00\x00\x00latin1q\x02"
    call = b"h\x00h\x01h\x02\x86R"  # BINGET encode, text, 'latin1'; TUPLE2; REDUCE
    images = b"](" + call * 4000 + b"e"
    flags = b"](" + b"\x88" * 2000 + b"e"
    path = tmp_path / "codecs.bin"
    path.write_bytes(b"\x80\x02" + body + b"000" + images + flags + b"\x86.")  # POP x3
    with pytest.raises(CorruptFileError, match=r"codecs\.bin: refused: .*more bytes than the file holds"):
        read_bin(path)


def test_item2_build_on_the_codecs_stand_in_is_refused_and_changes_nothing(tmp_path):
    from frbook.data import verification_bin

    before = verification_bin._Latin1Bytes.__call__.__defaults__
    # GLOBAL _codecs.encode, EMPTY_LIST, BUILD (would set attributes on the stand-in), POP, ([], [])
    path = tmp_path / "build.bin"
    path.write_bytes(b"\x80\x02c_codecs\nencode\n]b0]]\x86.")
    with pytest.raises(CorruptFileError, match=r"build\.bin: refused: it uses the pickle opcode BUILD"):
        read_bin(path)
    assert verification_bin._Latin1Bytes.__call__.__defaults__ == before
    one, two = (verification_bin.RestrictedUnpickler(io.BytesIO(b"")).find_class("_codecs", "encode")
                for _ in range(2))
    assert one is not two  # a fresh stand-in per file: nothing one file does to it lasts
    good = tmp_path / "good.bin"
    write_bin(good, [b"ab", b"cd"], [True], protocol=2)
    assert read_bin(good)[0] == [b"ab", b"cd"]


def test_item2_deep_issame_and_huge_issame_strings_give_short_errors(tmp_path):
    deep = tmp_path / "deep.bin"
    depth = 100_000
    deep.write_bytes(_p4(b"](C\x01aC\x01be" + b"](" + b"]" * depth + b"a" * (depth - 1) + b"e" + b"\x86"))
    with pytest.raises(CorruptFileError, match=r"deep\.bin: issame\[0\] is \[\[\[") as error:
        read_bin(deep)
    assert len(str(error.value)) < SHORT
    huge = tmp_path / "huge.bin"
    huge.write_bytes(pickle.dumps(([b"a", b"b"], ["x" * 5_000_000]), protocol=4))
    with pytest.raises(CorruptFileError, match=r"huge\.bin: refused: it uses the pickle opcode|huge\.bin: issame\[0\]") as error:
        read_bin(huge)
    assert len(str(error.value)) < SHORT


def test_item2_empty_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(CorruptFileError, match=r"empty\.bin: empty file"):
        read_bin(empty)
    no_pairs = tmp_path / "nopairs.bin"
    no_pairs.write_bytes(pickle.dumps(([], []), protocol=4))
    with pytest.raises(CorruptFileError, match=r"nopairs\.bin: holds no pairs"):
        read_bin(no_pairs)


def test_item2_canary_pickle_runs_nothing(tmp_path):
    canary = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([_Canary(canary), b"x"], [True]), protocol=4))
    with pytest.raises(CorruptFileError, match=r"evil\.bin: refused: it names pathlib"):
        read_bin(path)
    assert not canary.exists()


# -- 3. YAML -------------------------------------------------------------------------------------
LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                   + [f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)},"
                      f" *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]" for k in range(8)]
                   + ["train: {steps: *i}"])


def test_item3_billion_laughs_config_is_refused_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 700
    with pytest.raises(ConfigError, match=r"laughs\.yaml: not valid YAML: .*alias") as error:
        load_config(path)
    assert len(str(error.value)) < SHORT
    with pytest.raises(ValueError, match="alias"):
        read_yaml(LAUGHS, where="text")


def test_item3_deep_yaml_and_long_values_give_short_errors(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("optim: {lr: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: not valid YAML: .*nested deeper") as error:
        load_config(deep)
    assert len(str(error.value)) < SHORT
    long = tmp_path / "long.yaml"
    long.write_text("optim: {lr: [" + ", ".join(["1"] * 5_000) + "]}\n")
    with pytest.raises(ConfigError, match=r"optim\.lr must be a float") as error:
        load_config(long)
    assert len(str(error.value)) < SHORT
    with pytest.raises(ConfigError, match="unknown loss 'xxx") as error:
        load_config(raw={"loss": {"name": "x" * 1_000_000}, "train": {"steps": 1}})
    assert len(str(error.value)) < SHORT


def test_item3_safe_name_refuses_paths():
    for bad in ["../../X", "a/b", "..", ".", "", "a\\b", "x\x00y", 5, None]:
        with pytest.raises(ValueError, match="name"):
            safe_name(bad, "label")
    assert safe_name("arcface-seed0", "label") == "arcface-seed0"
    with pytest.raises(ConfigError, match=r"name '\.\./\.\./\.\.' cannot name a file"):
        load_config(raw={"name": "../../.."})
    assert len(shorten("x" * 10**6)) <= 80 and len(shorten([[[[[1]]]]] * 10**5)) <= 80
    assert "bits" in shorten(10 ** 10000)


# -- 4. RecordIO ---------------------------------------------------------------------------------
@pytest.fixture
def packed(tmp_path):
    image_folder(tmp_path / "faces", identities=3, per_identity=2)
    out = tmp_path / "rec"
    pack_folder(tmp_path / "faces", out / "train.rec")
    return out


def _rewrite(src: Path, dst: Path, replace: dict) -> Path:
    """A copy of the packed set ``src`` whose records ``replace`` says are new payloads."""
    dst.mkdir()
    (dst / "property").write_bytes((src / "property").read_bytes())
    reader = recordio.RecordReader(src / "train.rec", src / "train.idx")
    with recordio.RecordWriter(dst / "train.rec", dst / "train.idx") as writer:
        for key in reader.keys:
            writer.write(key, replace.get(key, reader.read(key)))
    return dst


def test_item4_record0_labels_are_bounded(packed, tmp_path):
    for name, labels in [("huge", (1e9, 2e9)), ("inf", (float("inf"), 1.0)), ("nan", (1.0, float("nan")))]:
        bad = _rewrite(packed, tmp_path / name, {0: recordio.pack(recordio.IRHeader(2, labels, 0, 0))})
        with pytest.raises(CorruptFileError, match=rf"{name}/train\.rec: record 0 is a header with labels"):
            RecFaces(bad)


def test_item4_inf_and_nan_labels_name_the_record(packed, tmp_path):
    reader = recordio.RecordReader(packed / "train.rec", packed / "train.idx")
    _, image = recordio.unpack(reader.read(1))
    for name, label in [("inf", float("inf")), ("nan", float("nan"))]:
        bad = _rewrite(packed, tmp_path / name, {1: recordio.pack(recordio.IRHeader(0, label, 1, 0), image)})
        faces = RecFaces(bad)
        with pytest.raises(CorruptFileError, match=rf"{name}/train\.rec: record 1 at offset \d+: label (inf|nan)"):
            faces.labels


def test_item4_bad_idx_files_name_file_and_line(packed, tmp_path):
    idx = (packed / "train.idx").read_bytes()
    cases = {
        "utf8": (idx.replace(b"\n", b"\n\xff\xfe", 1), r"train\.idx:2: not UTF-8"),
        "offset": (idx + b"99\t" + b"9" * 30 + b"\n", r"train\.idx:\d+: expected 'key<TAB>offset'"),
        "negative": (idx + b"99\t-5\n", r"train\.idx:\d+: offset -5"),
        "duplicate": (idx + b"1\t0\n", r"train\.idx:\d+: key 1 appears twice \(first on line 2\)"),
    }
    for name, (content, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        for f in ("train.rec", "property"):
            (folder / f).write_bytes((packed / f).read_bytes())
        (folder / "train.idx").write_bytes(content)
        with pytest.raises(CorruptFileError, match=message):
            RecFaces(folder)


def test_item4_offset_at_another_record_is_caught_by_the_header_id(packed, tmp_path):
    index = recordio.read_index(packed / "train.idx")
    folder = tmp_path / "swapped"
    folder.mkdir()
    for f in ("train.rec", "property"):
        (folder / f).write_bytes((packed / f).read_bytes())
    index[2] = index[3]  # key 2 points at record 3
    (folder / "train.idx").write_text("".join(f"{k}\t{v}\n" for k, v in index.items()))
    faces = RecFaces(folder)
    with pytest.raises(CorruptFileError, match=r"record 2 at offset \d+: the record's header says it is record 3"):
        faces.label(1)
    with pytest.raises(CorruptFileError, match="record 3"):
        faces[1]


def test_item4_absurd_property_is_refused(packed, tmp_path):
    for name, text in [("classes", "1000000000000,112,112"), ("side", "3,100000,112"), ("binary", "\xff\xfe")]:
        folder = tmp_path / name
        folder.mkdir()
        for f in ("train.rec", "train.idx"):
            (folder / f).write_bytes((packed / f).read_bytes())
        (folder / "property").write_text(text, encoding="latin1")
        with pytest.raises(CorruptFileError, match=rf"{name}/property: "):
            RecFaces(folder)


def test_item4_two_rec_files_in_one_folder_keep_their_own_property(tmp_path):
    image_folder(tmp_path / "a", identities=3, per_identity=2)
    image_folder(tmp_path / "b", identities=2, per_identity=2, size=16)
    out = tmp_path / "out"
    first = pack_folder(tmp_path / "a", out / "train.rec")
    second = pack_folder(tmp_path / "b", out / "val.rec")
    assert first["property"] != second["property"]
    assert RecFaces(out / "train.rec").num_classes == 3 and RecFaces(out / "val.rec").num_classes == 2
    assert len(RecFaces(out / "train.rec").labels) == 6  # still readable: nothing overwritten


# -- 5. full disk, kill -9 -----------------------------------------------------------------------
def tiny(**sections):
    raw = {
        "data": {"identities": 6, "val_identities": 4, "images_per_identity": 3, "size": 16},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8, "width": 4}},
        "loss": {"name": "cosface", "params": {"s": 16, "m": 0.2}},
        "train": {"steps": 4, "batch_size": 6, "log_every": 1, "device": "cpu"},
        "eval": {"every": 0, "targets": ["synth"], "batch_size": 64},
        "checkpoint": {"every": 0, "keep_best": "synth/accuracy"},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return load_config(raw=raw)


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_item5_torn_metrics_line_is_dropped_on_resume(tmp_path):
    config = tiny()
    train(config, out_dir=tmp_path, progress=False, stop_at=2)
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 3, "loss": 1.2, "lr": 0.')  # the disk filled up mid-line
    stale = tmp_path / f".last.pt.{_dead_pid()}.tmp"  # a kill -9 during a save
    stale.write_bytes(b"\0" * 1000)
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: dropped its last line"):
        summary = train(config, out_dir=tmp_path, progress=False, resume="auto")
    assert summary["finished"]
    steps = [r["step"] for r in read_jsonl(metrics) if "loss" in r]
    assert steps == [1, 2, 3, 4]
    assert not stale.exists()


def test_item5_read_jsonl_refuses_damage_before_the_end(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl:2: not a JSON line"):
        read_jsonl(log)
    log.write_text('{"a": 1}\n{"a": 2}')  # whole but for its newline: kept
    assert read_jsonl(log) == [{"a": 1}, {"a": 2}]


def test_item5_stale_temporaries_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".x.pt.{os.getpid()}.tmp"
    dead = tmp_path / f".x.pt.{_dead_pid()}.tmp"
    other = tmp_path / "notes.tmp"
    for f in (mine, dead, other):
        f.write_text("x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert mine.exists() and other.exists()


def test_item5_full_disk_during_a_checkpoint_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from frbook import checkpoint

    config_path = tmp_path / "run.yaml"
    config = tiny(checkpoint={"keep_best": "none"})
    config_path.write_text(json.dumps({k: v for k, v in config.items() if k != "name"}))
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--config", str(config_path), "--out", str(out), "--quiet", "--stop-at", "2")
    assert code == 0, err
    before = (out / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(record, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    code, _, err = cli(capsys, "train", "--config", str(config_path), "--out", str(out), "--quiet", "--resume", "auto")
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert code == 2 and "Traceback" not in err
    assert "cannot write" in err and "No space left on device" in err and "last.pt is intact" in err
    assert (out / "last.pt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


# -- 6. image folders ----------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
def test_item6_hostile_image_folder(tmp_path):
    root = tmp_path / "faces"
    image_folder(root, identities=2, per_identity=3)
    os.symlink(root / "id0", root / "id0" / "loop")  # a link to its own folder
    os.symlink(root, root / "id1" / "up")  # a link to the root
    os.symlink(".", root / "id1" / "dot")
    os.symlink(root, root / "self")  # an identity folder that is the root
    os.mkfifo(root / "id0" / "fifo.png")
    os.symlink("/dev/zero", root / "id1" / "zero.png")
    with pytest.warns(UserWarning, match="skipped") as record:
        faces = ImageFolderFaces(root)
    assert len(faces) == 6 and faces.identities == ["id0", "id1"]
    note = str(record[0].message)
    assert "fifo.png (not a regular file)" in note and "not followed" in note
    for bad in (root / "id0" / "fifo.png", root / "id1" / "zero.png"):
        with pytest.raises(CorruptFileError, match="not a regular file"):
            read_image_file(bad)  # returns at once: never blocks on the FIFO, never reads /dev/zero
    with pytest.raises(CorruptFileError, match=r"fifo\.png: not a regular file"):
        FileFaces([root / "id0" / "fifo.png"], [0], ["x"])[0]


def test_item6_file_size_is_bounded(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 1000)
    with pytest.raises(CorruptFileError, match=r"big\.png: 1,000 bytes is larger than an image may be"):
        read_image_file(big, limit=999)
    assert read_image_file(big, limit=1000) == b"\0" * 1000


# -- 7. configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key, value, message", [
    ("optim.lr", float("nan"), r"optim\.lr must be a finite number"),
    ("optim.lr", "1e999", r"optim\.lr must be a finite number"),
    ("optim.lr", float("inf"), r"optim\.lr must be a finite number"),
    ("optim.lr", 1e6, r"optim\.lr must be a number in \(0, 100\]"),
    ("optim.momentum", float("nan"), r"optim\.momentum must be a finite number"),
    ("optim.momentum", 1.0, r"optim\.momentum must be a number in \[0, 1\)"),
    ("optim.weight_decay", float("inf"), r"optim\.weight_decay must be a finite number"),
    ("schedule.gamma", float("nan"), r"schedule\.gamma must be a finite number"),
    ("data.identities", 10**12, r"data\.identities must be a number in \[1, 1e\+07\]"),
    ("data.size", 100_000, r"data\.size must be a number in \[1, 4096\]"),
    ("model.params", {"embedding_dim": 10**9, "width": 4}, r"model\.params\.embedding_dim must be a number in"),
    ("head.sub_centers", 10**9, r"head\.sub_centers must be a number in \[1, 100\]"),
    ("loss.params", {"s": 16, "m": float("nan")}, r"loss\.params\.m must be a finite number"),
])
def test_item7_numbers_are_finite_and_sane(key, value, message):
    section, name = key.split(".")
    raw = {"data": {"identities": 6}, "model": {"name": "small_cnn", "params": {"width": 4}},
           "train": {"steps": 4}, "loss": {"name": "cosface"}}
    raw.setdefault(section, {})[name] = value
    with pytest.raises(ConfigError, match=message) as error:
        load_config(raw=raw)
    assert len(str(error.value)) < SHORT


def test_item7_synth_data_and_models_too_big_to_allocate():
    with pytest.raises(ConfigError, match="SynthFaces of"):
        load_config(raw={"data": {"identities": 1_000_000, "size": 1024}, "train": {"steps": 1}})
    with pytest.raises(ConfigError, match="would hold .* parameters"):
        load_config(raw={"model": {"name": "small_cnn", "params": {"width": 60000}}, "train": {"steps": 1}})


def test_item7_a_device_that_is_not_there(tmp_path):
    config = tiny(train={"device": "cuda:99"})
    with pytest.raises(ConfigError, match=r"train\.device 'cuda:99': this machine has"):
        train(config, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()


def test_item7_run_names_with_dot_dot_are_refused(tmp_path, capsys):
    config_path = tmp_path / "c.yaml"
    config_path.write_text("name: ../../escaped\ntrain: {steps: 1}\n")
    code, _, err = cli(capsys, "train", "--config", str(config_path), "--check")
    assert code == 2 and "cannot name a file" in err and "Traceback" not in err


# -- 8. outputs ----------------------------------------------------------------------------------
def test_item8_a_finished_run_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    train(tiny(), out_dir=out, progress=False)
    assert (out / "best.pt").exists()
    with pytest.raises(ConfigError, match=r"holds a run \(last\.pt, best\.pt, metrics\.jsonl, summary\.json\)"):
        train(tiny(loss={"name": "arcface", "params": {}}), out_dir=out, progress=False)
    other = tiny(loss={"name": "arcface", "params": {}}, checkpoint={"keep_best": "none"})
    train(other, out_dir=out, progress=False, force=True)
    assert not (out / "best.pt").exists()  # no ArcFace best.pt... and no old CosFace one either
    assert torch.load(out / "last.pt", weights_only=True)["extra"]["loss"] == "arcface"


def test_item8_bad_outputs_exit_2_and_leave_nothing(tmp_path, capsys):
    config_path = tmp_path / "c.yaml"
    config_path.write_text("train: {steps: 1, device: cpu}\ndata: {identities: 4, size: 16}\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        code, _, err = cli(capsys, "train", "--config", str(config_path), "--out", str(out), "--quiet")
        assert code == 2 and "--out" in err and "Traceback" not in err
    image_folder(tmp_path / "faces", identities=2, per_identity=2)
    (tmp_path / "packed.rec").mkdir()
    code, _, err = cli(capsys, "data", "pack", str(tmp_path / "faces"), str(tmp_path / "packed.rec"))
    assert code == 2 and "is a folder" in err
    assert not list(tmp_path.rglob("*.tmp"))


def test_item8_eval_json_onto_a_folder(tmp_path, capsys):
    from frbook.provenance import write_json_atomic

    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        write_json_atomic(folder, {"a": 1})
    code, _, err = cli(capsys, "eval", "--model", "pixels", "--model-param", "input_size=16",
                       "--target", "synth", "--folds", "2", "--json", str(folder))
    assert code == 2 and "results is a folder" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.tmp"))


def test_item8_preview_names_the_file_it_wrote(tmp_path, capsys):
    code, out, _ = cli(capsys, "preview", "--out", str(tmp_path / "grid"), "--identities", "2",
                       "--images", "2", "--size", "16")
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'grid.png'}"
    assert (tmp_path / "grid.png").is_file()


# -- 9. losses -----------------------------------------------------------------------------------
def test_item9_loss_inputs():
    loss = losses.get("arcface")
    with pytest.raises(ValueError, match="empty batch"):
        loss(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be integer class ids"):
        loss(torch.zeros(2, 5), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"known losses: .*arcface"):
        losses.get(5)
    amlfs = losses.get("amlfs")
    cos = torch.full((2, 5), float("nan"))
    with pytest.raises(ValueError, match="AM-LFS got non-finite cosines"):
        amlfs(cos, torch.tensor([0, 1]))
    from frbook.losses.amlfs import piecewise_linear

    value = piecewise_linear(torch.tensor([float("nan"), 0.5]), torch.ones(6), torch.zeros(6), -1.0, 1.0)
    assert value[0].isnan() and value[1] == 0.5  # a diverged search candidate: NaN, not an index error


def test_cli_reports_os_errors_without_traceback(tmp_path, capsys):
    code, _, err = cli(capsys, "preview", "--out", str(tmp_path / "missing" / "x.png"), "--size", "16",
                       "--identities", "1", "--images", "1")
    assert code == 2 and "Traceback" not in err and "No such file or directory" in err
    assert sys.exc_info() == (None, None, None)
