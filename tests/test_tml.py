"""The transformer-metric loss (frbook.losses.tml): shapes on every backbone, gradients, errors, fusion,
and its use from fit, the trainer's config and the comparison configs."""
import pytest
import torch

from frbook import losses, models
from frbook.heads import make_head
from frbook.losses.tml import FusedModel, TransformerMetricLoss


def build(name, num_classes=5, **params):
    size = 32 if name == "small_cnn" else 112
    channels = 1 if name == "small_cnn" else 3
    kwargs = {"width": 8} if name == "small_cnn" else {}
    model = models.get(name, embedding_dim=16, in_channels=channels, input_size=size, **kwargs)
    tml = TransformerMetricLoss.for_backbone(model, num_classes, width=16, heads=2, **params)
    return model, tml, torch.rand(2, channels, size, size)


@pytest.mark.parametrize("name", ["small_cnn", "iresnet18", "mobilefacenet"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes_on_backbones(name, pooling):
    torch.manual_seed(0)
    model, tml, x = build(name, pooling=pooling, embedding_dim=12)
    labels = torch.tensor([0, 3])
    embeddings, fmap = model(x, return_feature_map=True)
    assert fmap.shape[-2:] == model.feature_map_size()
    assert tml.embed(fmap).shape == (2, 12)
    head = make_head(tml, model.embedding_dim, 5)
    value = tml(head(embeddings), labels, feature_map=fmap)
    assert value.dim() == 0 and torch.isfinite(value)
    tokens = fmap.shape[-2] * fmap.shape[-1] + (pooling == "cls")
    maps = tml.attention_maps(fmap)
    assert len(maps) == 1 and maps[0].shape == (2, 2, tokens, tokens)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, tokens), atol=1e-5)


def _grads(params):
    return [None if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("base", ["arcface", "cosface"])
def test_weight_zero_gives_the_base_loss_gradients_exactly(base):
    torch.manual_seed(0)
    model = models.get("small_cnn", embedding_dim=8, input_size=32, width=4).double()
    tml = TransformerMetricLoss.for_backbone(model, 4, base_loss=base, weight=0.0, width=8, heads=2).double()
    head = make_head(tml, 8, 4).double()
    x, labels = torch.rand(6, 1, 32, 32, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])

    embeddings, fmap = model(x, return_feature_map=True)
    tml(head(embeddings), labels, feature_map=fmap).backward()
    with_tml = _grads(model.parameters())
    assert all(p.grad is None for p in tml.parameters()), "weight 0: the branch must get no gradient"

    model.zero_grad(set_to_none=True)
    plain = losses.get(base).double()
    plain(head(model(x)), labels).backward()
    for a, b in zip(with_tml, _grads(model.parameters())):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_weight_positive_trains_the_branch_and_changes_the_backbone_gradient():
    torch.manual_seed(0)
    model = models.get("small_cnn", embedding_dim=8, input_size=32, width=4).double()
    head = make_head(losses.get("arcface"), 8, 4).double()
    x, labels = torch.rand(6, 1, 32, 32, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    grads = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(1)
        tml = TransformerMetricLoss.for_backbone(model, 4, weight=weight, width=8, heads=2).double()
        model.zero_grad(set_to_none=True)
        embeddings, fmap = model(x, return_feature_map=True)
        parts = tml.parts(head(embeddings), labels, feature_map=fmap)
        parts["total"].backward()
        grads[weight] = model.body[0].weight.grad.clone()
        if weight:
            assert torch.allclose(parts["total"], parts["metric"] + 0.5 * parts["transformer"])
            branch = [p for p in tml.parameters() if p.requires_grad]
            assert branch and all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch)
    assert not torch.allclose(grads[0.0], grads[0.5])


def test_bad_shapes_are_clear_errors():
    model, tml, x = build("small_cnn")
    _, fmap = model(x, return_feature_map=True)  # (2, 32, 2, 2)
    with pytest.raises(ValueError, match="channels.*backbone_channels=16"):
        tml.embed(fmap[:, :16])
    with pytest.raises(ValueError, match=r"sized for 2x2.*map_size=\(4, 4\)"):
        tml.embed(torch.rand(2, 32, 4, 4))
    with pytest.raises(ValueError, match="feature map"):
        tml.embed(torch.rand(2, 32, 4))
    with pytest.raises(ValueError, match="needs the backbone's feature map"):
        tml(torch.rand(2, 5) * 2 - 1, torch.tensor([0, 1]))


@pytest.mark.parametrize("bad, match", [
    ({"width": 10, "heads": 4}, "divisible"), ({"pooling": "max"}, "pooling"),
    ({"weight": -1.0}, "weight"), ({"depth": 0}, "depth"), ({"base_loss": "softmax"}, "cosine loss"),
    ({"base_loss": "arcfcae"}, "known losses"),
])
def test_bad_parameters(bad, match):
    with pytest.raises(ValueError, match=match):
        TransformerMetricLoss(32, 8, 5, (2, 2), **bad)


def test_fused_embedding_is_two_unit_halves():
    torch.manual_seed(0)
    model, tml, x = build("small_cnn", embedding_dim=12)
    fused = FusedModel(model, tml).eval()
    with torch.no_grad():
        out = fused(x)
    assert out.shape == (2, 16 + 12) and fused.embedding_dim == 28
    assert torch.allclose(out[:, :16].norm(dim=1), torch.ones(2), atol=1e-6)
    assert torch.allclose(out[:, 16:].norm(dim=1), torch.ones(2), atol=1e-6)


