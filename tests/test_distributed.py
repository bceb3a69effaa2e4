"""Several processes on a CPU (gloo): data-parallel training matches one process on the same
global batch, and the sharded classifier matches the whole one, value and gradients."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from frbook import losses, models
from frbook.heads import CosineClassifier
from frbook.train.config import load_config
from frbook.train.partial_fc import PartialFC
from frbook.train.trainer import train  # imported here, so that forked workers need not

pytestmark = pytest.mark.slow


def launch(worker, *args, nprocs=2):
    """Run ``worker(rank, *args)`` in ``nprocs`` processes. Forked where the system can (the
    children share this process's imported torch, seconds saved per child), else spawned."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(worker, args=args, nprocs=nprocs, join=True, start_method=method)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, world_size: int, port: int) -> None:
    """What torchrun does for each process: say who it is in the environment."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))


# -- data parallel -----------------------------------------------------------------------------
def tiny_config(**train):
    return load_config(raw={
        "data": {"identities": 12, "val_identities": 6, "images_per_identity": 4, "size": 16, "flip": True},
        "model": {"name": "small_cnn", "params": {"embedding_dim": 8, "width": 4}},
        "loss": {"name": "arcface", "params": {"s": 16, "m": 0.3}},
        "train": {"steps": 3, "batch_size": 8, "log_every": 1, "device": "cpu", **train},
        "optim": {"lr": 0.05},
        "eval": {"targets": []}, "checkpoint": {"keep_best": "none"},
    })


def _train_worker(rank, world_size, port, config, out):
    torch.set_num_threads(1)  # as the single process below: the same order of floating-point sums
    join_group(rank, world_size, port)
    train(config, out_dir=out, progress=False)


def parameters_of(path, config) -> dict:
    """The trainable weights of a run (batch norm's running statistics are not compared: one
    process updates them once per micro-batch, DDP keeps rank 0's)."""
    record = torch.load(path, weights_only=True)
    names = {n for n, _ in models.get("small_cnn", in_channels=1, input_size=16,
                                      **config["model"]["params"]).named_parameters()}
    out = {f"backbone.{k}": v for k, v in record["state_dict"].items() if k in names}
    out["head.weight"] = record["training"]["head"]["weight"]
    return out


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    """Rank r takes micro-batch r of each global batch, so one process accumulating both
    micro-batches sees the same images, the same flips and the same batch-norm statistics."""
    two = tiny_config(accumulate=1)
    launch(_train_worker, 2, free_port(), two, tmp_path / "two")
    one = tiny_config(accumulate=2)
    # One thread on both sides: with several, the order of the sums inside a convolution's
    # backward pass depends on the thread count, and tiny batch-norm batches amplify the rounding.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(one, out_dir=tmp_path / "one", progress=False)
    finally:
        torch.set_num_threads(threads)

    a, b = parameters_of(tmp_path / "one" / "last.pt", one), parameters_of(tmp_path / "two" / "last.pt", two)
    start = parameters_of_initial(one)
    moved = [k for k in a if not torch.allclose(a[k], start[k])]
    assert moved, "training changed nothing, so the comparison would prove nothing"
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-4, msg=key)
    record = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["training"]
    assert record["world_size"] == 2 and len(record["ranks"]) == 2
    assert not list((tmp_path / "two").glob("*rank1*"))  # rank 0 alone writes
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # one line per step from rank 0, not one per rank


def parameters_of_initial(config) -> dict:
    from frbook.utils import seed_everything

    seed_everything(config["train"]["seed"])
    model = models.get("small_cnn", in_channels=1, input_size=16, **config["model"]["params"])
    names = {n for n, _ in model.named_parameters()}
    out = {f"backbone.{k}": v for k, v in model.state_dict().items() if k in names}
    # The trainer builds backbone, loss (ArcFace draws nothing), head, in this order.
    out["head.weight"] = CosineClassifier(8, 12).weight.detach()
    return out


# -- the sharded classifier --------------------------------------------------------------------
B, C, D = 6, 7, 5  # 7 classes over 2 ranks: shards of 4 and 3


def problem():
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(B, D, generator=g, dtype=torch.float64)
    centres = torch.randn(C, D, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 3, 4, 6, 3, 1])  # both shards own some labels
    return embeddings, centres, labels


LOSSES = {"cosface": {"s": 16, "m": 0.35}, "arcface": {"s": 16, "m": 0.5}}


