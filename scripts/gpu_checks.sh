#!/usr/bin/env bash
# Everything this project runs on a lent GPU, in calls that each fit well inside the 10 minutes a
# command may take (the device time is short, about 15 minutes with the machine's start, and a
# machine starts bare):
#
#   FRBOOK_GIT_COMMIT=$(git rev-parse HEAD) OUT=runs/gpu bash scripts/gpu_checks.sh bench   # ~5 min
#   FRBOOK_GIT_COMMIT=$(git rev-parse HEAD) OUT=runs/gpu bash scripts/gpu_checks.sh lfw     # ~8 min
#   OUT=/tmp/smoke bash scripts/gpu_checks.sh smoke    # here, on the CPU: the same steps, tiny (a test)
#
# bench: the machine (device name, driver, torch, CUDA) into machine_<device>.json; the CUDA tests
#   (SynthFaces on the GPU, the search engines on CUDA); the distributed paths in a process group of
#   one (NCCL: collectives, Partial FC's sharded softmax, DDP's summing hook, the trainer with
#   partial_fc); the search engines' stacked/loop ratio; the training step of iResNet-50 at 112x112,
#   batch 128, against arcface_torch's loop (images/s, ratio, peak memory, MFU); the data paths
#   (SynthFaces on the GPU, .rec decoding) against that training rate. Each step has its own
#   timeout and writes its JSON as it goes, so a slow step costs only itself.
# lfw: LFW fold 0 of configs/compare_lfw_gpu.yaml at 112x112 (carry .lfw: `python -m frbook data
#   lfw-crops .lfw/lfw` writes LFW's 128x128 crops, 49 MB). LFW_LAUNCH and LFW_STOP (seconds) bound
#   it: no job starts after LFW_LAUNCH, and jobs still running at LFW_STOP are stopped (their results
#   are not written; a later call resumes). Two jobs at a time: on an H200 seven at a time ran no
#   faster in total than one.
#
# Results: $OUT/gpu_results.tgz and $OUT/log.txt. The archive mirrors the repository; unpack it at
# the root: tar xzf gpu_results.tgz -> benchmarks/results/*_cuda.json, book/results/compare_lfw_gpu/.
set -u
MODE=${1:-}
case "$MODE" in
    bench|lfw|smoke) ;;
    *) echo "usage: OUT=DIR bash scripts/gpu_checks.sh {bench|lfw|smoke}   (see the comment at its top)" >&2; exit 2 ;;
esac
PY=${PY:-python3}
if [ "$MODE" != smoke ] && ! $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    echo "gpu_checks.sh $MODE: torch sees no CUDA device here; 'smoke' runs the same steps on a CPU" >&2
    exit 2
fi
OUT=${OUT:-runs/gpu}
LFW_LAUNCH=${LFW_LAUNCH:-400}
LFW_STOP=${LFW_STOP:-500}
# One torch thread pool per job of a few threads: several jobs of one thread per core each would
# oversubscribe the cores, and torch's threads then spin against each other.
export PYTHONUNBUFFERED=1 FRBOOK_DATA=${FRBOOK_DATA:-$PWD/.lfw} PYTHONPATH=$PWD OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
STAGE=$(mktemp -d)  # mirrors the repository's layout, so the archive unpacks in place
RES=$STAGE/benchmarks/results
mkdir -p "$OUT" "$STAGE/book/results/compare_lfw_gpu" "$RES" "$STAGE/runs/gpu_logs"
FAILED=0

step() {  # step SECONDS NAME COMMAND...: run with a time limit, log it, remember a failure
    local limit=$1 name=$2
    shift 2
    echo "== $name (at most ${limit} s)"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "-- $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || FAILED=1
}

machine() {  # the device, driver and versions, as JSON with the project's provenance
    $PY - "$1" "$2" <<'EOF'
import json, subprocess, sys, torch
from frbook.provenance import provenance
device, path = sys.argv[1], sys.argv[2]
record = provenance(device)
record.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), cpu_count=__import__("os").cpu_count())
try:
    query = "name,memory.total,driver_version,clocks.sm,clocks.max.sm"
    out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=20).stdout.strip().splitlines()
    record["nvidia_smi"] = dict(zip(query.split(","), (v.strip() for v in out[0].split(",")))) if out else None
except (OSError, subprocess.SubprocessError):
    record["nvidia_smi"] = None
open(path, "w").write(json.dumps(record, indent=2) + "\n")
print(json.dumps(record))
EOF
}

{
    if [ "$MODE" = bench ]; then
        machine cuda "$RES/machine_cuda.json"
        step 120 "CUDA tests" $PY -m pytest -q -p no:cacheprovider tests/test_synth.py tests/test_search.py -k cuda
        step 60 "distributed, one process group (NCCL)" $PY benchmarks/check_distributed.py --device cuda \
            --output "$RES/distributed_cuda.json"
        step 150 "search engines, stacked / loop" $PY benchmarks/bench_search.py --device cuda \
            --output "$RES/search_speed_cuda.json"
        step 240 "training step: iResNet-50 112x112 batch 128 against arcface_torch's loop" \
            $PY benchmarks/bench_train.py --device cuda ${TRAIN_ARGS:-} --output "$RES/train_speed_cuda.json"
        step 60 "data feeding against the training rate" $PY benchmarks/bench_data.py --device cuda \
            --train-json "$RES/train_speed_cuda.json" --output "$RES/data_speed_cuda.json"
    elif [ "$MODE" = lfw ]; then
        machine cuda "$RES/machine_cuda.json"
        echo "== LFW comparison (launch until ${LFW_LAUNCH} s, stop at ${LFW_STOP} s)"
        $PY scripts/parallel_compare.py --config configs/compare_lfw_gpu.yaml --jobs 2 \
            --folds ${LFW_FOLDS:-0} --launch-until "$LFW_LAUNCH" --stop-at "$LFW_STOP" \
            --out "$STAGE/book/results/compare_lfw_gpu" --log-dir "$STAGE/runs/gpu_logs" || FAILED=1
    else  # smoke: bench's steps on the CPU with tiny settings, to test this script and the scripts it runs
        machine cpu "$RES/machine_cpu.json"
        step 60 "distributed, one process group (gloo)" $PY benchmarks/check_distributed.py --device cpu \
            --threads 1 --output "$RES/distributed_cpu.json"
        step 60 "search engines, stacked / loop" $PY benchmarks/bench_search.py --device cpu --threads 1 \
            --case tiny --candidates 2 --steps 1 --repeats 1 --warmup 1 --output "$RES/search_speed_cpu.json"
        step 60 "training step" $PY benchmarks/bench_train.py --device cpu --threads 1 --model iresnet18 \
            --size 16 --batch 4 --classes 8 --embedding-dim 16 --steps 1 --warmup 0 --output "$RES/train_speed_cpu.json"
        step 60 "data feeding" $PY benchmarks/bench_data.py --device cpu --threads 1 --size 16 --batch 4 \
            --batches 1 --workers 0 --train-json "$RES/train_speed_cpu.json" --output "$RES/data_speed_cpu.json"
    fi
    echo "== done: $MODE, $([ $FAILED = 0 ] && echo 'every step passed' || echo 'a step FAILED')"
} 2>&1 | tee "$OUT/log.txt"
tar czf "$OUT/gpu_results.tgz" -C "$STAGE" book benchmarks runs
rm -rf "$STAGE"
echo "wrote $OUT/gpu_results.tgz"
grep -q "every step passed" "$OUT/log.txt"
