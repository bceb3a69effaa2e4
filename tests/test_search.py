"""Loss function search: the losses against their closed forms (float64, value and gradient, edges),
the policy's REINFORCE step, the two candidate engines, the loop's resume, and the config runner.

Tests answer the official code's known mistakes (chapter 7): the loss is one softmax, not
two (test_search_softmax_matches_closed_form); Random-Softmax trains with the a it sampled
(test_random_softmax_trains_with_its_sampled_a); a sample's gradient does not depend on how many
samples share its label (test_search_softmax_gradient_ignores_repeated_labels); the policy's mean
moves from any start (test_policy_mean_moves_from_every_start); the reward never sees the test
identities (test_reward_never_sees_test_identities). The official Random-Softmax neither rewards
nor copies (test_official_random_softmax_neither_rewards_nor_copies), and the official schedule is
an option (test_official_schedule_fixes_a_then_rewards).
"""
import math

import pytest
import torch


from frbook import losses, models, search
from frbook.heads import CosineClassifier
from frbook.losses.amlfs import piecewise_linear

pytestmark = pytest.mark.usefixtures("one_thread")

S = 30.0


def batch(b=6, c=5, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    cos = (torch.rand(b, c, generator=g, dtype=torch.float64) * 2 - 1) * spread
    labels = torch.randint(0, c, (b,), generator=g)
    return cos.requires_grad_(True), labels


def softmax_target(logits, labels):
    return logits.softmax(1).gather(1, labels[:, None]).squeeze(1)


# --- Search-Softmax -------------------------------------------------------------------------------

@pytest.mark.parametrize("a", [0.0, -0.5, -1.0, -10.0, -1e4, -1e9])
def test_search_softmax_matches_closed_form(a):
    """L = -log(p / (a p + 1 - a)) with p ONE softmax of s cos, and dL/dcos in closed form."""
    cos, labels = batch()
    loss = losses.get("search_softmax", s=S, a=a)
    value = loss(cos, labels)
    p = softmax_target(S * cos, labels)
    expected = -torch.log(p / (a * p + 1 - a)).mean()
    assert torch.allclose(value, expected, rtol=1e-12, atol=1e-12)

    (grad,) = torch.autograd.grad(value, cos)
    probs = (S * cos).softmax(1).detach()
    p = p.detach()
    p_m = search.reduce_probability(p, a)
    # The target's share falls to p_m; the others share 1 - p_m in the proportions of softmax.
    shifted = probs * ((1 - p_m) / (1 - p))[:, None]
    shifted.scatter_(1, labels[:, None], p_m[:, None])
    onehot = torch.nn.functional.one_hot(labels, cos.shape[1]).double()
    assert torch.allclose(grad, S * (shifted - onehot) / cos.shape[0], rtol=1e-10, atol=1e-12)


def test_search_softmax_is_stable_where_the_formula_underflows():
    """float32, a = -1e9 and a target probability near 1e-39: p / (a p + 1 - a) underflows to 0
    and the direct formula gives inf; the loss stays finite and equals a float64 reference."""
    cos = torch.tensor([[-1.0, 1.0, 0.3]], requires_grad=True)
    labels = torch.tensor([0])
    s, a = 45.0, -1e9
    loss = losses.get("search_softmax", s=s, a=a)(cos, labels)
    p = softmax_target(s * cos.detach(), labels)
    assert p < 1e-38 and not torch.isfinite(-torch.log(p / (a * p + 1 - a)))
    c64 = cos.detach().double()
    p64 = softmax_target(s * c64, labels)
    reference = -torch.log(p64 / (a * p64 + 1 - a))
    assert torch.isfinite(loss) and math.isclose(loss.item(), reference.item(), rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(cos.grad).all()


def test_search_softmax_arguments():
    with pytest.raises(ValueError, match="a must be a number <= 0"):
        losses.get("search_softmax", a=0.5)
    with pytest.raises(ValueError, match="a must be"):
        losses.get("search_softmax", a=float("-inf"))
    cos, labels = batch()
    # a = 0 is plain normalised softmax; a constant a is CosFace with m = log(1 - a) / s.
    assert torch.allclose(losses.get("search_softmax", s=S, a=0.0)(cos, labels), losses.get("normface", s=S)(cos, labels))
    a = -1000.0
    m = search.cosface_margin(a, S)
    assert torch.allclose(losses.get("search_softmax", s=S, a=a).logits(cos, labels),
                          losses.get("cosface", s=S, m=m).logits(cos, labels), atol=1e-12)


@pytest.mark.parametrize("name, params", [
    ("cosface", {"s": S, "m": 0.35}), ("arcface", {"s": S, "m": 0.5}), ("sphereface", {"s": S, "m": 4}),
    ("combined", {"s": S, "m1": 1.0, "m2": 0.3, "m3": 0.2}), ("normface", {"s": S}),
])
def test_every_margin_loss_is_a_probability_reduction(name, params):
    """With a from modulating_factor, h(a, p) is the target probability under the loss's logits; a <= 0."""
    loss = losses.get(name, **params)
    cos, labels = batch(b=50, c=7, seed=3, spread=0.9)
    cos = cos.detach()
    a = search.modulating_factor(loss, cos, labels)
    p = softmax_target(float(loss.s) * cos, labels)  # NormFace keeps s as a float32 parameter
    assert torch.allclose(search.reduce_probability(p, a), softmax_target(loss.logits(cos, labels), labels),
                          rtol=1e-9, atol=1e-300)
    assert (a <= 1e-12).all()
    theta = torch.acos(cos.gather(1, labels[:, None]).squeeze(1))
    assert torch.allclose(search.modulating_curve(loss, theta), a, rtol=1e-9)


def test_modulating_factor_of_cosface_is_constant_and_refusals():
    cos, labels = batch(b=20, seed=1)
    a = search.modulating_factor(losses.get("cosface", s=S, m=0.35), cos.detach(), labels)
    assert torch.allclose(a, torch.full_like(a, 1 - math.exp(S * 0.35)))
    for name in ("softmax", "p2sgrad"):
        with pytest.raises(ValueError, match="modulating factor"):
            search.modulating_factor(losses.get(name), cos.detach(), labels)
    curricular = losses.get("curricularface", s=S, m=0.5)
    curricular.t.fill_(0.5)  # a trained t, so hard negatives are re-weighted
    cos = torch.full((4, 5), 0.8, dtype=torch.float64)
    cos[:, 0] = 0.1
    with pytest.raises(ValueError, match="non-target logits"):
        search.modulating_factor(curricular, cos, torch.zeros(4, dtype=torch.long))


# --- AM-LFS ---------------------------------------------------------------------------------------

def test_piecewise_linear_pieces_and_ends():
    slopes = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    intercepts = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 0.9, 1.0, 1.5], dtype=torch.float64)
    # Three pieces on [-1, 1]: [-1, -1/3), [-1/3, 1/3), [1/3, 1]; outside, the end pieces.
    expected = torch.tensor([-1.0, -0.5, 0.5, 0.5, 0.1, 0.0, -0.5], dtype=torch.float64)
    assert torch.allclose(piecewise_linear(x, slopes, intercepts, -1.0, 1.0), expected)


