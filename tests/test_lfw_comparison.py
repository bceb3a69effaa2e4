"""LFW in comparisons: decoded data sets, the fold splits, the cropped copy, configs, the launcher."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
import yaml

from fake_faces import PEOPLE, lfw_folder
from frbook import experiment
from frbook.data import LFW, write_cropped_copy
from frbook.data.decoded import DecodedFaces, PairFaces, decode_all
from frbook.heads import CosineClassifier, LinearClassifier
from frbook.protocol import entry_config, protocol_hash
from frbook.provenance import REPO
from frbook.train.config import load_config
from frbook.train.data import build_data


def numbered_images(n, size=4):
    """uint8 images whose every pixel is the item's index, with a left-right gradient to see flips."""
    base = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    base[..., 0] = 255  # a bright left column: a mirrored image has it on the right
    return base


def test_decoded_faces_loader_visits_every_item_once_in_a_seeded_order():
    images, labels = numbered_images(10), torch.arange(10) % 3
    faces = DecodedFaces(images, labels)
    batches = list(faces.loader(4, shuffle=True, generator_seed=7))
    seen = torch.cat([(b[:, 0, 0, 1] * 255).round().long() for b, _ in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert torch.equal(torch.cat([y for _, y in batches]), labels[seen])  # labels follow their images
    again = torch.cat([(b[:, 0, 0, 1] * 255).round().long() for b, _ in faces.loader(4, generator_seed=7)])
    assert torch.equal(seen, again)
    assert [len(b) for b, _ in faces.loader(4, drop_last=True)] == [4, 4]
    assert faces.num_classes == 3 and len(faces) == 10


def test_decoded_faces_flip_mirrors_about_half_and_never_in_order():
    faces = DecodedFaces(numbered_images(250), torch.zeros(250, dtype=torch.int64), flip=True)
    images = torch.cat([b for b, _ in faces.loader(64, shuffle=True, generator_seed=1)])
    mirrored = images[..., -1].eq(1.0).all(dim=(1, 2))  # the bright column moved to the right
    plain = images[..., 0].eq(1.0).all(dim=(1, 2))
    assert torch.all(mirrored ^ plain) and 90 < mirrored.sum() < 160
    ordered = torch.cat([b for b, _ in faces.loader(64, shuffle=False)])
    assert torch.all(ordered[..., 0] == 1.0)  # evaluation order: no augmentation


def test_decoded_faces_rejects_what_it_cannot_serve():
    with pytest.raises(ValueError, match="uint8"):
        DecodedFaces(torch.zeros(3, 1, 4, 4), [0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        DecodedFaces(numbered_images(3), [0, 1])


def test_pair_faces_reindexes_pairs_to_its_own_rows():
    images = numbered_images(20)
    i, j, same = np.array([5, 2, 17, 5]), np.array([9, 17, 3, 2]), np.array([True, False, True, False])
    faces = PairFaces(images, (i, j, same), n_folds=2)
    rows = torch.cat([(b[:, 0, 0, 1] * 255).round().long() for b, _ in faces.loader(3)])
    assert rows[faces.pairs.i].tolist() == i.tolist() and rows[faces.pairs.j].tolist() == j.tolist()
    assert faces.pairs.issame.tolist() == same.tolist() and len(faces) == 5 and faces.n_folds == 2


def lfw_config(root) -> dict:
    return load_config(raw={
        "data": {"kind": "lfw", "path": str(root), "size": 16, "channels": 1, "flip": True},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8}},
        "train": {"steps": 2, "batch_size": 2}, "optim": {"lr": 0.01},
        "eval": {"targets": [], "fars": [], "flip": True},
        "compare": {"seeds": [0], "folds": [0, 1], "losses": {"arcface": {"loss": {"name": "arcface"}}}}})


def test_lfw_splits_hold_out_the_test_and_validation_folds(tmp_path):
    root = lfw_folder(tmp_path / "lfw")
    lfw = LFW(root, channels=1, size=16)
    for fold in (0, 1):
        data = build_data(entry_config(lfw_config(root), "arcface", seed=0, fold=fold))
        train, val, test = data.train, data.val, data.test
        # Two folds: everyone in a pair is held out, and only the fifth person (in no pair) trains.
        assert isinstance(train, DecodedFaces) and len(train) == 3 and train.num_classes == 1
        assert len(test.pairs.i) == 4 and len(val.pairs.i) == 4
        # Each of the two sub-folds of the accuracy holds one matched and one mismatched pair.
        assert test.n_folds == 2 and test.pairs.issame.tolist() == [True, False, True, False]
        for pairs, k in ((test, fold), (val, 1 - fold)):
            expected = lfw.pairs(k)
            rows = decode_all(lfw)[torch.as_tensor(pairs.items)]
            first = {tuple(r.flatten().tolist()) for r in rows[pairs.pairs.i]}
            assert first == {tuple(im.flatten().tolist()) for im in decode_all(lfw)[torch.as_tensor(expected.i)]}
    assert {n for n in lfw.identities if n not in PEOPLE} == {"Ed_Fox"}


def test_lfw_comparison_end_to_end(tmp_path, one_thread):
    root = lfw_folder(tmp_path / "lfw")
    extra = root / "lfw" / "Fay_Gil"  # a second person in no pair, so that two identities train
    extra.mkdir()
    for k, image in enumerate(sorted((root / "lfw" / "Di_Egan").iterdir())):
        (extra / f"Fay_Gil_{k + 1:04d}.jpg").write_bytes(image.read_bytes())
    path = tmp_path / "lfw_test.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"kind": "lfw", "path": str(root), "size": 16, "channels": 1, "flip": True},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8}},
        "train": {"steps": 2, "batch_size": 2, "precision": "bf16", "channels_last": True},
        "optim": {"lr": 0.01}, "eval": {"targets": [], "fars": [], "flip": True},
        "checkpoint": {"keep_best": "none"},
        "compare": {"seeds": [0], "folds": [0, 1],
                    "losses": {"arcface": {"loss": {"name": "arcface", "params": {"s": 30, "m": 0.5}}},
                               "search_softmax": {"search": {"method": "search", "candidates": 2, "epochs": 2,
                                                             "engine": "loop"}}}}}))
    paths = experiment.compare(path, out_dir=tmp_path / "out", device="cpu", progress=False, folds=[1],
                               runs_dir=tmp_path / "runs")
    assert sorted(p.name for p in paths) == ["arcface-fold1-seed0.json", "search_softmax-fold1-seed0.json"]
    for p in paths:
        run = json.loads(p.read_text())
        assert run["fold"] == 1 and run["metrics"]["pairs"] == 4 and 0 <= run["metrics"]["accuracy"] <= 1
        assert run["protocol"] == protocol_hash(experiment.load_comparison(path))
        assert run["config"]["data"]["test_fold"] == 1
    mtime = paths[0].stat().st_mtime_ns
    experiment.compare(path, out_dir=tmp_path / "out", device="cpu", progress=False, folds=[1],
                               runs_dir=tmp_path / "runs")
    assert paths[0].stat().st_mtime_ns == mtime  # done runs are not repeated


