"""InsightFace's verification protocol end to end, open-set identification, checkpoints.

The references here are written as plain loops over pairs, folds and thresholds, independent of
the vectorised library code they check.
"""
import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from fake_faces import faces_uint8, lfw_folder, png
from frbook import checkpoint, models
from frbook.data import LFW, SynthFaces, VerificationBin, write_bin
from frbook.eval import (
    DEFAULT_THRESHOLDS, auc, cmc, dir_at_far, eer, embed, embed_batch, evaluate, kfold_accuracy,
    roc, tar_at_far, verify,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


# ----------------------------------------------------------------------------------------------
# Plain-loop references
# ----------------------------------------------------------------------------------------------
GRID = [k * 0.01 for k in range(400)]  # 0, 0.01, ..., 3.99


def test_reference_grid_is_insightfaces_grid():
    assert np.array_equal(np.asarray(GRID), DEFAULT_THRESHOLDS)


def ref_unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def ref_distances(first, first_flip, second, second_flip):
    """Flip-sum, normalise, squared distance, one pair at a time."""
    out = []
    for a, af, b, bf in zip(first, first_flip, second, second_flip):
        ua = ref_unit([x + y for x, y in zip(a, af)])
        ub = ref_unit([x + y for x, y in zip(b, bf)])
        out.append(sum((x - y) ** 2 for x, y in zip(ua, ub)))
    return out


def ref_kfold(dist, issame, n_folds=10):
    """Contiguous folds (the first n % n_folds folds one longer), best threshold on the rest."""
    n = len(dist)
    bounds, start = [], 0
    for f in range(n_folds):
        size = n // n_folds + (1 if f < n % n_folds else 0)
        bounds.append((start, start + size))
        start += size
    accuracies = []
    for lo, hi in bounds:
        train = [k for k in range(n) if not lo <= k < hi]
        best_t, best_correct = None, -1
        for t in GRID:
            correct = sum((dist[k] < t) == issame[k] for k in train)
            if correct > best_correct:  # the first best threshold wins ties
                best_t, best_correct = t, correct
        accuracies.append(sum((dist[k] < best_t) == issame[k] for k in range(lo, hi)) / (hi - lo))
    mean = sum(accuracies) / n_folds
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / n_folds)  # ddof = 0
    return mean, std, accuracies


def ref_roc_points(scores, issame):
    """(FAR, TAR) for "accept iff score >= t" at every distinct score, plus (0, 0)."""
    genuine = [s for s, y in zip(scores, issame) if y]
    impostor = [s for s, y in zip(scores, issame) if not y]
    points = [(0.0, 0.0)]
    for t in sorted(set(scores), reverse=True):
        points.append((sum(s >= t for s in impostor) / len(impostor),
                       sum(s >= t for s in genuine) / len(genuine)))
    return points


def ref_conservative_tar(scores, issame, far):
    return max(tar for f, tar in ref_roc_points(scores, issame) if f <= far)


def ref_eer(scores, issame):
    """Where the ROC's straight segments cross FAR = 1 - TAR."""
    points = ref_roc_points(scores, issame)
    for (f0, t0), (f1, t1) in zip(points, points[1:]):
        g0, g1 = f0 - (1 - t0), f1 - (1 - t1)  # FAR - FRR at both ends
        if g0 == 0:
            return f0
        if g0 < 0 <= g1:
            return f0 + (f1 - f0) * (-g0) / (g1 - g0)
    raise AssertionError("no crossing")


def ref_auc(scores, issame):
    genuine = [s for s, y in zip(scores, issame) if y]
    impostor = [s for s, y in zip(scores, issame) if not y]
    wins = sum(1.0 if g > i else 0.5 if g == i else 0.0 for g in genuine for i in impostor)
    return wins / (len(genuine) * len(impostor))