def test_amlfs_identity_and_cosface():
    cos, labels = batch(b=8, c=6, seed=2)
    identity = losses.get("amlfs", s=S)
    assert torch.allclose(identity(cos, labels), losses.get("normface", s=S)(cos, labels))
    shifted = losses.get("amlfs", s=S, slopes=[1.0] * 6, intercepts=[-0.35] * 6)
    assert torch.allclose(shifted(cos, labels), losses.get("cosface", s=S, m=0.35)(cos, labels))
    prob = losses.get("amlfs", s=S, space="probability")
    assert torch.allclose(prob(cos, labels), losses.get("normface", s=S)(cos, labels))
    # A map below the identity lowers the probability: a larger loss.
    lower = losses.get("amlfs", s=S, space="probability", slopes=[0.5] * 6, intercepts=[0.0] * 6)
    assert torch.allclose(lower(cos, labels), prob(cos, labels) + math.log(2))
    with pytest.raises(ValueError, match="same, non-zero length"):
        losses.get("amlfs", slopes=[1.0], intercepts=[0.0, 1.0])
    with pytest.raises(ValueError, match="space must be"):
        losses.get("amlfs", space="angle")


@pytest.mark.parametrize("space", [search.SearchSoftmaxSpace(s=S), search.SearchSoftmaxSpace(s=S, mode="abs_local"),
                                   search.AMLFSSpace(s=S), search.AMLFSSpace(s=S, space="probability", pieces=3)])
