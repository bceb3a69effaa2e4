"""The CPU training loop: it learns, it is reproducible, and it says what is wrong."""
import pytest
import torch
from torch import nn

from frbook import losses
from frbook.heads import make_head
from frbook.train import fit


def blobs(classes=4, per_class=64, dim=8, seed=0):
    """Well-separated Gaussian blobs, batched like a DataLoader: a task any loop must learn."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(per_class)
    x = centres[y] + torch.randn(len(y), dim, generator=g) * 0.5
    order = torch.randperm(len(y), generator=g)
    x, y = x[order], y[order]
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(y), 32)]


class TinyNet(nn.Module):
    embedding_dim = 4

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("name", ["softmax", "normface"])
def test_fit_learns_separable_blobs(name):
    torch.manual_seed(0)
    data = blobs()
    model, loss = TinyNet(), losses.get(name)
    head = make_head(loss, 4, 4)
    history = fit(model, head, loss, data, epochs=20, lr=0.1, progress=False, log_every=1)
    assert history.column("loss")[-1] < 0.5 * history.column("loss")[0]
    with torch.no_grad():
        x = torch.cat([b[0] for b in data]); y = torch.cat([b[1] for b in data])
        assert (head(model(x)).argmax(1) == y).float().mean() > 0.95
    assert len(history) == 20 * len(data)
    assert history.last["step"] == 20 * len(data)


def test_fit_is_reproducible():
    def run():
        torch.manual_seed(1)
        model, loss = TinyNet(), losses.get("normface")
        head = make_head(loss, 4, 4)
        fit(model, head, loss, blobs(), steps=20, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(run(), run())


def test_fit_learns_the_scale_without_decaying_it():
    torch.manual_seed(0)
    model, loss = TinyNet(), losses.get("normface", s=2.0, learn_scale=True)
    head = make_head(loss, 4, 4)
    fit(model, head, loss, blobs(), steps=60, lr=0.05, progress=False)
    # Separable classes reward a sharper softmax: the learned scale must have grown.
    assert float(loss.s.detach()) > 2.5


def test_fit_needs_exactly_one_duration():
    model, loss = TinyNet(), losses.get("normface")
    head = make_head(loss, 4, 4)
    with pytest.raises(ValueError, match="exactly one of steps= or epochs="):
        fit(model, head, loss, blobs(), progress=False)
    with pytest.raises(ValueError, match="yielded no batch"):
        fit(model, head, loss, [], steps=3, progress=False)


def test_fit_stops_on_a_non_finite_loss():
    model, loss = TinyNet(), losses.get("softmax")
    head = make_head(loss, 4, 4)
    with torch.no_grad():
        head.fc.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, head, loss, blobs(), steps=3, progress=False)


def test_fit_advances_sphereface_lambda_and_feeds_adaface_its_norms():
    torch.manual_seed(0)
    sphere = losses.get("sphereface")
    model = TinyNet()
    fit(model, make_head(sphere, 4, 4), sphere, blobs(), steps=7, progress=False)
    assert int(sphere.iteration) == 7

    adaface = losses.get("adaface")
    before = adaface.batch_mean.clone()
    history = fit(TinyNet(), make_head(adaface, 4, 4), adaface, blobs(), steps=5, progress=False, log_every=1)
    assert len(history) == 5
    assert not torch.equal(before, adaface.batch_mean)  # the norm statistics moved
