#!/usr/bin/env bash
# One device call for the trainer: build mamba-ssm's selective-scan kernel (as gpu_check.sh),
# time BC / Offline-MB-ERIL iterations on CUDA for both backbones, then run a short
# `mberil train` on CUDA and resume it on the CPU (a checkpoint serves both devices).
# Needs .mamba_src (unpacked mamba-ssm sdist) and .gpu_data/demos (a dataset made here with
# mberil_ros.sim.rollout_dataset, since MuJoCo is not on the GPU image) carried along.
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/log.txt"
cp -r .mamba_src /tmp/msrc
command -v nvcc >/dev/null || export PATH=$PATH:/usr/local/cuda/bin
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(command -v nvcc)")")}
t0=$(date +%s)
timeout 300 python3 bench/gpu_build_mamba.py /tmp/msrc /tmp/mbuild > "$OUT/build.log" 2>&1
echo "build rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/log.txt"
export PYTHONPATH=/tmp/mbuild:/tmp/msrc:$PWD
python3 -c "from mberil_ros.models import mamba_ssm_available as a; print('mamba_ssm available:', a())" 2>&1 | tee -a "$OUT/log.txt"
timeout 240 python3 bench/train_speed.py --device cuda --dataset .gpu_data/demos --threads 8 2>&1 | tee -a "$OUT/log.txt"
common="dataset=.gpu_data/demos output_dir=/tmp/runs name=gpu progress=false eval_every=20 checkpoint_every=20 algo.bc_warmstart_steps=10 algo.model_warmstart_steps=10"
timeout 120 python3 -m mberil_ros.cli train $common steps=40 device=cuda 2>&1 | tail -4 | tee -a "$OUT/log.txt"
timeout 120 python3 -m mberil_ros.cli train --resume /tmp/runs/gpu steps=45 device=cpu 2>&1 | tail -4 | tee -a "$OUT/log.txt"
cp /tmp/runs/gpu/metrics.jsonl "$OUT/metrics.jsonl" 2>/dev/null