def test_spaces_evaluate_candidates_like_their_losses(space):
    """losses() of M stacked candidates equals each candidate's own loss object."""
    g = torch.Generator().manual_seed(0)
    x = space.initial_mean() + 0.3 * torch.randn(3, space.dim, generator=g, dtype=torch.float64)
    cos = torch.rand(3, 10, 7, generator=g, dtype=torch.float64) * 2 - 1
    labels = torch.randint(0, 7, (10,), generator=g)
    together = space.losses(cos, labels, x)
    alone = torch.stack([space.to_loss(x[k])(cos[k], labels) for k in range(3)])
    assert torch.allclose(together, alone, rtol=1e-10)


# --- the policy -----------------------------------------------------------------------------------

def test_policy_log_prob_and_reinforce_gradient():
    policy = search.GaussianPolicy(torch.tensor([0.3, -1.0]), sigma=0.5)
    x = torch.tensor([[0.1, -0.5], [1.0, -2.0], [0.4, -1.0]], dtype=torch.float64)
    normal = torch.distributions.Normal(policy.mean.detach(), 0.5)
    assert torch.allclose(policy.log_prob(x), normal.log_prob(x).sum(-1))
    rewards = torch.tensor([1.0, -1.0, 0.25], dtype=torch.float64)
    surrogate = -(policy.log_prob(x) * rewards).sum()
    (grad,) = torch.autograd.grad(surrogate, policy.mean)
    expected = -(rewards[:, None] * (x - policy.mean.detach()) / 0.5 ** 2).sum(0)
    assert torch.allclose(grad, expected)


def test_normalise_rewards():
    r = search.normalise_rewards(torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64))
    assert torch.allclose(r, torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64))
    assert torch.equal(search.normalise_rewards(torch.tensor([0.5, 0.5])), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("start", [-1.0, 0.0, 0.5, 3.0])
def test_policy_mean_moves_from_every_start(start):
    """REINFORCE with normalised rewards climbs a toy reward peaked at x = 2 from any start,
    including 0 and negative means (a ReLU on the mean, as in the official code, would freeze those)."""
    policy = search.GaussianPolicy(torch.tensor([start]), sigma=0.2, lr=0.05)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        x = policy.sample(8, g)
        policy.update(x, search.normalise_rewards(-(x[:, 0] - 2.0) ** 2))
    assert abs(policy.mean.item() - 2.0) < 0.2


# --- candidates and the loop ----------------------------------------------------------------------

def tiny_network(classes=12, dim=8, seed=0):
    torch.manual_seed(seed)
    backbone = models.get("small_cnn", embedding_dim=dim, in_channels=1, input_size=16, width=4)
    return backbone, CosineClassifier(dim, classes)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("device, torch_kernel", [("cpu", True), ("cpu", False), pytest.param("cuda", False, marks=CUDA)])
def test_engines_agree_in_float64(device, torch_kernel, monkeypatch):
    """The stacked engine (vmap, StackableBatchNorm) computes what the loop computes, on the CPU
    (with torch's batch norm kernel, and with the plain operations that CUDA runs) and on CUDA."""
    monkeypatch.setattr(search.candidates.StackableBatchNorm, "torch_kernel_on_cpu", torch_kernel)
    backbone, head = tiny_network()
    backbone, head = backbone.double().to(device), head.double().to(device)
    space = search.SearchSoftmaxSpace(s=S)
    x = torch.tensor([[1.0], [0.3], [2.0]], dtype=torch.float64, device=device)
    engines = [search.StackedCandidates(backbone, head, 3), search.LoopCandidates(backbone, head, 3)]
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        images = torch.rand(10, 1, 16, 16, generator=g, dtype=torch.float64).to(device)
        labels = torch.randint(0, 12, (10,), generator=g).to(device)
        outs = [e.cosines(images) for e in engines]
        assert torch.allclose(outs[0], outs[1], atol=1e-12)
        for e, out in zip(engines, outs):
            e.step(space.losses(out, labels, x))
        if step == 1:
            for e in engines:
                e.copy_from(2)
    for k in range(3):
        a, b = (e.network(k).state_dict() for e in engines)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name].double(), b[name].double(), atol=1e-10), name
    # After copy_from(2) the candidates differ only by what they learned since: not equal.
    first, second = (engines[0].network(k).state_dict()["head.weight"] for k in (0, 1))
    assert not torch.equal(first, second)


