"""Your own faces, end to end: identity-disjoint splits, LFW-format pairs for any folder, eval of a
folder, relative crops and aspect-preserving resizes. Tiny SynthFaces folders made on the spot."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from fake_faces import faces_uint8, pgm, png
from frbook import models
from frbook.data import LFW, ImageFolderFaces, VerificationBin
from frbook.data.encoded import held_out_identities
from frbook.eval import evaluate
from frbook.eval.folder_pairs import person_disjoint_folds, write_pairs_txt

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def own_folder(root, identities=12, per_identity=4, size=20, junk=True):
    """root/<Person_k>/<photo_j>.png (names unlike LFW's), plus junk files beside the images."""
    images = faces_uint8(identities, per_identity, size, channels=1)
    for k, image in enumerate(images):
        person = root / f"Person_{k // per_identity:02d}"
        person.mkdir(parents=True, exist_ok=True)
        (person / f"photo_{'abcdefgh'[k % per_identity]}.png").write_bytes(png(image))
        if junk and k % per_identity == 0:
            (person / "Thumbs.db").write_bytes(b"not an image")
            (person / "notes.txt").write_text("taken in 2019")
    return root


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "frbook", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


# -- identity-disjoint splits --------------------------------------------------------------------
def test_split_identities_is_disjoint_seeded_and_complete(tmp_path):
    faces = ImageFolderFaces(own_folder(tmp_path / "f"))
    train, held = faces.split_identities(0.25, seed=3)
    again_train, again_held = faces.split_identities(3, seed=3)  # 0.25 of 12 identities = 3
    assert held.identities == again_held.identities and train.identities == again_train.identities
    assert held.num_classes == 3 and train.num_classes == 9
    assert set(held.identities).isdisjoint(train.identities)
    assert sorted(held.files + train.files) == sorted(faces.files)
    assert held.labels.max() == 2 and train.labels.max() == 8  # renumbered for training
    other = faces.split_identities(0.25, seed=4)[1]
    assert other.identities != held.identities  # the seed matters (12 choose 3 = 220 splits)


def test_held_out_identities_checks_its_share():
    assert held_out_identities(10, 0.01).size == 1  # at least one
    for bad in (0, -1, 10, 2.5, True, "3"):
        with pytest.raises(ValueError, match="hold out|fraction|count|whole"):
            held_out_identities(10, bad)


def test_generic_subset_of_a_rec_keeps_bytes_and_renumbers(tmp_path):
    from frbook.data import RecFaces, pack_folder

    folder = own_folder(tmp_path / "f", identities=6, per_identity=2, junk=False)
    pack_folder(folder, tmp_path / "p" / "train.rec")
    rec = RecFaces(tmp_path / "p")
    train, held = rec.split_identities(2, seed=0)
    assert len(train) + len(held) == len(rec) and held.num_classes == 2 and train.num_classes == 4
    assert held.labels.tolist() == [0, 0, 1, 1]
    k = held.items[0]
    assert held.raw(0) == rec.raw(k) and held.where(0) == rec.where(k)


# -- LFW-format pairs for any folder ---------------------------------------------------------
def test_person_disjoint_folds_round_trip_through_the_lfw_reader(tmp_path):
    folder = own_folder(tmp_path / "f", identities=12, per_identity=4)
    faces = ImageFolderFaces(folder)
    folds = person_disjoint_folds(faces, folds=3, seed=1)
    again = person_disjoint_folds(faces, folds=3, seed=1)
    assert all((a.i == b.i).all() and (a.j == b.j).all() for a, b in zip(folds, again))  # seeded
    labels = faces.labels.numpy()
    people = [set(labels[np.concatenate([f.i, f.j])]) for f in folds]
    assert all(p.isdisjoint(q) for a, p in enumerate(people) for q in people[a + 1:])
    for f in folds:
        n = len(f.i) // 2
        assert f.issame[:n].all() and not f.issame[n:].any()  # matched first, as in LFW
        assert (labels[f.i] == labels[f.j]).tolist() == f.issame.tolist()
        assert (f.i != f.j).all()
    write_pairs_txt(faces, folds, folder / "pairs.txt")
    lfw = LFW(folder)  # the folder, pairs.txt inside, read as an LFW-format benchmark
    assert lfw.files == faces.files  # junk skipped; images numbered in name order
    assert lfw.num_folds == 3
    for k, f in enumerate(folds):
        back = lfw.pairs(k)
        assert (back.i == f.i).all() and (back.j == f.j).all() and (back.issame == f.issame).all()


def test_person_disjoint_folds_errors(tmp_path):
    faces = ImageFolderFaces(own_folder(tmp_path / "f", identities=4, per_identity=2, junk=False))
    with pytest.raises(ValueError, match="too few"):
        person_disjoint_folds(faces, folds=3)
    with pytest.raises(ValueError, match="sparsest fold allows"):
        person_disjoint_folds(faces, folds=2, per_fold=99)


def test_lfw_reader_takes_pgm_and_named_numbers(tmp_path):
    image = faces_uint8(1, 1, 16, channels=1)[0]
    for name in ("Al_Bo", "Cy_Do"):
        for n in (1, 2):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / f"{name}_{n:04d}.pgm").write_bytes(pgm(image))
    (tmp_path / "pairs.txt").write_text("1 1\nAl_Bo 1 2\nAl_Bo 2 Cy_Do 1\n")
    lfw = LFW(tmp_path, channels=1)
    assert len(lfw) == 4 and lfw.pairs().issame.tolist() == [True, False]
    assert torch.equal(lfw.image_uint8(0), image)


