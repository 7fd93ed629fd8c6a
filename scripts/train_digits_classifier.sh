#!/usr/bin/env bash
# Train the noise-conditional digits classifier (classifier guidance on the embedded model):
#
#   bash scripts/train_digits_classifier.sh            # -> runs/digits_classifier.safetensors
#
# It then says whether that file is byte for byte the shipped
# diffkit/digits/weights/digits_classifier.safetensors; it never writes the shipped file (to ship
# a new classifier, copy it there yourself).
#
# 89,226 parameters (a 3-conv FiLM network, diffkit/digits/classifier.py), 4,000 AdamW steps of
# batch 256 on the 1,500-image train split, noised with the embedded model's Linear schedule
# (t ~ U{0..999}), one-pixel random shifts, seed 0: about 2.5 minutes on one core of a 2-vCPU
# Xeon (5 minutes while other jobs shared it). One thread, so the bytes are the same on every
# run (other thread counts change float summation order, hence the low bits of the weights).
set -euo pipefail
OMP_NUM_THREADS=1 python -m diffkit.digits.train_classifier "$@"