@pytest.mark.parametrize("make", [
    lambda: torch.nn.BatchNorm2d(5), lambda: torch.nn.BatchNorm1d(5, affine=False),
    lambda: torch.nn.BatchNorm2d(5, momentum=None), lambda: torch.nn.BatchNorm1d(5, track_running_stats=False),
])
@pytest.mark.parametrize("torch_kernel", [False, True])
def test_stackable_batch_norm_is_batch_norm_in_float64(make, torch_kernel, monkeypatch):
    """Output, input and parameter gradients, running statistics: training for three batches, then
    evaluation, equal nn.BatchNorm's (the stacked engine runs it in their place under vmap)."""
    monkeypatch.setattr(search.candidates.StackableBatchNorm, "torch_kernel_on_cpu", torch_kernel)
    torch.manual_seed(0)
    native = make().double()
    with torch.no_grad():
        for p in native.parameters():
            p.add_(torch.rand_like(p))
    mine = search.candidates.StackableBatchNorm(native).double()
    g = torch.Generator().manual_seed(1)
    shape = (6, 5, 3, 4) if isinstance(native, torch.nn.BatchNorm2d) else (6, 5)
    for training in (True, True, True, False):
        native.train(training), mine.train(training)
        x = (3 * torch.rand(shape, generator=g, dtype=torch.float64) + 1).requires_grad_(True)
        weights = torch.rand(shape, generator=g, dtype=torch.float64)
        outs = [m(x) for m in (native, mine)]
        assert torch.allclose(outs[0], outs[1], atol=1e-12)
        grads = [torch.autograd.grad((out * weights).sum(), [x, *m.parameters()]) for out, m in zip(outs, (native, mine))]
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-10)
        for (name, a), b in zip(native.named_buffers(), mine.buffers()):
            assert torch.allclose(a.double(), b.double(), atol=1e-12), name


def test_stacked_engine_runs_no_native_batch_norm():
    """CUDA's batch norm cannot run under vmap (it asks for the memory format): the network the
    stacked engine runs has none left, and keeps the ordinary network's tensor names."""
    backbone = models.get("iresnet18", embedding_dim=8, in_channels=1, input_size=16)
    engine = search.StackedCandidates(backbone, CosineClassifier(8, 4), 2)
    kinds = {type(m) for m in engine.skeleton.modules()}
    assert search.candidates.StackableBatchNorm in kinds
    assert not any(issubclass(k, torch.nn.modules.batchnorm._BatchNorm) for k in kinds)
    assert set(engine.params) | set(engine.buffers) == set(engine.template.state_dict())


def test_auto_engine_is_the_loop_on_a_cpu_and_stacked_on_a_gpu():
    pick = search.candidates.pick_engine
    assert pick("auto", "cpu") == "loop" and pick("auto", torch.device("cpu")) == "loop"
    assert pick("auto", "cuda") == "stacked" and pick("auto", "cuda:1") == "stacked"
    assert pick("stacked", "cpu") == "stacked" and pick("loop", "cuda") == "loop"
    backbone, head = tiny_network()
    assert isinstance(search.make_candidates("auto", backbone, head, 2), search.LoopCandidates)
    assert isinstance(search.make_candidates("stacked", backbone, head, 2), search.StackedCandidates)
    assert search.SearchSettings().engine == "auto"
    with pytest.raises(ValueError, match="known: auto, stacked, loop"):
        search.make_candidates("vmap", backbone, head, 2)
    with pytest.raises(ValueError, match="engine must be one of auto, stacked, loop"):
        search.SearchSettings(engine="fast")


def test_copy_from_makes_every_candidate_the_best():
    backbone, head = tiny_network()
    stacked = search.StackedCandidates(backbone, head, 3)
    images, labels = torch.rand(8, 1, 16, 16), torch.randint(0, 12, (8,))
    stacked.step(search.SearchSoftmaxSpace(s=S).losses(stacked.cosines(images), labels,
                                                       torch.tensor([[0.1], [1.0], [3.0]])))
    stacked.copy_from(1)
    best = stacked.network(1).state_dict()
    for k in (0, 2):
        assert all(torch.equal(best[n], t) for n, t in stacked.network(k).state_dict().items())
    momentum = [s["momentum_buffer"] for s in stacked.optimizer.state.values()]
    assert all(torch.equal(m[0], m[1]) and torch.equal(m[2], m[1]) for m in momentum)


