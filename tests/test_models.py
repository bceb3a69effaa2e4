"""Tests for frbook.models: the backbone contract, shapes, parameter counts, gradients, registry.

Kept short for CPU runs: the deep iResNets run one forward pass with batch 2 at 112x112.
"""

from __future__ import annotations

import pytest
import torch

from frbook import models


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def iresnet50():
    torch.manual_seed(0)
    return models.get("iresnet50").eval()


@pytest.fixture(scope="module")
def iresnet100():
    torch.manual_seed(0)
    return models.get("iresnet100").eval()


def check_contract(model, batch, in_channels, size, embedding_dim):
    """Embeddings and feature map have the promised shapes, and feature_map_size agrees."""
    x = torch.rand(batch, in_channels, size, size)
    with torch.no_grad():
        embeddings = model(x)
        again, feature_map = model(x, return_feature_map=True)
    assert embeddings.shape == (batch, embedding_dim)
    assert model.embedding_dim == embedding_dim
    assert feature_map.dim() == 4
    assert feature_map.shape[:2] == (batch, model.feature_channels)
    assert tuple(feature_map.shape[-2:]) == model.feature_map_size(size)
    assert model.feature_map_size() == model.feature_map_size(size)
    assert torch.isfinite(embeddings).all() and torch.isfinite(feature_map).all()
    return embeddings, feature_map


# --- iResNet ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, reference", [("iresnet50", 43.6e6), ("iresnet100", 65.2e6)])
def test_iresnet_parameter_count_matches_the_field(name, reference, request):
    model = request.getfixturevalue(name)
    count = models.num_parameters(model)
    assert abs(count - reference) / reference < 0.01, count


@pytest.mark.parametrize("name", ["iresnet50", "iresnet100"])
def test_iresnet_shapes_at_112(name, request):
    model = request.getfixturevalue(name)
    _, feature_map = check_contract(model, batch=2, in_channels=3, size=112, embedding_dim=512)
    assert feature_map.shape == (2, 512, 7, 7)


def test_iresnet_other_sizes_channels_and_dims():
    model = models.iresnet18(embedding_dim=128, in_channels=1, input_size=64).eval()
    _, feature_map = check_contract(model, batch=2, in_channels=1, size=64, embedding_dim=128)
    assert feature_map.shape == (2, 512, 4, 4)
    assert model.fc.in_features == 512 * 4 * 4


def test_iresnet_embedding_bn_scale_is_fixed():
    # As in InsightFace: the last BatchNorm1d learns a shift but not a scale.
    model = models.iresnet18(embedding_dim=8, input_size=32)
    assert not model.features.weight.requires_grad
    assert torch.all(model.features.weight == 1)
    assert model.features.bias.requires_grad


def test_iresnet_fp16_flag_and_dropout_are_harmless_on_cpu():
    # fp16 autocasts the trunk on CUDA only; on CPU the model runs in float32 as usual.
    model = models.iresnet18(embedding_dim=8, input_size=16, fp16=True, dropout=0.4).eval()
    embeddings, feature_map = model(torch.rand(2, 3, 16, 16), return_feature_map=True)
    assert embeddings.dtype == feature_map.dtype == torch.float32
    assert feature_map.shape == (2, 512, 1, 1)


def test_iresnet18_gradients_reach_the_first_conv():
    model = models.iresnet18(embedding_dim=16, input_size=32).train()
    model(torch.rand(4, 3, 32, 32)).pow(2).sum().backward()
    grad = model.conv1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_iresnet_depths():
    for depth, blocks in [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))]:
        model = models.get(f"iresnet{depth}", input_size=16)
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        assert tuple(len(s) for s in stages) == blocks


# --- MobileFaceNet ----------------------------------------------------------------------------

