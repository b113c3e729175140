#!/usr/bin/env bash
# One device call (docs/algorithm.md §9): build mamba-ssm's selective-scan kernel (fp32, sm_90),
# run the fast-vs-portable tests on CUDA, write the golden fixture and time a training step.
# Needs .mamba_src (an unpacked mamba-ssm sdist) carried along; results land in $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/log.txt"
python3 -c "import torch, einops, triton; print('torch', torch.__version__, torch.version.cuda)" 2>&1 | tee -a "$OUT/log.txt"
cp -r .mamba_src /tmp/msrc
command -v nvcc >/dev/null || export PATH=$PATH:/usr/local/cuda/bin
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
echo "nvcc: $(command -v nvcc) CUDA_HOME=$CUDA_HOME" | tee -a "$OUT/log.txt"
t0=$(date +%s)
timeout 300 python3 bench/gpu_build_mamba.py /tmp/msrc /tmp/mbuild > "$OUT/build.log" 2>&1
echo "build rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log.txt"
grep -iE "error|built" "$OUT/build.log" | head -20; tail -3 "$OUT/build.log"
export PYTHONPATH=/tmp/mbuild:/tmp/msrc:$PWD:$PWD/bench
python3 -c "import torch, selective_scan_cuda; from mberil_ros.models import mamba_ssm_available as a; print('mamba_ssm available:', a())" 2>&1 | tee -a "$OUT/log.txt"
python3 -m pytest -q -rs test/test_models_mamba.py test/test_models_scan.py 2>&1 | tail -8 | tee -a "$OUT/log.txt"
python3 test/data/make_golden.py "$OUT" 2>&1 | tail -20 | tee -a "$OUT/log.txt"
python3 bench/gpu_train_speed.py 2>&1 | tee -a "$OUT/log.txt"