def test_lfw_config_errors_name_the_problem(tmp_path):
    base = {"model": {"name": "small_cnn", "params": {"embedding_dim": 8}}, "train": {"steps": 2}, "eval": {"targets": []},
            "compare": {"losses": {"arcface": {}}}}
    cases = [({"compare": {"folds": [0, 1], "losses": {"arcface": {}}}}, "folds are LFW's"),
             ({"data": {"kind": "lfw"}, "compare": {"folds": [10], "losses": {"arcface": {}}}}, "0..9"),
             ({"data": {"kind": "faces"}}, "data.kind must be one of"),
             ({"data": {"kind": "lfw", "label_noise": 0.2}}, "label_noise flips SynthFaces labels")]
    for extra, message in cases:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({**base, **extra}))
        with pytest.raises(ValueError, match=message):
            experiment.load_comparison(path)
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ValueError, match="--folds is for LFW"):
        experiment.compare(path, out_dir=tmp_path, folds=[0])


def test_where_the_data_lives_and_which_folds_run_leave_the_protocol_unchanged(tmp_path):
    config = experiment.load_comparison(REPO / "configs" / "compare_lfw_cpu.yaml")
    moved = json.loads(json.dumps(config))
    moved["data"]["path"], moved["compare"]["folds"] = "/somewhere/else", [3]
    assert protocol_hash(moved) == protocol_hash(config)
    moved["data"]["size"] = 32
    assert protocol_hash(moved) != protocol_hash(config)


