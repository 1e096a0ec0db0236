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
# Issue 15 (verifier kernel): the torch path on CUDA, bit-exact tests on the device, then the throughput at the
# issue's size (100k gates over 2^24 codes) and at the default size, each beside the numpy baseline. The device
# image may lack numba: the torch path and its tests do not need it (the numba-only tests skip), and the
# benchmark forces --backend torch.
HTMC_TEST_TORCH_DEVICE=cuda timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_fastsim.py -k "not abc" \
    2>&1 | tee "$OUT/fastsim_tests.txt"
timeout 60 python3 -c 'import numpy as np; from htmc.circuits import torchsim; from htmc.circuits.circuit import random_circuit, simulate_numpy
for n, w in ((5, None), (12, 64), (18, 64)):
    c = random_circuit(np.random.default_rng(n), n, 3000, 16, window=w)
    assert (torchsim.simulate(c, "cuda") == simulate_numpy(c)).all(), n
print("cuda torch path bit-exact vs numpy on 3 circuits")' 2>&1 | tee "$OUT/fastsim_cuda_exact.txt"
timeout 150 python3 benchmarks/simulate.py --backend torch --device cuda --gates 100000 --inputs 24 --repeats 2 \
    --shapes deep,wide --baseline-inputs 16 --json 2>&1 | tee "$OUT/simulate_torch_cuda_100k_2e24.json"
timeout 60 python3 benchmarks/simulate.py --backend torch --device cuda --repeats 3 2>&1 | tee "$OUT/simulate_torch_cuda.txt"
# Issue 21 D: the λ path of the fit benchmark as ONE batch of 256 nets (width 16, 32 seeds x 8 λ) on CUDA, beside
# the LP fits (CPU: scipy's HiGHS). --no-compile: the device image may lack ABC, so both sides are float-level
# figures (R* of nets within eps on their grids; the fitted nets' float error), labelled as such in the table.
timeout 240 python3 benchmarks/fit.py --device cuda --widths 16 --seeds 32 --functions sin,h1s075 --no-compile \
    --json "$OUT/fit_b256.json" 2>&1 | tee "$OUT/fit_b256.txt"
# Issue 21 A "Batched": the polish of the fitted nets, 256 fits (sin, exp, h1s1: 20 rungs' LP nets, made on the CPU,
# x 13 seeds) in ONE batch on CUDA (float32 steps, float64 check of the kept nets), beside 6 of them one at a time.
# No ABC needed (nothing is compiled in this mode).
timeout 240 python3 benchmarks/fit.py --batched 256 --device cuda --functions sin,exp,h1s1 --fit-budget-s 3 \
    --single 6 --json "$OUT/fit_polish_b256.json" 2>&1 | tee "$OUT/fit_polish_b256.txt"
