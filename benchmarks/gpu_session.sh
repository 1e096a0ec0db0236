#!/usr/bin/env bash
# One device session for issue 4 (GPU figures), prepared to fit well inside the 15 minutes a lent device gives:
# the CUDA tests, then the batched-training benchmark at B=256 with the fraction of peak FLOP/s. Run it through
# the device tool from the repo root, e.g.
#     run(command="bash benchmarks/gpu_session.sh", timeout_s=540)
# The device image's python3 has torch (CUDA), numpy, scipy, pytest and pyyaml; htmc/ needs nothing else for
# these. Figures go to $OUT (they come back) and to stdout; record them in benchmarks/RESULTS.md with the device.
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name())'
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_resnet.py -k "cuda or batched" 2>&1 | tee "$OUT/tests.txt"
# The size at B=256: 256 nets one after another (launch-bound, ~1 min), then as one computation.
timeout 300 python3 benchmarks/batched_training.py --device cuda --batch 256 --steps 100 \
    --json "$OUT/batched_b256.json" 2>&1 | tee "$OUT/bench.txt"
