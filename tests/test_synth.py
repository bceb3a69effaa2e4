"""Tests of the synthetic face data set (frbook.data.synth) and its grid plot."""

import matplotlib
import pytest
import torch

from frbook.data import SynthFaces, identity_splits
from frbook.data import synth

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def raw_pixel_verification_accuracy(difficulty, identities=200, per_identity=10, size=64,
                                    seed=0):
    """Best-threshold accuracy of cosine similarity between mean-centred raw pixel vectors,
    on all same-identity pairs and as many random different-identity pairs, of identities
    that no training set uses (ids from 10000)."""
    data = SynthFaces(torch.arange(10_000, 10_000 + identities), per_identity, size=size,
                      difficulty=difficulty, seed=seed)
    x = data.images().flatten(1)
    x = x - x.mean(1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-8)
    labels = data.labels
    i, j = torch.triu_indices(len(data), len(data), 1)
    same = labels[i] == labels[j]
    first, second = i[same], j[same]
    generator = torch.Generator().manual_seed(1)
    a = torch.randint(len(data), (4 * first.numel(),), generator=generator)
    b = torch.randint(len(data), (4 * first.numel(),), generator=generator)
    keep = (labels[a] != labels[b]).nonzero().squeeze(1)[: first.numel()]
    same_scores = (x[first] * x[second]).sum(1)
    different_scores = (x[a[keep]] * x[b[keep]]).sum(1)
    scores = torch.cat([same_scores, different_scores])
    truth = torch.cat([torch.ones_like(same_scores), torch.zeros_like(different_scores)])
    truth = truth[torch.argsort(scores, descending=True)]
    # Predicting 'same' for the k highest scores: correct = true positives + true negatives.
    true_pos = torch.cumsum(truth, 0)
    true_neg = (truth.numel() - truth.sum()) - torch.cumsum(1 - truth, 0)
    return float(((true_pos + true_neg) / truth.numel()).max())


# ---- shapes and values --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 112])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_range(size, channels):
    data = SynthFaces(identities=3, images_per_identity=2, size=size, channels=channels)
    images = data.images()
    assert images.shape == (6, channels, size, size)
    assert images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert images.flatten(1).std(1).min() > 0.02  # a face, not a blank canvas
    image, label = data[5]
    assert image.shape == (channels, size, size) and label == 2


def test_odd_size_renders():
    images = SynthFaces(identities=2, images_per_identity=1, size=17, difficulty=1.0).images()
    assert images.shape == (2, 1, 17, 17) and torch.isfinite(images).all()


def test_dataset_bookkeeping():
    data = SynthFaces(identities=[5, 9, 2], images_per_identity=4)
    assert len(data) == 12 and data.num_classes == 3
    assert data.identities.tolist() == [5, 9, 2]
    assert data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert data[-1][1] == 2
    with pytest.raises(IndexError):
        data[12]


# ---- determinism -------------------------------------------------------------------------------


def test_same_seed_same_pixels_different_seed_different_pixels():
    a = SynthFaces(identities=4, images_per_identity=3, seed=3).images()
    b = SynthFaces(identities=4, images_per_identity=3, seed=3).images()
    c = SynthFaces(identities=4, images_per_identity=3, seed=4).images()
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.05


def test_item_alone_equals_item_in_any_batch():
    data = SynthFaces(identities=10, images_per_identity=5, difficulty=1.0, size=48, channels=3)
    everything = data.images(batch_size=7)
    item = 7 * 5 + 3  # identity 7, image 3
    alone = data.render(torch.tensor([7]), torch.tensor([3]))[0]
    shuffled = data.render(torch.tensor([2, 7, 0]), torch.tensor([4, 3, 1]))[1]
    torch.testing.assert_close(alone, everything[item], atol=1e-6, rtol=0)
    torch.testing.assert_close(shuffled, everything[item], atol=1e-6, rtol=0)
    torch.testing.assert_close(data[item][0], everything[item], atol=1e-6, rtol=0)


def test_identity_depends_only_on_seed_and_identity():
    alone = synth.identity_vector([7], seed=1)
    among = synth.identity_vector([3, 7, 11], seed=1)
    for name, value in alone.items():
        assert torch.equal(value[0], among[name][1]), name
    # the nuisance depends on the image index as well, and not on the batch
    n1 = synth.nuisance_vector([7, 7], [0, 1], seed=1, difficulty=1.0)
    n2 = synth.nuisance_vector([7], [1], seed=1, difficulty=1.0)
    assert torch.equal(n1["rotation"][1:], n2["rotation"])
    assert n1["rotation"][0] != n1["rotation"][1]


def test_windowed_painting_equals_painting_everywhere(monkeypatch):
    """Parts are painted only on the rows and columns where they can appear; check that no
    part is ever cut off, over many identities at the hardest difficulty."""
    # Windows are widened by two pixels, which is least at large sizes: test a large one.
    ids = torch.arange(300) * 7919
    idx = torch.arange(300) * 31
    windowed = synth.render_faces(ids, idx, size=112, difficulty=1.0)
    full = lambda self, *args: (slice(0, self.size), self.coords.view(1, -1, 1))  # noqa: E731
    monkeypatch.setattr(synth._Canvas, "rows", full)
    monkeypatch.setattr(synth._Canvas, "left_columns", lambda self, *args: (
        slice(0, self.half), (-self.coords[: self.half]).view(1, 1, -1)))
    monkeypatch.setattr(synth._Canvas, "columns", lambda self, *args: (
        slice(0, self.size), self.coords.view(1, 1, -1)))
    everywhere = synth.render_faces(ids, idx, size=112, difficulty=1.0)
    torch.testing.assert_close(windowed, everywhere, atol=1e-5, rtol=0)