def test_fit_trains_the_trio_and_leaves_plain_losses_alone():
    from frbook.data import SynthFaces
    from frbook.train import fit

    data = SynthFaces(identities=4, images_per_identity=4, size=32, seed=0)
    torch.manual_seed(0)
    model = models.get("small_cnn", embedding_dim=8, input_size=32, width=4)
    tml = TransformerMetricLoss.for_backbone(model, 4, weight=1.0, width=8, heads=2)
    head = make_head(tml, 8, 4)
    before = tml.tokens.weight.detach().clone()
    history = fit(model, head, tml, data, steps=3, batch_size=8, progress=False)
    assert len(history) and not torch.equal(before, tml.tokens.weight)
    assert tml.hparams()["tml_weight"] == 1.0


# -- the trainer's config and the comparison configs -------------------------------------------
def tiny_config(**loss):
    from frbook.train.config import load_config

    raw = {
        "data": {"identities": 12, "val_identities": 6, "images_per_identity": 4, "size": 16},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8, "width": 4}},
        "loss": {"name": "cosface", "params": {"s": 16, "m": 0.2}, **loss},
        "train": {"steps": 4, "batch_size": 8, "log_every": 2, "device": "cpu"},
        "eval": {"every": 0, "targets": ["synth"], "batch_size": 64},
    }
    return load_config(raw=raw)


def test_trainer_trains_and_resumes_with_tml(tmp_path):
    from frbook.train.trainer import train

    config = tiny_config(aux="tml", tml={"weight": 0.5, "width": 8, "heads": 2, "pooling": "mean"})
    whole = train(config, out_dir=tmp_path / "whole", progress=False)
    part = train(config, out_dir=tmp_path / "parts", progress=False, stop_at=2)
    rest = train(config, out_dir=tmp_path / "parts", progress=False, resume="auto")
    assert whole["finished"] and not part["finished"] and rest["finished"]
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["training"]["loss"]
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["training"]["loss"]
    assert "encoder.layers.0.self_attn.in_proj_weight" in a
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole["metrics"] == rest["metrics"]


@pytest.mark.parametrize("loss, match", [
    ({"tml": {"weight": 0.5}}, "loss.aux=tml"),
    ({"aux": "tml", "tml": {"wieght": 0.5}}, "unknown parameter 'wieght'"),
    ({"aux": "tml", "tml": {"width": 10, "heads": 4}}, "divisible"),
    ({"aux": "tml", "tml": {"pooling": "max"}}, "pooling"),
    ({"aux": "transformer"}, "loss.aux must be one of"),
])
def test_bad_tml_configs_name_the_key(loss, match):
    from frbook.train.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny_config(**loss)


def test_tml_set_overrides_validate():
    from frbook.train.config import load_config

    config = load_config(raw={"train": {"steps": 2}}, overrides=["loss.aux=tml", "loss.tml.weight=0.1",
                                                                 "loss.tml.depth=2"])
    assert config["loss"]["aux"] == "tml" and config["loss"]["tml"] == {"weight": 0.1, "depth": 2}


def test_shipped_tml_comparison_config_validates():
    from frbook.experiment import load_comparison
    from frbook.provenance import REPO

    config = load_comparison(REPO / "configs" / "tml_cpu.yaml")
    assert any(entry.get("loss", {}).get("aux") == "tml" for entry in config["compare"]["losses"].values())


def test_compare_with_tml_reports_cnn_and_fused_metrics(tmp_path):
    import json

    import yaml

    from frbook.experiment import compare, load_comparison

    config = {
        "name": "tiny_tml",
        "data": {"identities": 6, "val_identities": 2, "test_identities": 6,
                 "images_per_identity": 4, "test_images_per_identity": 4, "size": 32, "flip": False},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8}},
        "train": {"steps": 2, "batch_size": 8},
        "eval": {"targets": [], "num_pairs": 40, "fars": [0.1]},
        "compare": {"seeds": [0], "losses": {
            "cosface": {"loss": {"name": "cosface", "params": {"s": 10}}},
            "cosface_tml": {"loss": {"name": "cosface", "params": {"s": 10}, "aux": "tml",
                                     "tml": {"weight": 0.5, "width": 8, "heads": 2}}}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    plain, with_tml = (json.loads(p.read_text()) for p in compare(path, out_dir=tmp_path / "out", progress=False,
                                                                  runs_dir=tmp_path / "runs"))
    assert "fused" not in plain["metrics"]
    assert 0 <= with_tml["metrics"]["fused"]["accuracy"] <= 1 and "0.1" in with_tml["metrics"]["fused"]["tar_at_far"]
    assert with_tml["loss_params"]["tml_weight"] == 0.5 and with_tml["loss_params"]["s"] == 10
    assert "maxrss_growth_bytes" in with_tml["metrics"] or "cuda_peak_bytes" in with_tml["metrics"]

    config["compare"]["losses"]["cosface_tml"]["loss"]["tml"] = {"width": 10, "heads": 4}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="cosface_tml: loss.tml: .*divisible"):
        load_comparison(path)
