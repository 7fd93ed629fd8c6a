#!/usr/bin/env bash
# Reproduce the embedded rectified-flow digits model, diffkit/digits/weights/digits_flow.safetensors (EMA weights):
#
#   bash scripts/train_digits_flow.sh           # from the repository root: writes runs/digits_flow.safetensors
#   bash scripts/train_digits_flow.sh --ship    # the same run, written over the shipped file instead
#
# MEASURED: (filled in below after the shipped run)
#
# The same recipe as scripts/train_digits.sh with the flow-matching objective: digits_small U-Net
# (1.6M parameters) with prediction_type "flow" on the 1,500-image train split of sklearn's
# load_digits, FlowMatch schedule (T=1000, shift 1), x_t = (1 - sigma) x0 + sigma eps with
# sigma = sigmoid(z), z ~ N(0, 1) (SD3's logit-normal), velocity target eps - x0, model time
# t = 1000 sigma; 4,000 AdamW steps of batch 128 (lr 1e-3 after 200 linear warm-up steps,
# gradient-norm clip 1), EMA decay 0.999, label dropout 0.1 (classifier-free guidance), seed 0.
# The shipped file was made with one thread: other thread counts change float summation order,
# hence the low bits of the weights. Checkpoints go to runs/ every 250 steps; after an
# interruption run the same command with --resume appended to continue exactly.
set -euo pipefail
THREADS="${THREADS:-1}"
OUT=runs/digits_flow.safetensors
if [[ "${1:-}" == "--ship" ]]; then
    OUT=diffkit/digits/weights/digits_flow.safetensors
    shift
fi
mkdir -p runs
OMP_NUM_THREADS="$THREADS" python -m diffkit train --dataset digits --preset digits_small \
    --objective flow --schedule flow \
    --steps 4000 --batch-size 128 --lr 1e-3 --warmup 200 --ema-decay 0.999 --grad-clip 1.0 \
    --label-dropout 0.1 --seed 0 --threads "$THREADS" \
    --checkpoint runs/digits_flow_ckpt.safetensors --checkpoint-every 250 \
    --out "$OUT" "$@"