# ---- splits and loader -------------------------------------------------------------------------


def test_identity_splits_are_disjoint_and_consecutive():
    train, val, test = identity_splits(5, 3, 4, seed=2, images_per_identity=2, size=32)
    assert train.identities.tolist() == list(range(5))
    assert val.identities.tolist() == [5, 6, 7]
    assert test.identities.tolist() == [8, 9, 10, 11]
    assert val.labels.max() == 2 and len(test) == 8
    assert all(d.size == 32 and d.seed == 2 for d in (train, val, test))
    # the same global identity looks the same in a split and in the full data set
    full = SynthFaces(12, 2, size=32, seed=2)
    torch.testing.assert_close(test[3][0], full[2 * 8 + 3][0], atol=1e-6, rtol=0)


def test_loader_yields_every_item_once_per_epoch():
    data = SynthFaces(identities=7, images_per_identity=3, size=32)
    loader = data.loader(batch_size=4, shuffle=True, generator_seed=5)
    assert len(loader) == 6
    reference = data.images()
    seen = []
    for images, labels in loader:
        assert images.shape[1:] == (1, 32, 32) and len(images) == len(labels) <= 4
        for image, label in zip(images, labels):
            match = ((reference - image).abs().flatten(1).max(1).values < 1e-6).nonzero()
            assert match.numel() == 1
            seen.append(int(match))
            assert data.labels[seen[-1]] == label
    assert sorted(seen) == list(range(21))
    assert seen != list(range(21))  # shuffled
    second_epoch = torch.cat([labels for _, labels in loader])
    again = torch.cat([labels for _, labels in data.loader(4, generator_seed=5)])
    assert torch.equal(again, data.labels[seen])  # deterministic given the seed
    assert not torch.equal(second_epoch, again)  # a new order in the next epoch
    assert len(data.loader(4, drop_last=True)) == 5
    # torch's own DataLoader works too, and fetches each batch with one render
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=5)))
    torch.testing.assert_close(images, reference[:5], atol=1e-6, rtol=0)
    assert labels.tolist() == [0, 0, 0, 1, 1]
    assert sum(len(y) for _, y in data.loader(4, shuffle=False, drop_last=True)) == 20


# ---- difficulty --------------------------------------------------------------------------------


def test_difficulty_zero_is_canonical_and_one_varies():
    easy = SynthFaces(identities=[4], images_per_identity=6, difficulty=0.0).images()
    hard = SynthFaces(identities=[4], images_per_identity=6, difficulty=1.0).images()
    assert (easy - easy[:1]).abs().max() < 1e-6  # every image is the canonical portrait
    assert (hard - hard.mean(0)).abs().mean() > 0.05


def test_raw_pixel_verification_gets_harder_with_difficulty():
    easy = raw_pixel_verification_accuracy(0.0, identities=60, per_identity=4)
    medium = raw_pixel_verification_accuracy(0.25, identities=100, per_identity=6)
    default = raw_pixel_verification_accuracy(0.5)
    hard = raw_pixel_verification_accuracy(1.0, identities=100, per_identity=6)
    assert easy > 0.85
    assert easy > medium > default > hard
    assert 0.55 <= default <= 0.70, default


# ---- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"difficulty": -0.1}, r"difficulty must be a number in \[0, 1\]"),
    ({"difficulty": 1.5}, r"difficulty must be a number in \[0, 1\]"),
    ({"size": 8}, r"size must be an integer >= 16"),
    ({"size": 32.0}, r"size must be an integer >= 16"),
    ({"channels": 2}, r"channels must be 1 \(grey\) or 3 \(colour\)"),
    ({"identities": 0}, r"identities must be a positive count"),
    ({"identities": -3}, r"identities must be a positive count"),
    ({"identities": [1, -2]}, r"identities must be non-negative"),
    ({"identities": [1, 1]}, r"identities must not contain duplicate"),
    ({"images_per_identity": 0}, r"images_per_identity must be an integer >= 1"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63\)"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthFaces(**kwargs)


def test_bad_split_and_loader_arguments():
    with pytest.raises(ValueError, match="num_val must be an integer >= 1"):
        identity_splits(3, 0, 2)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        SynthFaces(2, 2).loader(0)
    with pytest.raises(ValueError, match="same length"):
        SynthFaces(2, 2).render(torch.tensor([0, 1]), torch.tensor([0]))


# ---- devices -----------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("channels", [1, 3])
def test_cuda_renders_match_cpu(channels):
    kwargs = dict(identities=20, images_per_identity=4, size=64, channels=channels,
                  difficulty=0.8)
    cpu = SynthFaces(**kwargs).images()
    cuda = SynthFaces(**kwargs, device="cuda").images()
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, atol=2e-3, rtol=0)
    assert (cuda.cpu() - cpu).abs().mean() < 1e-4


# ---- the grid plot -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_draws_grey_and_colour(channels):
    from matplotlib.figure import Figure

    from frbook.viz.images import image_grid

    images = SynthFaces(identities=2, images_per_identity=3, size=32, channels=channels).images()
    fig = image_grid(images, nrow=3, titles=[f"id {k // 3}" for k in range(6)])
    assert isinstance(fig, Figure)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape[:2] == (2 * 33 - 1, 3 * 33 - 1)
    with pytest.raises(ValueError, match="one title per image"):
        image_grid(images, nrow=3, titles=["a"])