def test_heads_answer_in_float32_under_autocast():
    x = torch.randn(4, 8)
    for head in (CosineClassifier(8, 5), LinearClassifier(8, 5)):
        plain = head(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = head(x.bfloat16())
        assert inside.dtype == torch.float32
        assert torch.allclose(inside, plain, atol=2e-2)  # only the bf16 rounding of the input differs


def test_cropped_copy_reads_back_like_the_original(tmp_path):
    original = LFW(lfw_folder(tmp_path / "lfw", size=40), channels=1, crop=24)
    copy_root = write_cropped_copy(original, tmp_path / "copy", quality=95, progress=False)
    copy = LFW(copy_root, channels=1, crop=24)  # the same crop: a no-op on the 24x24 copy
    assert copy.identities == original.identities and len(copy) == len(original)
    assert [f.name for f in copy.files] == [f.name for f in original.files]
    for a, b in zip(original.pairs(), copy.pairs()):
        assert np.array_equal(a, b)
    difference = (decode_all(copy).float() - decode_all(original).float()).abs().mean()
    assert decode_all(copy).shape[-2:] == (24, 24) and difference < 3  # JPEG at quality 95
    with pytest.raises(ValueError, match="must not overwrite"):
        write_cropped_copy(original, original.root, progress=False)


def test_cli_lfw_crops(tmp_path, capsys):
    from frbook.__main__ import main

    root = lfw_folder(tmp_path / "lfw", size=40)
    assert main(["data", "lfw-crops", "--lfw", str(root), str(tmp_path / "copy"), "--crop", "24", "--quiet"]) == 0
    assert "15 images of 5 people (24x24" in capsys.readouterr().out
    assert (tmp_path / "copy" / "pairs.txt").read_text() == (root / "pairs.txt").read_text()


def load_launcher():
    spec = importlib.util.spec_from_file_location("parallel_compare", REPO / "scripts" / "parallel_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launcher_shares_the_cores_among_its_jobs():
    launcher = load_launcher()
    assert launcher.threads_per_job(jobs=2, threads=None, cores=2) == 1
    assert launcher.threads_per_job(jobs=4, threads=None, cores=2) == 1  # never zero
    assert launcher.threads_per_job(jobs=2, threads=None, cores=16) == 8
    assert launcher.threads_per_job(jobs=2, threads=3, cores=16) == 3


def test_launcher_starts_searches_first_fold_by_fold():
    launcher = load_launcher()
    config = experiment.load_comparison(REPO / "configs" / "compare_lfw_cpu.yaml")
    jobs = launcher.job_list(config, only=["arcface", "search_softmax", "softmax"], folds=[2, 0])
    assert jobs == [("search_softmax", 2), ("arcface", 2), ("softmax", 2),
                    ("search_softmax", 0), ("arcface", 0), ("softmax", 0)]
    synth = experiment.load_comparison(REPO / "configs" / "compare_margins_cpu.yaml")
    assert {fold for _, fold in launcher.job_list(synth, None, None)} == {None}
