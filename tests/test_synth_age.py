"""SynthFaces' age nuisance, cross-age verification pairs and the config keys that ask for them."""
import math

import numpy as np
import pytest
import torch

from frbook.data import SynthFaces
from frbook.data import synth
from frbook.eval import cross_age_pairs
from frbook.protocol import protocol_hash
from frbook.train.config import ConfigError, load_config
from frbook.train.data import build_data

# ---- age 0 (the default) leaves every image as it was ----------------------------------------------

# Pixel sums (plain and weighted by (k mod 7) + 1 over the flattened image) of eight images per
# setting, rendered at commit 3e35bd9, before ageing existed. Sums, not bytes: they stay equal across
# CPUs that round the last float bit differently, yet any change of the painting moves them by far
# more than the tolerance.
IDS = [0, 1, 5, 17, 123, 999_999, 2**40, 4]
INDICES = [0, 3, 1, 19, 7, 2, 11, 100_000]
BEFORE_AGEING = {
    (32, 1, 0.0, 0): ([556.180299, 572.972944, 587.736456, 448.765065, 453.445997, 564.764825, 479.904173,
                       507.191067],
                      [2219.332184, 2291.819387, 2346.783738, 1788.634758, 1806.925606, 2252.312939, 1917.155427,
                       2031.418128]),
    (32, 1, 0.5, 0): ([512.710272, 531.977913, 386.502846, 391.359334, 501.244523, 444.277778, 740.148036,
                       554.043552],
                      [2048.164838, 2123.916496, 1542.68835, 1564.481066, 2004.857755, 1775.955831, 2955.524322,
                       2212.621288]),
    (64, 1, 1.0, 3): ([4040.125385, 2588.771511, 2578.557249, 2054.892636, 3970.550979, 833.881735, 3457.273089,
                       1850.396884],
                      [16155.740068, 10363.840978, 10321.868579, 8203.133686, 15882.663737, 3332.989684,
                       13826.685422, 7386.036017]),
    (48, 3, 0.5, 7): ([3656.829099, 4635.292644, 4390.071989, 3687.950699, 2847.385813, 2846.112833, 5243.680539,
                       3592.88233],
                      [14628.876469, 18526.43126, 17569.919162, 14763.859025, 11411.636054, 11374.839344,
                       20975.73282, 14365.468253]),
}


@pytest.mark.parametrize("setting", list(BEFORE_AGEING))
def test_default_age_renders_the_images_of_before_ageing(setting):
    size, channels, difficulty, seed = setting
    x = synth.render_faces(IDS, INDICES, size=size, channels=channels, difficulty=difficulty, seed=seed).double()
    weights = (torch.arange(x[0].numel(), dtype=torch.float64) % 7 + 1).view_as(x[0])
    sums, weighted = BEFORE_AGEING[setting]
    assert x.sum((1, 2, 3)).tolist() == pytest.approx(sums, rel=1e-6, abs=1e-3)
    assert (x * weights).sum((1, 2, 3)).tolist() == pytest.approx(weighted, rel=1e-6, abs=1e-3)


def test_age_zero_is_the_unaged_face_bit_for_bit():
    plain = SynthFaces(identities=6, images_per_identity=3, size=32).images()
    assert torch.equal(SynthFaces(identities=6, images_per_identity=3, size=32, age=0.0).images(), plain)
    ids, idx = torch.arange(6).repeat_interleave(3), torch.arange(3).repeat(6)
    # An explicit age of 0 goes through the ageing code, and changes nothing.
    assert torch.equal(synth.render_faces(ids, idx, size=32, ages=torch.zeros(18)), plain)
    assert repr(SynthFaces(3)) == repr(SynthFaces(3, age=0.0)) and "age=0.7" in repr(SynthFaces(3, age=0.7))


# ---- the ages ------------------------------------------------------------------------------------


def test_ages_are_drawn_per_image_and_scaled_by_the_knob():
    ids, idx = torch.arange(500) // 10, torch.arange(500) % 10
    full = synth.image_ages(ids, idx, seed=2, age=1.0)
    assert full.shape == (500,) and 0 <= full.min() and full.max() < 1
    assert 0.4 < full.mean() < 0.6 and full.std() > 0.25  # uniform on [0, 1): mean 1/2, std 0.29
    assert torch.allclose(synth.image_ages(ids, idx, seed=2, age=0.4), 0.4 * full)
    assert torch.equal(synth.image_ages(ids[7:9], idx[7:9], seed=2, age=1.0), full[7:9])  # per image
    assert not torch.equal(synth.image_ages(ids, idx, seed=3, age=1.0), full)
    assert synth.image_ages(ids, idx, seed=2, age=0.0).abs().max() == 0
    data = SynthFaces(identities=[7, 3], images_per_identity=4, seed=2, age=0.5)
    assert torch.equal(data.ages(), synth.image_ages([7] * 4 + [3] * 4, [0, 1, 2, 3] * 2, seed=2, age=0.5))
    assert torch.equal(data.ages([5, 1]), data.ages()[[5, 1]])