def test_data_pairs_command_writes_pairs_txt_and_bin_and_eval_reads_them(tmp_path):
    folder = own_folder(tmp_path / "f", identities=10, per_identity=3)
    r = run("data", "pairs", str(folder), "--folds", "2", "--seed", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "2 person-disjoint folds" in r.stdout and (folder / "pairs.txt").is_file()
    head = (folder / "pairs.txt").read_text().splitlines()[0].split()
    r = run("data", "pairs", str(folder), "--folds", "2", "--seed", "5", "--out", str(tmp_path / "own.bin"),
            "--size", "16", "--quiet")
    assert r.returncode == 0, r.stderr
    pairs = VerificationBin(tmp_path / "own.bin").pairs()
    assert len(pairs.i) == 2 * 2 * int(head[1])
    r = run("eval", "--model", "pixels", "--model-param", "input_size=16", "--target", str(folder),
            "--folds", "2", "--far", "0.5")
    assert r.returncode == 0, r.stderr
    assert "pairs of pairs.txt" in r.stdout
    r = run("data", "pairs", str(folder), "--folds", "9")
    assert r.returncode == 2 and "too few" in r.stderr and "Traceback" not in r.stderr


def test_eval_of_an_image_folder_uses_the_held_out_identities(tmp_path):
    folder = own_folder(tmp_path / "f", identities=12, per_identity=4)
    model = models.get("pixels", input_size=16)
    report = evaluate(model, folder, device="cpu", test_identities=0.5, split_seed=2, n_folds=2, fars=())
    held = ImageFolderFaces(folder).split_identities(0.5, 2)[1]
    n_genuine = held.num_classes * 4 * 3 // 2  # every genuine pair
    assert report.n_genuine == n_genuine and report.n_impostor == n_genuine
    assert "6 of 12 identities held out (split seed 2)" in report.title
    counted = evaluate(model, folder, device="cpu", num_pairs=20, seed=1, n_folds=2, fars=())
    assert counted.n_genuine == 10 and counted.n_impostor == 10
    assert "12 identities, 48 images" in counted.title
    r = run("eval", "--model", "pixels", "--model-param", "input_size=16", "--target", str(folder),
            "--test-identities", "6", "--split-seed", "2", "--folds", "2", "--far", "0.5")
    assert r.returncode == 0, r.stderr
    assert "6 of 12 identities held out" in r.stdout
    r = run("eval", "--model", "pixels", "--target", str(folder), "--test-identities", "1.5")
    assert r.returncode == 2 and "fraction" in r.stderr


def test_trainer_holds_identities_out_of_a_folder(tmp_path):
    from frbook.train.config import ConfigError, load_config
    from frbook.train.data import build_data

    folder = own_folder(tmp_path / "f", identities=10, per_identity=3, junk=False)
    raw = {"data": {"kind": "folder", "path": str(folder), "size": 16, "test_identities": 0.3, "split_seed": 1},
           "train": {"steps": 1}, "eval": {"targets": ["heldout"]}}
    config = load_config(raw=raw)
    data = build_data(config)
    train, held = data.train, data.test
    expected = ImageFolderFaces(folder).split_identities(0.3, 1)
    assert held.identities == expected[1].identities and train.identities == expected[0].identities
    with pytest.raises(ConfigError, match="heldout"):
        load_config(raw={**raw, "data": {**raw["data"], "test_identities": 0}})


# -- crops, resizes, messages ----------------------------------------------------------------
def test_crop_fraction_and_aspect_preserving_resize():
    from frbook.data.images import prepare, resize

    image = torch.arange(30 * 40, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 30, 40)
    notes = {}
    half = prepare(image, crop=0.5, notes=notes)  # a square of half the shorter side (15)
    assert torch.equal(half, image[:, 7:22, 12:27])
    assert notes == {"centre-cropped to 0.5 of the shorter side": 1}
    square = prepare(image, size=16, notes=notes)  # 30x40 -> its middle 30x30 -> 16x16, not squashed
    assert torch.equal(square, resize(image[:, :, 5:35], (16, 16)))
    assert notes["centre-cropped to the aspect ratio of 16x16 (not squashed)"] == 1
    assert notes["resized to 16x16"] == 1
    tall = prepare(image.transpose(1, 2).contiguous(), size=(20, 10))  # 40x30 -> 40x20 -> 20x10
    assert torch.equal(tall, resize(image.transpose(1, 2)[:, :, 5:25].contiguous(), (20, 10)))
    with pytest.raises(ValueError, match="fraction of the shorter side"):
        prepare(image, crop=64)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        prepare(image, crop=1.5)


def test_mixed_sizes_and_broken_files_get_command_line_words(tmp_path):
    from frbook.data import CorruptFileError

    for k, size in enumerate((20, 24)):
        (tmp_path / "f" / f"p{k}").mkdir(parents=True)
        (tmp_path / "f" / f"p{k}" / "a.png").write_bytes(png(faces_uint8(1, 1, size, channels=1)[0]))
    faces = ImageFolderFaces(tmp_path / "f")
    with pytest.raises(ValueError, match="20x20, 24x24; resize them to one size: --size 112") as error:
        faces.images()
    assert "size=(H, W)" not in str(error.value) and "data.size" in str(error.value)
    assert ImageFolderFaces(tmp_path / "f", crop=0.9, size=16).images().shape == (2, 1, 16, 16)
    (tmp_path / "f" / "p0" / "b.jpg").write_bytes(b"this is no JPEG")
    with pytest.raises(CorruptFileError) as error:
        ImageFolderFaces(tmp_path / "f").images()
    assert "b.jpg: cannot decode the image (15 bytes)" in str(error.value) and "BytesIO" not in str(error.value)


def test_eval_embeds_each_distinct_image_of_a_bin_once(tmp_path):
    from frbook.data import write_bin

    class Counting(torch.nn.Module):
        in_channels, input_size = 1, (16, 16)

        def __init__(self):
            super().__init__()
            self.seen = 0

        def forward(self, x):
            self.seen += len(x)
            return x.flatten(1) - x.flatten(1).mean(1, keepdim=True)

    faces = [png(im) for im in faces_uint8(4, 2, 16, channels=1)]  # 8 images, identity k: 2k, 2k+1
    pairs = [(0, 1, True), (2, 3, True), (0, 2, False), (1, 3, False), (4, 5, True), (0, 4, False)] * 5
    images = [faces[k] for a, b, _ in pairs for k in (a, b)]
    write_bin(tmp_path / "rep.bin", images, [s for _, _, s in pairs])
    model = Counting()
    report = evaluate(model, tmp_path / "rep.bin", device="cpu", fars=(), n_folds=2)
    assert model.seen == 2 * 6  # six distinct images (0..5), each with its mirror image
    assert report.n_genuine == 15 and report.n_impostor == 15
    single = evaluate(Counting(), tmp_path / "rep.bin", device="cpu", fars=(), n_folds=2, flip=False)
    x = VerificationBin(tmp_path / "rep.bin").images().flatten(1).double()  # every copy, embedded
    e = x - x.mean(1, keepdim=True)
    e = e / e.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(single.scores, (e[0::2] * e[1::2]).sum(1).numpy(), atol=1e-6)


def test_metrics_hold_training_accuracy_and_target_angle(tmp_path):
    import json

    from frbook.train.config import load_config
    from frbook.train.trainer import train

    for loss, head in (("cosface", {}), ("softmax", {}), ("cosface", {"partial_fc": True})):
        raw = {"data": {"identities": 6, "val_identities": 4, "images_per_identity": 4, "size": 16},
               "model": {"name": "small_cnn", "params": {"embedding_dim": 8, "width": 4}},
               "loss": {"name": loss}, "head": head,
               "train": {"steps": 4, "batch_size": 8, "log_every": 2, "device": "cpu"},
               "eval": {"targets": []}, "checkpoint": {"keep_best": "none"}}
        out = tmp_path / f"{loss}{len(head)}"
        train(load_config(raw=raw), out_dir=out, progress=False)
        lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        logged = [m for m in lines if "loss" in m]
        assert len(logged) == 2
        if head:  # the sharded head never forms all the logits: nothing to count
            assert all("train_accuracy" not in m for m in logged)
            continue
        for m in logged:
            assert 0 <= m["train_accuracy"] <= 1 and 0 < m["train_target_angle_deg"] < 180
            assert m["train_accuracy"] * 16 == round(m["train_accuracy"] * 16)  # counts of 2 x 8 images
