#!/usr/bin/env bash
# Every GPU measurement in one short script. The issue-10 parts come first and fit in about 5 minutes on
# one H100/H200; the older parts run after them while the run is under BUDGET_S seconds (default 330),
# or always with BUDGET_S=0 (then about 13 minutes in all):
#   A. StyleGAN2 paper256, batch 32, through `python3 -m ganzoo.cli train` (data=fashion, 28x28 images
#      fitted to 256x256 on the GPU) in fp32, bf16, fp16 and fp32 with trainer.compile=true, each for
#      TRAIN256_KIMG each; s/kimg after WARMUP_KIMG from metrics.jsonl ($OUT/train256/),
#   B. speed.py rows of the StyleGAN2 presets (SG2_MODELS) in fp32, bf16 and fp16 ($OUT/speed_stylegan2.md),
#   C. FLOPs of one full training step (benchmarks/flops.py) and the TFLOP/s the runs of A achieve
#      against the GPU's peak ($OUT/flops.md),
#   0. (TRAIN_MODELS, optional) CPU-default configs trained side by side on the GPU for TRAIN_MINUTES,
#      their run folders packed into $OUT/gpu_runs.tar.gz (checkpoints, samples, metrics) for docs,
#   1. training and sampling img/s and peak memory per model, fp32 and bf16 (benchmarks/speed.py),
#   2. every family through the real trainer on CUDA: fp32, bf16, checkpoint, deterministic resume
#      (benchmarks/cuda_smoke.py).
# Results go to $OUT (the device tool's folder) or benchmarks/results/gpu/. CI never runs this.
#
# On a machine without hydra-core/omegaconf/lpips, carry their wheels in .whl/ (see README's
# development section): they are installed into /tmp/site and put on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! python3 -c "import hydra, omegaconf, lpips" 2>/dev/null; then
    pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, platform.platform())"
    git log -1 --format='commit %H %s' 2>/dev/null || true
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

SPEED_MODELS=${SPEED_MODELS:-"dcgan_tiny dcgan progan stylegan stylegan2 stylegan2_cifar sagan sagan_cifar biggan biggan_cifar vqgan vit_vqgan"}
SMOKE_MODELS=${SMOKE_MODELS:-"dcgan_tiny stylegan2_tiny sagan_tiny biggan_tiny vqgan_tiny vit_vqgan_tiny"}
BATCH=${BATCH:-64}

rc=0
BUDGET_S=${BUDGET_S:-330}
over_budget() { [ "$BUDGET_S" -gt 0 ] && [ "$SECONDS" -ge "$BUDGET_S" ]; }

# A. paper256 through the real trainer, one process per variant. TRAIN256_KIMG (25 steps of 32) each, at
# most 2 minutes of training time (the compiled run's graphs are built inside its training time: 4 minutes).
TRAIN256_KIMG=${TRAIN256_KIMG:-0.8}
WARMUP_KIMG=${WARMUP_KIMG:-0.32}
runs256=$OUT/train256; mkdir -p "$runs256"
train256() {
    local label=$1 minutes=$2; shift 2
    timeout 200 python3 -m ganzoo.cli train model=stylegan2_paper256 data=fashion trainer.device=cuda \
        trainer.batch_size=32 trainer.kimg="$TRAIN256_KIMG" trainer.minutes="$minutes" trainer.log_every=5 \
        trainer.sample_every_kimg=1000 trainer.checkpoint_every_kimg=1000 trainer.keep_checkpoints=1 trainer.grid=0 \
        trainer.progress=false hydra.run.dir="/tmp/train256/$label" "$@" > "$runs256/$label.log" 2>&1 || rc=1
    cp "/tmp/train256/$label/metrics.jsonl" "$runs256/$label.metrics.jsonl" 2>/dev/null
    tail -n 2 "$runs256/$label.log"
}
train256 fp32 2
train256 bf16 2 trainer.precision=bf16
train256 fp16 2 trainer.precision=fp16
train256 compile 4 trainer.compile=true

# B. speed.py rows of the StyleGAN2 presets in each precision (synthetic data, all phases).
SG2_MODELS=${SG2_MODELS:-"stylegan2 stylegan2_cifar stylegan2_paper256"}
for precision in fp32 bf16 fp16; do
    timeout 90 python3 benchmarks/speed.py --device cuda --precision "$precision" --batch 32 --steps 6 \
        --warmup 3 --models $SG2_MODELS --out "$OUT/speed_stylegan2.md" || rc=1
done

# C. FLOPs of one training step of paper256 at batch 32, and the achieved TFLOP/s of the runs of A.
timeout 90 python3 benchmarks/flops.py --models stylegan2_paper256 --batch 32 --device cuda \
    --warmup-kimg "$WARMUP_KIMG" --out "$OUT/flops.md" \
    --runs fp32=/tmp/train256/fp32 bf16=/tmp/train256/bf16 fp16=/tmp/train256/fp16 compile=/tmp/train256/compile || rc=1
echo "issue-10 parts done after ${SECONDS}s"

TRAIN_MODELS=${TRAIN_MODELS:-}
TRAIN_MINUTES=${TRAIN_MINUTES:-3}
if [ -n "$TRAIN_MODELS" ]; then
    runs=/tmp/gpu_runs; mkdir -p "$runs"
    for m in $TRAIN_MODELS; do
        python3 -m ganzoo.cli train model="$m" trainer.device=cuda trainer.minutes="$TRAIN_MINUTES" \
            trainer.kimg=100000 trainer.sample_every_kimg=50 trainer.checkpoint_every_kimg=200 trainer.keep_checkpoints=1 \
            trainer.progress=false hydra.run.dir="$runs/$m" > "$runs/$m.log" 2>&1 &
    done
    wait
    tail -n 3 "$runs"/*.log
    # the newest snapshot's weights, samples and metrics of each run (state files left out: size)
    (cd "$runs" && find . -name '*.state.pt' -delete && tar czf "$OUT/gpu_runs.tar.gz" .)
fi
if over_budget; then echo "over BUDGET_S=${BUDGET_S}s: the older parts 1 and 2 are skipped (BUDGET_S=0 runs them)"; exit $rc; fi
for precision in fp32 bf16; do
    over_budget && break
    timeout 170 python3 benchmarks/speed.py --device cuda --precision "$precision" --batch "$BATCH" --steps 20 \
        --warmup 5 --models $SPEED_MODELS --out "$OUT/speed_cuda.md" || rc=1
done
over_budget && exit $rc
timeout 150 python3 benchmarks/cuda_smoke.py --device cuda --steps 8 --models $SMOKE_MODELS \
    --out "$OUT/cuda_smoke.md" || rc=1
exit $rc