class SpySpace:
    """A search space that records the samples its losses were computed with."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []
        self.dim = inner.dim

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def losses(self, cos, labels, x):
        self.seen.append(x.clone())
        return self.inner.losses(cos, labels, x)


class TinyData:
    """A re-iterable of 3 fixed batches of 16x16 images, 12 classes."""

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.batches = [(torch.rand(8, 1, 16, 16, generator=g), torch.randint(0, 12, (8,), generator=g))
                        for _ in range(3)]

    def __iter__(self):
        return iter(self.batches)


def reward_by_norm(backbone):
    """A cheap deterministic reward that differs between candidates."""
    return float(sum(p.detach().double().sum() for p in backbone.parameters()))


def run_tiny(method="search", epochs=3, engine="stacked", reward=reward_by_norm, schedule=None, **kwargs):
    backbone, head = tiny_network()
    settings = search.SearchSettings(method=method, candidates=3, epochs=epochs, steps_per_epoch=2, batch_size=8,
                                     engine=engine, seed=0, **(schedule or {}))
    space = SpySpace(search.SearchSoftmaxSpace(s=S))
    result = search.search(backbone, head, space, TinyData(), reward, settings, progress=False, **kwargs)
    return result, space


def never_called(backbone):
    raise AssertionError("this search must not be rewarded")


@pytest.mark.parametrize("method", ["random", "random_best"])
def test_random_softmax_trains_with_its_sampled_a(method):
    result, space = run_tiny(method=method)
    assert all(r["policy_mean"] == [1.0] for r in result.history)  # Random-Softmax never updates
    for epoch, record in enumerate(result.history):
        sampled = torch.tensor(record["samples"], dtype=torch.float64)
        for step in range(2):  # every step of the epoch used that epoch's samples, not a default a
            assert torch.equal(space.seen[2 * epoch + step], sampled)
        assert len({round(d["a"]) for d in record["losses"]}) == 3
    searched, _ = run_tiny(method="search")
    assert searched.history[-1]["policy_mean"] != [1.0]


def test_search_resumes_exactly(tmp_path):
    whole, _ = run_tiny(epochs=3)
    state = tmp_path / "state.pt"
    first, _ = run_tiny(epochs=3, state_path=state, stop_after=1)
    assert len(first.history) == 1 and state.exists()
    resumed, _ = run_tiny(epochs=3, state_path=state)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    for (n, a), b in zip(whole.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(a, b), n
    other = tmp_path / "other.pt"
    run_tiny(epochs=3, state_path=other, stop_after=1)
    with pytest.raises(ValueError, match="another search"):
        run_tiny(method="random", epochs=3, state_path=other)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="method"):
        search.SearchSettings(method="grid")
    with pytest.raises(ValueError, match="candidates"):
        search.SearchSettings(candidates=0)
    with pytest.raises(ValueError, match="engine"):
        search.make_candidates("threads", *tiny_network(), 2)
    with pytest.raises(ValueError, match="unknown search space"):
        search.make_space("sphereface")


def test_learning_rate_schedules():
    """The paper's steps (divide by 10 after epochs 4, 8, 10) and the book's warm-up and cosine."""
    step = search.SearchSettings(epochs=12, steps_per_epoch=10, lr=0.1)
    assert (step.schedule, step.milestones, step.weight_decay) == ("step", (4, 8, 10), 1e-4)
    rates = [step.lr_at(i) for i in range(120)]
    assert rates[39] == pytest.approx(0.1) and rates[40] == pytest.approx(0.01)
    assert rates[80] == pytest.approx(1e-3) and rates[119] == pytest.approx(1e-4)
    cosine = search.SearchSettings(epochs=4, steps_per_epoch=10, lr=0.1, schedule="cosine", warmup_steps=5)
    assert cosine.lr_at(0) == pytest.approx(0.02) and cosine.lr_at(4) == pytest.approx(0.1)
    assert cosine.lr_at(39) < 1e-3
    with pytest.raises(ValueError, match="schedule"):
        search.SearchSettings(schedule="poly")


def test_official_random_softmax_neither_rewards_nor_copies(tmp_path):
    state = tmp_path / "state.pt"
    result, _ = run_tiny(method="random", reward=never_called, state_path=state)
    assert all(r["rewards"] is None and r["best"] is None for r in result.history)
    saved = torch.load(state, weights_only=True)
    nets = [c["network"] for c in saved["candidates"]]  # three networks, each trained on its own
    assert len(nets) == 3 and any(not torch.equal(nets[0][n], nets[1][n]) for n in nets[0])
    assert all(torch.equal(t, nets[0][n]) for n, t in result.network.state_dict().items())  # the result: candidate 0
    # The ablation rewards every epoch and copies the best: the saved candidates are one network.
    ablation, _ = run_tiny(method="random_best", state_path=tmp_path / "best.pt")
    assert all(r["best"] == max(range(3), key=r["rewards"].__getitem__) for r in ablation.history)
    assert "candidate" in torch.load(tmp_path / "best.pt", weights_only=True)


@pytest.mark.parametrize("reward_every, rewarded", [(2, [4, 6]), (1, [3, 4, 5, 6])])
def test_official_schedule_fixes_a_then_rewards(reward_every, rewarded):
    """fixed_epochs=2: the initial mean for two epochs, then samples; rewards after them, every reward_every."""
    result, space = run_tiny(epochs=6, schedule={"fixed_epochs": 2, "reward_every": reward_every})
    assert [r["epoch"] for r in result.history if r["rewards"] is not None] == rewarded
    for step, x in enumerate(space.seen):
        fixed = step < 2 * 2  # two epochs of two steps
        assert torch.equal(x, torch.ones(3, 1, dtype=x.dtype)) == fixed, step
    first = rewarded[0] - 1
    assert all(r["policy_mean"] == [1.0] for r in result.history[:first])  # nothing moves before the first reward
    assert result.history[first]["policy_mean"] != [1.0]
    default = search.SearchSettings(epochs=4)
    assert [default.rewarded(e) for e in range(4)] == [True] * 4
    assert not any(search.SearchSettings(method="random", epochs=4).rewarded(e) for e in range(4))


@pytest.mark.parametrize("method, schedule, stop", [("random", {}, 1), ("search", {"fixed_epochs": 2, "reward_every": 2}, 3)])
def test_search_resumes_exactly_with_candidates_apart(tmp_path, method, schedule, stop):
    """Stopped after an epoch without a copy, the candidates differ; each is saved and restored."""
    whole, _ = run_tiny(method=method, epochs=4, schedule=schedule)
    state = tmp_path / "state.pt"
    run_tiny(method=method, epochs=4, schedule=schedule, state_path=state, stop_after=stop)
    assert "candidates" in torch.load(state, weights_only=True)
    resumed, _ = run_tiny(method=method, epochs=4, schedule=schedule, state_path=state)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    for (n, a), b in zip(whole.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(a, b), n


def test_schedule_settings_and_the_renamed_local_mode():
    with pytest.raises(ValueError, match="fixed_epochs"):
        search.SearchSettings(fixed_epochs=-1)
    with pytest.raises(ValueError, match="reward_every"):
        search.SearchSettings(reward_every=0)
    with pytest.raises(ValueError, match="abs_local"):
        search.make_space("search_softmax", mode="local")
    with pytest.raises(ValueError, match="global, abs_local"):
        search.SearchSoftmaxSpace(mode="bins")
    x = torch.tensor([-2.5], dtype=torch.float64)
    assert search.SearchSoftmaxSpace(s=S, mode="abs_local").a(x) == pytest.approx(-2.5, rel=1e-12)
    assert search.SearchSoftmaxSpace(s=S).a(x) == pytest.approx(-2.5 * math.exp(S / 3), rel=1e-12)


def test_search_softmax_gradient_ignores_repeated_labels():
    """The official loss_search multiplies a sample's gradient by its label's count in the batch; here a
    sample's gradient is that of the sample alone, whatever the other labels."""
    g = torch.Generator().manual_seed(3)
    cos = torch.rand(6, 5, generator=g, dtype=torch.float64) * 2 - 1
    loss = losses.get("search_softmax", s=S, a=-100.0)
    space = search.SearchSoftmaxSpace(s=S, mode="abs_local")
    for labels in (torch.tensor([0, 0, 0, 0, 0, 1]), torch.tensor([0, 1, 2, 3, 4, 1]), torch.tensor([2, 2, 2, 2, 2, 2])):
        for compute in (lambda c, y: loss(c, y), lambda c, y: space.losses(c[None], y, torch.tensor([[-100.0]]))[0]):
            whole = cos.clone().requires_grad_(True)
            compute(whole, labels).backward()
            for i in range(len(labels)):
                alone = cos[i:i + 1].clone().requires_grad_(True)
                compute(alone, labels[i:i + 1]).backward()
                assert torch.allclose(whole.grad[i], alone.grad[0] / len(labels), rtol=1e-12, atol=1e-15), (labels, i)