def test_mobilefacenet_shapes_and_size():
    model = models.get("mobilefacenet").eval()
    _, feature_map = check_contract(model, batch=2, in_channels=3, size=112, embedding_dim=128)
    assert feature_map.shape == (2, 512, 7, 7)
    # Chen et al. (2018) report 0.99M parameters.
    assert 0.95e6 < models.num_parameters(model) < 1.05e6


def test_mobilefacenet_grey_other_size_and_gradients():
    model = models.MobileFaceNet(embedding_dim=64, in_channels=1, input_size=64).train()
    x = torch.rand(4, 1, 64, 64)
    model(x).pow(2).sum().backward()
    first_conv = model.stem[0][0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    model.eval()
    _, feature_map = check_contract(model, batch=2, in_channels=1, size=64, embedding_dim=64)
    assert feature_map.shape == (2, 512, 4, 4)


# --- SmallCNN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64, 112])
@pytest.mark.parametrize("embedding_dim", [2, 3, 64])
def test_small_cnn_sizes_and_dims(size, embedding_dim):
    model = models.SmallCNN(embedding_dim=embedding_dim, input_size=size).eval()
    check_contract(model, batch=3, in_channels=1, size=size, embedding_dim=embedding_dim)


def test_small_cnn_rgb_width_and_odd_size():
    model = models.SmallCNN(embedding_dim=16, in_channels=3, input_size=50, width=8,
                            convs_per_stage=2).eval()
    _, feature_map = check_contract(model, batch=2, in_channels=3, size=50, embedding_dim=16)
    assert feature_map.shape == (2, 32, 4, 4)  # 50 -> 25 -> 13 -> 7 -> 4


def test_small_cnn_gradients_reach_the_first_conv():
    model = models.SmallCNN(embedding_dim=2).train()
    model(torch.rand(8, 1, 64, 64)).pow(2).sum().backward()
    first_conv = model.body[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_small_cnn_learns_with_two_dimensional_embeddings():
    # D = 2 is for drawing features on the circle: a normalised-softmax classifier on top of the
    # 2-d embedding must still separate a few easy classes within a few steps.
    torch.manual_seed(0)
    num_classes, size = 4, 32
    templates = torch.rand(num_classes, 1, size, size)
    model = models.SmallCNN(embedding_dim=2, input_size=size, width=8)
    centres = torch.nn.Parameter(torch.randn(num_classes, 2))
    opt = torch.optim.Adam(list(model.parameters()) + [centres], lr=0.01)
    labels = torch.arange(num_classes).repeat(16)
    for _ in range(60):
        x = (templates[labels] + 0.1 * torch.randn(len(labels), 1, size, size)).clamp(0, 1)
        cos = torch.nn.functional.normalize(model(x)) @ torch.nn.functional.normalize(centres).T
        loss = torch.nn.functional.cross_entropy(16 * cos, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = (templates[labels] + 0.1 * torch.randn(len(labels), 1, size, size)).clamp(0, 1)
        cos = torch.nn.functional.normalize(model(x)) @ torch.nn.functional.normalize(centres).T
    assert (cos.argmax(1) == labels).float().mean() > 0.9


def test_small_cnn_without_final_bn():
    model = models.SmallCNN(embedding_dim=2, final_bn=False, input_size=32)
    assert isinstance(model.features, torch.nn.Identity)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 2)


# --- Pixels: the parameter-free baseline --------------------------------------------------------

def test_pixels_is_the_mean_centred_image_without_parameters():
    model = models.get("pixels", input_size=8)
    assert models.num_parameters(model) == 0 and model.embedding_dim == 64
    assert (model.in_channels, model.input_size) == (1, (8, 8))
    embeddings, _ = check_contract(model, 3, 1, 8, 64)
    x = torch.rand(3, 1, 8, 8)
    flat = x.flatten(1)
    # Up to the model's [0, 1] -> [-1, 1] scaling, the embedding is the centred image, so the
    # cosine of two embeddings is the Pearson correlation of the two images' pixels.
    assert torch.allclose(model(x), 2 * (flat - flat.mean(1, keepdim=True)), atol=1e-6)
    assert torch.allclose(embeddings.mean(1), torch.zeros(3), atol=1e-6)
    a, b = model(x[:2])
    pearson = torch.corrcoef(torch.stack([flat[0], flat[1]]))[0, 1]
    assert torch.allclose(torch.nn.functional.cosine_similarity(a, b, dim=0), pearson, atol=1e-5)
    # Brightness and contrast changes do not change the direction of the embedding.
    assert torch.allclose(torch.nn.functional.normalize(model(0.5 * x + 0.2)),
                          torch.nn.functional.normalize(model(x)), atol=1e-5)


def test_pixels_pooling_colour_and_errors():
    check_contract(models.get("pixels", input_size=8, in_channels=3, pool=4), 2, 3, 8, 3 * 4 * 4)
    model = models.get("pixels", input_size=(8, 6), in_channels=3, pool=(4, 3))
    x = torch.rand(2, 3, 8, 6)
    embeddings, pooled = model(x, return_feature_map=True)
    assert embeddings.shape == (2, 3 * 4 * 3) == (2, model.embedding_dim)
    assert pooled.shape == (2, 3, 4, 3) and model.feature_map_size() == (4, 3)
    # area pooling: each output pixel is the mean of a 2x2 block (of the [-1, 1] image)
    assert torch.allclose(pooled[0, 0, 0, 0], (2 * x[0, 0, :2, :2] - 1).mean(), atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        models.get("pixels", input_size=8, pool=16)
    with pytest.raises(ValueError, match="in_channels"):
        models.get("pixels", in_channels=2)
    with pytest.raises(ValueError, match="input_size"):  # the Backbone's input check
        models.get("pixels", input_size=8)(torch.rand(1, 1, 16, 16))


# --- contract and registry --------------------------------------------------------------------

def test_input_is_normalised_by_the_model():
    # Data stays in [0, 1]; the model maps it to [-1, 1] itself.
    assert torch.equal(models.Backbone.normalise(torch.tensor([0.0, 0.5, 1.0])),
                       torch.tensor([-1.0, 0.0, 1.0]))


@pytest.mark.parametrize("name, kwargs, size, channels", [
    ("small_cnn", {}, 64, 1),
    ("iresnet18", {"input_size": 32}, 32, 3),
    ("mobilefacenet", {"input_size": 32}, 32, 3),
])
def test_eval_mode_is_deterministic(name, kwargs, size, channels):
    model = models.get(name, **kwargs)
    model.train()
    model(torch.rand(4, channels, size, size))  # move the running statistics off their init
    model.eval()
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        # and independent of the rest of the batch
        assert torch.allclose(model(x)[:1], model(x[:1]), rtol=1e-4, atol=1e-4)


def test_wrong_input_shape_says_how_to_fix_it():
    model = models.SmallCNN(input_size=64)
    with pytest.raises(ValueError, match="input_size=.*32"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="in_channels=3"):
        model(torch.rand(2, 3, 64, 64))


def test_feature_map_size_arithmetic():
    model = models.SmallCNN(input_size=16)
    assert model.feature_map_size(112) == (7, 7)
    assert model.feature_map_size((112, 96)) == (7, 6)
    assert model.feature_map_size(16) == (1, 1)
    with pytest.raises(ValueError):
        models.SmallCNN(input_size=8)


def test_registry():
    assert models.available() == ("small_cnn", "iresnet18", "iresnet34", "iresnet50",
                                  "iresnet100", "mobilefacenet", "pixels")
    model = models.get("small_cnn", embedding_dim=3, in_channels=3, input_size=32)
    assert isinstance(model, models.SmallCNN) and model.in_channels == 3
    with pytest.raises(ValueError) as err:
        models.get("resnet50")
    for name in models.available():
        assert name in str(err.value)