def test_the_knob_renders_each_image_at_its_drawn_age():
    ids, idx = torch.tensor([1, 1, 4, 9]), torch.tensor([0, 5, 2, 2])
    ages = synth.image_ages(ids, idx, seed=0, age=0.8)
    drawn = synth.render_faces(ids, idx, size=32, age=0.8)
    assert torch.equal(drawn, synth.render_faces(ids, idx, size=32, ages=ages))
    assert not torch.equal(drawn, synth.render_faces(ids, idx, size=32))
    # Rendering alone or in a batch gives the same aged image, as for every other nuisance.
    torch.testing.assert_close(synth.render_faces(ids[2:3], idx[2:3], size=32, age=0.8), drawn[2:3],
                               atol=1e-6, rtol=0)


# ---- ageing: in the expected direction, identity kept ----------------------------------------------


def test_hair_greys_and_faces_change_steadily_with_age():
    ids = torch.arange(30)
    ages = (0.0, 0.25, 0.5, 0.75, 1.0)
    # At difficulty 0 the white balance is neutral: the painted hair colour is the aged one.
    params = [synth._image_parameters(ids, torch.zeros(30, dtype=torch.long), 0, 0.0, 3, torch.device("cpu"),
                                      torch.full((30,), a)) for a in ages]
    grey = torch.tensor(synth._GREY).view(1, 3, 1, 1)
    to_grey = torch.stack([(p["hair"] - grey).norm(dim=1).flatten() for p in params])
    assert (to_grey[1:] < to_grey[:-1]).all() and to_grey[-1].max() < 1e-5  # white at age 1
    assert (torch.stack([p["hairline"].flatten() for p in params]).diff(dim=0) < 0).all()  # recedes
    assert (torch.stack([p["wrinkles"].flatten() for p in params]).diff(dim=0) > 0).all()
    # The further apart in age, the more the image of one face changes (pose and light held).
    ages = torch.tensor([0.0, 0.1, 0.4, 0.7, 1.0])
    for identity in range(5):
        x = synth.render_faces([identity] * 5, [3] * 5, size=32, ages=ages).flatten(1)
        change = (x - x[0]).norm(dim=1)
        assert (change.diff() > 0).all(), (identity, change)


def test_ageing_keeps_the_identity():
    ids, idx = torch.arange(40), torch.zeros(40, dtype=torch.long)
    cpu = torch.device("cpu")
    young = synth._image_parameters(ids, idx, 0, 0.5, 1, cpu)
    old = synth._image_parameters(ids, idx, 0, 0.5, 1, cpu, torch.ones(40))
    aged = {"hair", "brow", "hairline", "hair_volume", "face_width", "face_height", "jaw", "eye_height",
            "brow_thickness", "upper_lip", "lower_lip", "nose_width", "ear_height"}
    assert set(old) - set(young) == {"wrinkles", "wrinkle"}
    for name, value in young.items():  # eye, nose and mouth placement, skin, eyes, accessories: unchanged
        assert torch.equal(value, old[name]) != (name in aged), name
    # Raw pixels of canonical faces still find the same person among 40 young faces, less well when older.
    faces = synth.render_faces(ids, idx, size=32, difficulty=0.0).flatten(1)
    found = [(torch.cdist(synth.render_faces(ids, idx, size=32, difficulty=0.0, ages=a).flatten(1), faces)
              .argmin(1) == ids).float().mean() for a in (0.3, 1.0)]
    assert found[0] >= 0.9 and 0.1 < found[1] < found[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"age": 1.5}, "age must be a number in"), ({"age": -0.1}, "age must be a number in"),
    ({"age": math.nan}, "age must be a number in"), ({"age": True}, "age must be a number in"),
    ({"age": "0.5"}, "age must be a number in"),
    ({"ages": [0.2, 1.2]}, r"ages must be numbers in \[0, 1\]"),
    ({"ages": [0.2, math.inf]}, r"ages must be numbers in \[0, 1\]"),
    ({"ages": [0.1, 0.2, 0.3]}, r"one age per image \(2\)"),
])
def test_bad_ages_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth.render_faces([0, 1], [0, 0], size=16, **kwargs)
    if "age" in kwargs:
        with pytest.raises(ValueError, match=message):
            SynthFaces(2, age=kwargs["age"])


# ---- cross-age pairs ------------------------------------------------------------------------------


