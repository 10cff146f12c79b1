#!/usr/bin/env bash
# Every GPU measurement in one short script (about 8 minutes on one H100/H200):
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
for precision in fp32 bf16; do
    timeout 170 python3 benchmarks/speed.py --device cuda --precision "$precision" --batch "$BATCH" --steps 20 \
        --warmup 5 --models $SPEED_MODELS --out "$OUT/speed_cuda.md" || rc=1
done
timeout 150 python3 benchmarks/cuda_smoke.py --device cuda --steps 8 --models $SMOKE_MODELS \
    --out "$OUT/cuda_smoke.md" || rc=1
exit $rc
