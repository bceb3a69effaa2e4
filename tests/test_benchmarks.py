"""The GPU scripts, run on the CPU with tiny settings: a GPU is lent to this project only at times,
for minutes, so what it will run is tested here first. Speed itself is measured by the benchmarks
(JSON), never asserted: these tests check what the records say and how they are computed."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def script(name):
    """A module of benchmarks/ (not a package), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_names_the_cards():
    bench = script("bench_train")
    assert bench.peak_for("NVIDIA H100 80GB HBM3") == (989.4e12, "H100")  # the SXM card
    assert bench.peak_for("NVIDIA H200") == (989.4e12, "H200")
    assert bench.peak_for("NVIDIA H100 PCIe")[0] == 756e12
    assert bench.peak_for("NVIDIA GeForce GTX 1080") == (None, None)
    assert bench.peak_flops(torch.device("cpu")) == (None, None)


def test_bench_train_small_case(tmp_path, monkeypatch):
    """One small case: both sides measured, ratios are trainer / baseline, the FLOPs counted, and
    MFU = FLOPs x steps/s / peak (with a pretend peak: a CPU has none in the table, see above)."""
    bench = script("bench_train")
    monkeypatch.setattr(bench, "peak_flops", lambda device: (1e12, "pretend"))
    report = bench.main(["--model", "small_cnn", "--size", "16", "--channels", "1", "--batch", "4", "--classes", "8",
                         "--embedding-dim", "8", "--steps", "1", "--warmup", "0", "--output", str(tmp_path / "cpu.json")])
    assert json.loads((tmp_path / "cpu.json").read_text()) == report
    (row,) = report["results"]
    assert report["finished"] and report["peak_bf16_flops"] == 1e12 and report["peak_table_entry"] == "pretend"
    assert report["git_commit"] and report["device"] and report["torch_version"]
    assert row["model"] == "small_cnn" and row["batch"] == 4
    assert set(row["trainer"]) == {"fp32", "fp32+channels_last"}
    for result in row["trainer"].values():
        assert result["ratio"] == pytest.approx(result["images_per_second"] / row["baseline_images_per_second"], rel=0.01)
    assert row["best_images_per_second"] == max(r["images_per_second"] for r in row["trainer"].values())
    flops = bench.training_flops("small_cnn", {"embedding_dim": 8}, 16, 1, 4, 8, torch.device("cpu"))
    assert flops > 0 and round(flops / 1e9, 3) == row["training_gflops_per_step"]
    assert row["baseline_mfu"] == round(flops * row["baseline_images_per_second"] / 4 / 1e12, 4)
    assert row["best_mfu"] == round(flops * row["best_images_per_second"] / 4 / 1e12, 4)


def test_bad_arguments_exit_2_naming_the_fix(capsys):
    with pytest.raises(SystemExit) as exit_:
        script("bench_train").main(["--model", "resnet9000"])
    assert exit_.value.code == 2 and "known: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        script("bench_search").main(["--case", "huge"])
    assert exit_.value.code == 2 and "tiny" in capsys.readouterr().err


def test_training_flops_of_a_linear_step():
    """FlopCounterMode's count of a training step, checked on the head alone: the head's forward is
    a (B, D) x (D, C) product (2BDC), its backward two more (4BDC)."""
    from torch.utils.flop_counter import FlopCounterMode

    from frbook.heads import CosineClassifier
    head = CosineClassifier(16, 10)
    x = torch.rand(4, 16, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        head(x).sum().backward()
    assert counter.get_total_flops() == 6 * 4 * 16 * 10


def test_bench_data_names_the_rec_path_and_compares_with_the_trainer(tmp_path):
    bench = script("bench_data")
    report = bench.main(["--size", "16", "--channels", "1", "--batch", "4", "--batches", "1", "--workers", "0",
                         "--consumption", "1e9", "--output", str(tmp_path / "data.json")])
    rows = {r["path"]: r for r in report["results"]}
    assert set(rows) == {"synth", "rec_workers_0", "rec_cached"}
    for row in rows.values():
        assert row["headroom"] == round(row["images_per_second"] / 1e9, 2) and row["keeps_up"] is False
    assert "RecFaces" in report["rec_path"] and "data.workers" in report["rec_path"]
    assert report["rec_images"] == 8 and report["consumption_source"] == "--consumption"


def test_bench_data_reads_the_trainers_rate(tmp_path):
    bench = script("bench_data")
    record = {"results": [{"model": "m", "size": 16, "batch": 4, "best": "x", "best_images_per_second": 50.0},
                          {"model": "m", "size": 112, "batch": 4, "best": "x", "best_images_per_second": 9.0}]}
    (tmp_path / "train.json").write_text(json.dumps(record))
    assert bench.consumption_from(tmp_path / "train.json", 16, 4) == (50.0, "train.json: m x")
    assert bench.consumption_from(tmp_path / "train.json", 32, 4) == (None, None)
    assert bench.consumption_from(tmp_path / "absent.json", 16, 4) == (None, None)


def test_bench_search_reports_the_ratio_and_the_auto_choice(tmp_path):
    bench = script("bench_search")
    report = bench.main(["--case", "tiny", "--candidates", "2", "--steps", "1", "--repeats", "1", "--warmup", "1",
                         "--output", str(tmp_path / "search.json")])
    (row,) = report["results"]
    assert row["auto_picks"] == "loop" and row["device_type"] == "cpu"
    assert row["stacked_over_loop"] == round(row["stacked_seconds_per_step"] / row["loop_seconds_per_step"], 3)
    assert report["finished"]


def test_distributed_paths_in_a_group_of_one():
    """gloo, world size 1: the path NCCL takes on one GPU (benchmarks/check_distributed.py)."""
    check = script("check_distributed")
    report = check.main(["--device", "cpu", "--output", os.devnull])
    assert report["passed"] and report["backend"] == "gloo" and report["world_size"] == 1
    assert {r["check"].split(" ")[0] for r in report["results"]} >= {"collectives", "partial_fc", "DDP", "trainer"}
    assert not dist.is_initialized()  # the group is gone again


def test_gpu_checks_needs_a_mode_and_a_gpu(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_checks.sh")], capture_output=True, text=True,
                            cwd=REPO, timeout=30)
    assert result.returncode == 2 and "bench|lfw|smoke" in result.stderr
    if not torch.cuda.is_available():
        env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable}
        result = subprocess.run(["bash", str(REPO / "scripts" / "gpu_checks.sh"), "bench"], capture_output=True,
                                text=True, cwd=REPO, env=env, timeout=60)
        assert result.returncode == 2 and "no CUDA device" in result.stderr and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_gpu_checks_smoke_on_the_cpu(tmp_path):
    """The whole script, its CPU smoke mode: every step passes and the archive holds each JSON, with
    the commit, the device and torch."""
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable}
    result = subprocess.run(["bash", "scripts/gpu_checks.sh", "smoke"], capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with tarfile.open(tmp_path / "gpu_results.tgz") as archive:
        names = set(archive.getnames())
        for name in ("machine", "distributed", "search_speed", "train_speed", "data_speed"):
            member = f"benchmarks/results/{name}_cpu.json"
            assert member in names
            record = json.loads(archive.extractfile(member).read())
            assert record["device"] and (record.get("torch") or record.get("torch_version"))
            assert "git_commit" in record