def test_cross_age_pairs_keep_the_gap_and_are_balanced():
    data = SynthFaces(identities=30, images_per_identity=12, age=1.0)
    labels, ages = data.labels.numpy(), data.ages().numpy()
    i, j, issame = cross_age_pairs(labels, ages, 0.5, num_pairs=400, seed=1)
    assert len(i) == 400 and issame.sum() == 200 and (i < j).all()
    assert (np.abs(ages[i] - ages[j]) >= 0.5).all()
    assert (labels[i] == labels[j]).tolist() == issame.tolist()
    assert issame[0::2].all() and not issame[1::2].any()  # interleaved for contiguous folds
    assert len({(a, b) for a, b in zip(i, j)}) == 400  # no pair twice
    # Impostors obey the same gap, so the age difference does not tell them from genuine pairs.
    gaps = np.abs(ages[i] - ages[j])
    assert abs(gaps[issame].mean() - gaps[~issame].mean()) < 0.05
    again = cross_age_pairs(labels, ages, 0.5, num_pairs=400, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((i, j, issame), again))
    i, j, issame = cross_age_pairs(labels, ages, 0.5)  # every genuine cross-age pair, as many impostors
    genuine = sum(abs(ages[a] - ages[b]) >= 0.5 for a in range(len(labels)) for b in range(a + 1, len(labels))
                  if labels[a] == labels[b])
    assert issame.sum() == (~issame).sum() == genuine


def test_cross_age_pairs_say_what_is_missing():
    labels, ages = np.repeat(np.arange(5), 4), np.tile([0.0, 0.1, 0.2, 0.3], 5)
    with pytest.raises(ValueError, match="no genuine pairs with an age gap of at least 0.5"):
        cross_age_pairs(labels, ages, 0.5)
    with pytest.raises(ValueError, match=r"use num_pairs <= \d+"):
        cross_age_pairs(labels, ages, 0.2, num_pairs=200)
    with pytest.raises(ValueError, match="one age per face"):
        cross_age_pairs(labels, ages[:-1], 0.2)
    with pytest.raises(ValueError, match="min_gap must be"):
        cross_age_pairs(labels, ages, math.nan)


# ---- the config keys ------------------------------------------------------------------------------

TINY = {"data": {"identities": 6, "val_identities": 2, "test_identities": 10, "images_per_identity": 4,
                 "test_images_per_identity": 12, "size": 16, "age": 1.0, "cross_age_gap": 0.5},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8}},
        "train": {"steps": 3, "batch_size": 8}, "eval": {"targets": [], "num_pairs": 100, "fars": [0.1]},
        "checkpoint": {"keep_best": "none"}}


def tiny(**data):
    return load_config(raw={**TINY, "data": {**TINY["data"], **data}})


@pytest.mark.parametrize("data, message", [
    ({"age": 1.5}, r"data.age must be a number in \[0, 1\]"),
    ({"age": math.nan}, "data.age must be a finite number"),
    ({"cross_age_gap": 0.0}, r"data.cross_age_gap must be a number in \(0, 1\]"),
    ({"age": 0.3}, "data.cross_age_gap 0.5 needs faces that far apart in age: set data.age >= 0.5"),
    ({"kind": "lfw"}, "data.age and data.cross_age_gap age SynthFaces"),
])
def test_bad_age_keys_are_named(data, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**data)


def test_all_pairs_fars_are_refused_with_cross_age_pairs():
    with pytest.raises(ConfigError, match="eval.all_pairs_fars reads every pair of test images, at any age"):
        load_config(raw={**TINY, "eval": {**TINY["eval"], "all_pairs_fars": [0.01]}})


def test_cross_age_test_pairs_are_checked_before_training():
    data = build_data(tiny())
    assert data.test.age == data.train.age == 1.0  # every split ages
    with pytest.raises(ConfigError, match=r"data.cross_age_gap 0.5: asked for .*eval.num_pairs"):
        build_data(tiny(test_images_per_identity=2))


def test_evaluate_test_scores_cross_age_pairs():
    from frbook import models
    from frbook.protocol import evaluate_test

    config = tiny()
    torch.manual_seed(0)
    backbone = models.get("small_cnn", embedding_dim=8, in_channels=1, input_size=16)
    metrics = evaluate_test(backbone.eval(), build_data(config).test, config, torch.device("cpu"))
    assert metrics["pairs"] == 100 and metrics["cross_age_gap"] == 0.5 and 0 <= metrics["accuracy"] <= 1
    assert "rank1" not in metrics  # rank-1 over a random gallery would not be cross-age


def test_the_fingerprint_of_configs_without_ageing_is_unchanged():
    plain = load_config(raw={**TINY, "data": {k: v for k, v in TINY["data"].items()
                                              if k not in ("age", "cross_age_gap")}})
    explicit = load_config(raw={**TINY, "data": {**TINY["data"], "age": 0, "cross_age_gap": None}})
    assert protocol_hash(plain) == protocol_hash(explicit)
    aged = load_config(raw={**TINY, "data": {**TINY["data"], "cross_age_gap": None}})  # age 1, ordinary pairs
    assert protocol_hash(plain) != protocol_hash(aged)
    assert protocol_hash(tiny()) != protocol_hash(tiny(cross_age_gap=0.6))


def test_preview_shows_ageing_and_names_a_bad_age(tmp_path, capsys):
    from frbook.__main__ import main

    out = tmp_path / "ageing.png"
    assert main(["preview", "--age", "1", "--identities", "2", "--images", "3", "--size", "16", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as stop:
        main(["preview", "--age", "2", "--out", str(tmp_path / "x.png")])
    assert stop.value.code == 2 and "age must be a number in [0, 1]" in capsys.readouterr().err