def _partial_fc_worker(rank, world_size, port, out):
    join_group(rank, world_size, port)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="env://")
    embeddings, centres, labels = problem()
    rows = slice(rank * B // world_size, (rank + 1) * B // world_size)  # this rank's samples
    results = {}
    for name, params in LOSSES.items():
        head = PartialFC(D, C, losses.get(name, **params)).double()
        with torch.no_grad():
            head.weight.copy_(centres[head.start:head.end])
        x = embeddings[rows].clone().requires_grad_(True)
        value = head(x, labels[rows])
        value.backward()
        results[name] = {"loss": value.detach(), "grad_x": x.grad, "grad_w": head.weight.grad,
                         "start": head.start, "end": head.end}
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_sharded_classifier_matches_the_whole_one(tmp_path):
    launch(_partial_fc_worker, 2, free_port(), tmp_path)
    embeddings, centres, labels = problem()
    for name, params in LOSSES.items():
        head = CosineClassifier(D, C).double()
        with torch.no_grad():
            head.weight.copy_(centres)
        x = embeddings.clone().requires_grad_(True)
        value = losses.get(name, **params)(head(x), labels)
        value.backward()
        for rank in range(2):
            got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)[name]
            rows = slice(rank * B // 2, (rank + 1) * B // 2)
            torch.testing.assert_close(got["loss"], value.detach(), msg=f"{name} loss")
            torch.testing.assert_close(got["grad_x"], x.grad[rows], msg=f"{name} embedding gradient")
            torch.testing.assert_close(got["grad_w"], head.weight.grad[got["start"]:got["end"]],
                                       msg=f"{name} centre gradient")
        assert x.grad.abs().sum() > 0 and head.weight.grad.abs().sum() > 0


def test_sampling_keeps_the_batch_classes_and_scores_a_fraction():
    torch.manual_seed(0)
    head = PartialFC(4, 40, losses.get("cosface"), sample_rate=0.25)
    labels = torch.tensor([1, 5, 5, 30])
    head(torch.randn(4, 4), labels).backward()
    touched = (head.weight.grad.abs().sum(1) > 0).nonzero().flatten()
    assert len(touched) == 10  # ceil(0.25 * 40) centres take part
    assert set(labels.tolist()) <= set(touched.tolist())


def test_unsupported_losses_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="whole row"):
        PartialFC(4, 10, losses.get("curricularface"))
    with pytest.raises(ValueError, match="learned scale"):
        PartialFC(4, 10, losses.get("normface", learn_scale=True))


def _resume_worker(rank, world_size, port, config, out, stop_at, resume):
    join_group(rank, world_size, port)
    train(config, out_dir=out, progress=False, stop_at=stop_at, resume=resume)


def test_two_process_sharded_run_resumes_exactly(tmp_path):
    """Each rank's centres, their momentum and its random state (which samples the negative
    centres) come back from the one checkpoint rank 0 wrote."""
    config = tiny_config(steps=4)
    config["head"].update(partial_fc=True, sample_rate=0.5)
    launch(_resume_worker, 2, free_port(), config, tmp_path / "whole", None, None)
    launch(_resume_worker, 2, free_port(), config, tmp_path / "parts", 2, None)
    launch(_resume_worker, 2, free_port(), config, tmp_path / "parts", None, "auto")
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    assert a["training"]["step"] == b["training"]["step"] == 4
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for rank in range(2):
        assert torch.equal(a["training"]["ranks"][rank]["head"]["weight"], b["training"]["ranks"][rank]["head"]["weight"])
    shards = [a["training"]["ranks"][r]["head"]["weight"].shape[0] for r in range(2)]
    assert shards == [6, 6]  # 12 classes over two ranks


# -- loss function search: candidates shared by the processes ------------------------------------
def _search_setup():
    from frbook import search

    torch.manual_seed(0)
    backbone = models.get("small_cnn", embedding_dim=8, in_channels=1, input_size=16, width=4)
    head = CosineClassifier(8, 12)
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(8, 1, 16, 16, generator=g), torch.randint(0, 12, (8,), generator=g)) for _ in range(3)]
    settings = search.SearchSettings(candidates=4, epochs=2, steps_per_epoch=2, batch_size=8, engine="loop", seed=0)

    def reward(b):  # deterministic and different between candidates
        return float(sum(p.detach().double().sum() for p in b.parameters()))

    return search, backbone, head, data, reward, settings


def _search_worker(rank, world_size, port, out):
    join_group(rank, world_size, port)
    search, backbone, head, data, reward, settings = _search_setup()
    result = search.search(backbone, head, search.SearchSoftmaxSpace(s=10.0), data, reward, settings, progress=False)
    if rank == 0:
        torch.save({"history": result.history, "network": result.network.state_dict()}, out)


def test_two_process_search_matches_one_process(tmp_path):
    """Two processes with two candidates each make the same search as one process with four."""
    torch.set_num_threads(1)
    search, backbone, head, data, reward, settings = _search_setup()
    alone = search.search(backbone, head, search.SearchSoftmaxSpace(s=10.0), data, reward, settings, progress=False)
    launch(_search_worker, 2, free_port(), tmp_path / "two.pt")
    two = torch.load(tmp_path / "two.pt", weights_only=False)
    for mine, theirs in zip(alone.history, two["history"]):
        assert mine["samples"] == theirs["samples"] and mine["best"] == theirs["best"]
        assert mine["rewards"] == pytest.approx(theirs["rewards"], rel=1e-9)
        assert mine["policy_mean"] == pytest.approx(theirs["policy_mean"], rel=1e-9)
    for name, value in alone.network.state_dict().items():
        assert torch.allclose(value.float(), two["network"][name].float(), atol=1e-6), name
