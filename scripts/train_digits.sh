#!/usr/bin/env bash
# Reproduce the embedded digits model, diffkit/digits/weights/digits.safetensors (EMA weights):
#
#   bash scripts/train_digits.sh            # from the repository root, after `pip install -e .[dev]`
#
# It writes runs/digits.safetensors and then says whether that file is byte for byte the shipped
# one. It never writes the shipped file: to ship a new model, copy it there yourself. Extra
# arguments go to `diffkit train` (e.g. --steps 5 for a smoke test, which writes runs/ only).
#
# Measured on a 2-vCPU Xeon shared with other jobs, one torch thread: 28 min 39 s wall for the
# shipped run (heavy contention), 18 min 57 s for a re-run, which reproduced the shipped file
# byte for byte (sha256 228ecdf74cf282bb8cf262ddeef9f496d103b81c0f77bf46bda09a15c9ede648).
#
# digits_small U-Net (1.6M parameters) on the 1,500-image train split of sklearn's load_digits,
# Linear schedule T=1000, 4,000 AdamW steps of batch 128 (lr 1e-3 after 200 linear warm-up steps,
# gradient-norm clip 1), EMA decay 0.999, label dropout 0.1 (classifier-free guidance), seed 0.
# The shipped file was made with one thread: other thread counts change float summation order,
# hence the low bits of the weights. Checkpoints go to runs/ every 250 steps; after an
# interruption run the same command with --resume appended to continue exactly. A second run
# without --resume refuses to overwrite the checkpoint: remove runs/digits_ckpt.safetensors first.
set -euo pipefail
THREADS="${THREADS:-1}"
OUT=runs/digits.safetensors
SHIPPED=diffkit/digits/weights/digits.safetensors
mkdir -p runs
OMP_NUM_THREADS="$THREADS" python -m diffkit train --dataset digits --preset digits_small --schedule linear \
    --steps 4000 --batch-size 128 --lr 1e-3 --warmup 200 --ema-decay 0.999 --grad-clip 1.0 \
    --label-dropout 0.1 --seed 0 --threads "$THREADS" \
    --checkpoint runs/digits_ckpt.safetensors --checkpoint-every 250 \
    --out "$OUT" "$@"
if cmp -s "$OUT" "$SHIPPED"; then
    echo "$OUT is byte for byte the shipped $SHIPPED"
else
    echo "$OUT differs from the shipped $SHIPPED (expected unless this was the full 4,000-step run on one thread)"
fi