# ----------------------------------------------------------------------------------------------
# The verification protocol against the references
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_pairs, seed", [(60, 0), (73, 1)])
def test_flip_sum_protocol_matches_reference_on_random_embeddings(n_pairs, seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    base = rng.normal(size=(n_pairs, 6))
    first = base + 0.3 * rng.normal(size=base.shape)
    second = np.where(issame[:, None], base, rng.normal(size=base.shape)) + 0.9 * rng.normal(size=base.shape)
    first_flip, second_flip = first + 0.2 * rng.normal(size=base.shape), second + 0.2 * rng.normal(size=base.shape)
    # The library: flip-sum, then verify pairs (2k, 2k+1) as for a .bin file.
    emb = np.empty((2 * n_pairs, 6))
    emb[0::2], emb[1::2] = first + first_flip, second + second_flip
    report = verify(emb, pairs=(np.arange(0, 2 * n_pairs, 2), np.arange(1, 2 * n_pairs, 2), issame),
                    fars=(0.1,))
    dist = ref_distances(first.tolist(), first_flip.tolist(), second.tolist(), second_flip.tolist())
    mean, std, accuracies = ref_kfold(dist, issame.tolist())
    assert report.accuracy == pytest.approx(mean, abs=1e-12)
    assert report.accuracy_std == pytest.approx(std, abs=1e-12)
    np.testing.assert_allclose(report.kfold.fold_accuracies, accuracies, atol=1e-12)
    scores = [1 - d / 2 for d in dist]  # cosine of unit vectors
    assert report.auc == pytest.approx(ref_auc(scores, issame.tolist()), abs=1e-9)
    assert report.eer == pytest.approx(ref_eer(scores, issame.tolist()), abs=1e-9)
    assert report.tar[0.1]["conservative"] == pytest.approx(ref_conservative_tar(scores, issame.tolist(), 0.1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_tar_eer_auc_match_loops_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(90) < 0.4
    scores = np.round(np.where(issame, 0.5, 0.1) + 0.3 * rng.normal(size=90), 1)  # many ties
    s, y = scores.tolist(), issame.tolist()
    fpr, tpr, _ = roc(scores, issame)
    assert sorted(set(zip(fpr.tolist(), tpr.tolist()))) == sorted(set(ref_roc_points(s, y)))
    for far in (0.02, 0.05, 0.1, 0.3, 1.0):
        assert tar_at_far(scores, issame, far, "conservative") == pytest.approx(ref_conservative_tar(s, y, far))
    assert eer(scores, issame) == pytest.approx(ref_eer(s, y), abs=1e-12)
    assert auc(scores, issame) == pytest.approx(ref_auc(s, y), abs=1e-12)
    dist = (2 - 2 * np.clip(scores, -1, 1)).tolist()
    mean, std, _ = ref_kfold(dist, y)
    result = kfold_accuracy(dist, issame)
    assert (result.mean, result.std) == (pytest.approx(mean, abs=1e-12), pytest.approx(std, abs=1e-12))


def test_degenerate_all_scores_equal():
    issame = np.tile([True, False], 20)
    same_embeddings = np.ones((80, 4))  # every face the same vector: distance 0, cosine 1
    with pytest.warns(UserWarning):  # FAR 1e-2 is below 1/20 impostor pairs
        report = verify(same_embeddings, pairs=(np.arange(0, 80, 2), np.arange(1, 80, 2), issame))
    mean, std, _ = ref_kfold([0.0] * 40, issame.tolist())
    assert report.accuracy == mean == 0.5 and report.accuracy_std == std == 0.0
    assert report.auc == 0.5 and report.eer == 0.5
    for reads in report.tar.values():
        assert reads == {"conservative": 0.0, "nearest": 0.0}
    assert tar_at_far(np.ones(40), issame, 0.1, "nearest") == 0.0


def test_degenerate_perfectly_separable():
    issame = np.tile([True, False], 50)
    e = np.zeros((200, 3))
    e[0::2, 0] = 1.0
    e[1::2] = np.where(issame[:, None], [1.0, 0, 0], [0, 1.0, 0])  # genuine equal, impostors orthogonal
    report = verify(e, pairs=(np.arange(0, 200, 2), np.arange(1, 200, 2), issame), fars=(0.02,))
    assert report.accuracy == 1.0 and report.accuracy_std == 0.0
    assert report.auc == 1.0 and report.eer == 0.0
    assert report.tar[0.02] == {"conservative": 1.0, "nearest": 1.0}
    # distances are exactly 0 (genuine) and 2 (impostor); the first grid threshold above 0 wins
    np.testing.assert_allclose(report.kfold.fold_thresholds, 0.01)


def test_report_prints_plots_and_serialises():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(120, 8))
    issame = np.tile([True, False], 30)
    e[1::2][issame] = e[0::2][issame] + 0.5 * rng.normal(size=(30, 8))
    report = verify(e, pairs=(np.arange(0, 120, 2), np.arange(1, 120, 2), issame), fars=(0.1,),
                    title="toy set")
    text = report.table()
    assert text.startswith("toy set: 30 genuine + 30 impostor pairs")
    assert "conservative / nearest" in text and "EER" in text
    fig = report.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "genuine" in fig.axes[0].get_legend().get_texts()[0].get_text()
    d = json.loads(json.dumps(report.to_dict()))
    assert d["title"] == "toy set" and d["accuracy"] == report.accuracy


# ----------------------------------------------------------------------------------------------
# A model, end to end: embed with flip-sum, evaluate on a .bin, LFW-format folder, SynthFaces
# ----------------------------------------------------------------------------------------------
class LinearFace(nn.Module):
    """A fixed random projection of the pixels: not mirror-symmetric, so the flip matters."""

    def __init__(self, in_channels=3, size=16, dim=8):
        super().__init__()
        self.in_channels, self.input_size = in_channels, (size, size)
        self.proj = nn.Linear(in_channels * size * size, dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(dim, in_channels * size * size,
                                               generator=torch.Generator().manual_seed(0)))
            self.proj.bias.zero_()

    def forward(self, x):
        return self.proj(x.flatten(1))


def _toy_bin(path, size=16, pairs=12):
    """pairs of SynthFaces: genuine = two images of one identity, impostor = two identities."""
    images = faces_uint8(2 * pairs, 2, size)  # identity k: items 2k, 2k+1
    data, issame = [], []
    for k in range(pairs):
        same = k % 3 != 2
        first, second = images[4 * k], images[4 * k + 1] if same else images[4 * k + 2]
        data += [png(first), png(second)]
        issame.append(same)
    return write_bin(path, data, issame)


def test_embed_batch_flip_sum():
    model = LinearFace()
    x = torch.rand(3, 3, 16, 16)
    out = embed_batch(model, x, flip=True)
    mirrored = x[..., torch.arange(15, -1, -1)]
    torch.testing.assert_close(out, model(x) + model(mirrored))
    assert not torch.allclose(out, 2 * model(x))
    faces = SynthFaces(2, images_per_identity=2, size=16, channels=3)
    e, labels = embed(model, faces, flip=True)
    torch.testing.assert_close(e, embed_batch(model, faces.images(), flip=True))
    assert labels.tolist() == [0, 0, 1, 1]


def test_evaluate_on_bin_matches_reference(tmp_path):
    model = LinearFace()
    path = _toy_bin(tmp_path / "toy.bin")
    report = evaluate(model, path, fars=(0.25,), batch_size=5, device="cpu")
    data = VerificationBin(path, channels=3)
    x = data.images()
    with torch.no_grad():
        plain, flipped = model(x).tolist(), model(torch.flip(x, dims=[3])).tolist()
    dist = ref_distances(plain[0::2], flipped[0::2], plain[1::2], flipped[1::2])
    mean, std, _ = ref_kfold(dist, data.issame.tolist())
    assert report.accuracy == pytest.approx(mean, abs=1e-12)
    assert report.accuracy_std == pytest.approx(std, abs=1e-12)
    assert "toy.bin (12 pairs), flip-sum embeddings" in report.table()
    assert not any("resized" in n or "converted" in n for n in report.notes)  # none needed
    no_flip = evaluate(model, path, flip=False, fars=(0.25,))
    dist1 = ref_distances(plain[0::2], [[0.0] * 8] * 12, plain[1::2], [[0.0] * 8] * 12)
    assert no_flip.accuracy == pytest.approx(ref_kfold(dist1, data.issame.tolist())[0], abs=1e-12)
    assert "single-image" in no_flip.title


def test_evaluate_converts_images_to_the_model_and_says_so(tmp_path):
    path = _toy_bin(tmp_path / "big.bin", size=24)
    report = evaluate(LinearFace(in_channels=1, size=16), VerificationBin(path, channels=3), fars=(0.25,))
    assert "images converted from 3 to 1 channels" in report.notes  # the batch, for the model
    assert "images resized from 24x24 to 16x16, the model's input_size" in report.notes
    grey = evaluate(LinearFace(in_channels=1, size=16), path, fars=(0.25,))  # read as the model wants
    assert any(n.endswith("images converted from colour to grey") for n in grey.notes)
    assert any(n.endswith("images resized to 16x16") for n in grey.notes)
    assert "resized" in report.table()


def test_evaluate_on_lfw_format_folder_and_synth(tmp_path):
    root = lfw_folder(tmp_path / "pairs", size=32)
    model = LinearFace(size=16)
    report = evaluate(model, root, crop=24, n_folds=2, fars=(0.5,))
    assert report.n_genuine == report.n_impostor == 4 and report.n_folds == 2
    assert not any("one kind" in note for note in report.notes)  # each fake fold is mixed
    # 4 folds over G G I I G G I I: every fold is all genuine or all impostor
    split_badly = evaluate(model, root, crop=24, n_folds=4, fars=(0.5,))
    assert any("folds [0, 1, 2, 3] hold pairs of one kind only" in n for n in split_badly.notes)
    same = evaluate(model, LFW(root, crop=24, size=16), n_folds=2, fars=(0.5,))
    assert same.accuracy == report.accuracy and same.eer == report.eer
    synth = evaluate(model, SynthFaces(6, images_per_identity=3, size=16, channels=3), fars=(0.5,))
    assert synth.n_genuine == 18 and "SynthFaces (6 identities x 3" in synth.title
    with pytest.raises(ValueError, match="unknown target"):
        evaluate(model, tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match="no impostor pairs"):  # an image folder of one identity
        evaluate(model, tmp_path)
    with pytest.raises(TypeError, match="cannot evaluate"):
        evaluate(model, 42)


# ----------------------------------------------------------------------------------------------
# Open-set identification: DIR at FAR
# ----------------------------------------------------------------------------------------------
GALLERY = np.array([[1.0, 0], [0, 1], [-1, 0]])  # identities A, B, C
GALLERY_LABELS = np.array(["A", "B", "C"])
PROBES = np.array([
    [10, 1], [3, 4], [1, 10], [-4, 3],    # mated: A (right, .995), A (B wins), B (.995), C (.8)
    [1, 1], [0, -1], [-10, -1], [4, -3],  # non-mated: best scores .707, 0, .995, .8
], dtype=float)
PROBE_LABELS = np.array(["A", "A", "B", "C", "X", "Y", "Z", "W"])


def test_dir_at_far_hand_made():
    def dir_(far):
        return dir_at_far(GALLERY, GALLERY_LABELS, PROBES, PROBE_LABELS, far)

    # far 1: no threshold; DIR is rank-1 accuracy of the mated probes (3 of 4)
    assert dir_(1.0) == 0.75
    # far 0.5: 2 of 4 non-mated may pass: threshold = 3rd best non-mated score .707
    assert dir_(0.5) == 0.75
    # far 0.25: threshold .8; the C probe scores exactly .8 and does not pass (strictly above)
    assert dir_(0.25) == 0.5
    # far 0.1 < 1/4: no false alarm allowed: threshold .995, which the two .995 probes tie
    assert dir_(0.1) == 0.0
    np.testing.assert_array_equal(dir_([0.1, 0.25, 0.5, 1.0]), [0.0, 0.5, 0.75, 0.75])


def test_dir_at_far_bounds_the_false_alarms_and_matches_closed_set():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(20, 5))
    labels = np.arange(20)
    mated = gallery[:10] + 0.8 * rng.normal(size=(10, 5))
    strangers = rng.normal(size=(40, 5))
    probes, probe_labels = np.vstack([mated, strangers]), np.r_[np.arange(10), np.arange(100, 140)]
    rates = dir_at_far(gallery, labels, probes, probe_labels, [0.05, 0.2, 0.5, 1.0])
    assert np.all(np.diff(rates) >= 0)
    assert rates[-1] == pytest.approx(cmc(gallery, labels, mated, np.arange(10), max_rank=1)[0])


def test_dir_at_far_errors():
    with pytest.raises(ValueError, match="mated and non-mated"):
        dir_at_far(GALLERY, GALLERY_LABELS, PROBES[:4], PROBE_LABELS[:4], 0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        dir_at_far(GALLERY, GALLERY_LABELS, PROBES, PROBE_LABELS, 0.0)
    with pytest.raises(ValueError, match="dir_at_far"):  # closed-set search points to open-set
        cmc(GALLERY, GALLERY_LABELS, PROBES, PROBE_LABELS)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    params = {"embedding_dim": 8, "in_channels": 3, "input_size": 32, "width": 8}
    torch.manual_seed(0)
    model = models.get("small_cnn", **params).eval()
    path = checkpoint.save(tmp_path / "ck" / "model.pt", model, "small_cnn", params,
                           extra={"loss": "arcface", "step": 10})
    loaded = checkpoint.load(path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    record = checkpoint.read(path)
    assert record["model"] == {"name": "small_cnn", "params": params}
    assert record["extra"]["step"] == 10 and "git_commit" in record["provenance"]
    assert not loaded.training


class _NotWeights:
    pass


def test_checkpoint_errors(tmp_path):
    model = models.get("small_cnn", embedding_dim=4, input_size=32)
    with pytest.raises(ValueError, match="unknown model"):
        checkpoint.save(tmp_path / "x.pt", model, "resnet9000")
    with pytest.raises(TypeError, match=r"extra\['bad'\] is a _NotWeights"):
        checkpoint.save(tmp_path / "x.pt", model, "small_cnn", extra={"bad": _NotWeights()})
    assert not (tmp_path / "x.pt").exists()
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="not an frbook checkpoint"):
        checkpoint.load(tmp_path / "bare.pt")
    torch.save({"format": "frbook-checkpoint", "obj": _NotWeights()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "code.pt")  # weights_only refuses arbitrary objects
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    path = checkpoint.save(tmp_path / "m.pt", model, "small_cnn", {"embedding_dim": 4, "input_size": 32})
    record = torch.load(path, weights_only=True)
    record["model"]["params"]["embedding_dim"] = 5
    torch.save(record, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit small_cnn"):
        checkpoint.load(tmp_path / "wrong.pt")
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.pt")
