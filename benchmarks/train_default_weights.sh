#!/usr/bin/env bash
# The runs behind qmra/weights/qmra-default.safetensors, exactly as made on this project's machine
# (2 CPU cores, no GPU, no ImageNet weights): see the card qmra/weights/qmra-default.json.
#
#   bash benchmarks/train_default_weights.sh          # DAVIS=../shared/data/davis2016 by default
#
# With a GPU, ImageNet weights and the paper's data, run the paper's recipe instead (README, "Train").
set -euo pipefail
DAVIS=${DAVIS:-../shared/data/davis2016}
HELD_OUT=car-shadow,dog,horsejump-high,kite-surf   # never trained on; validation and the README's scores
RUNS=${RUNS:-bench-results}

# 1. Synthetic videos from scratch (resnet18, 64-channel decoders, 96x96 clips, trained BatchNorm).
.venv/bin/python -m benchmarks.train_synthetic --out "$RUNS/train-synthetic"

# 2. The DAVIS sequences we may train on: real clips, the paper's simulated (static) clips and
#    composites, plus the synthetic videos, all mixed, from step 1's best checkpoint.
.venv/bin/qmra train --backbone resnet18 --decoder-channels 64 --train-batchnorm \
    --data "davis:$DAVIS:-$HELD_OUT@2" --data "davis-static:$DAVIS:-$HELD_OUT" \
    --data "composite:$DAVIS:-$HELD_OUT" --data synthetic:64 \
    --init "$RUNS/train-synthetic/best.safetensors" \
    --val "davis:$DAVIS:$HELD_OUT" --val-resolution 160 --val-every 300 --save-every 100 \
    --size 128 --batch-size 4 --lr 2e-4 --lr-schedule cosine --warmup 20 --steps 3000 --workers 1 \
    --out "$RUNS/default-davis"

# 3. Score the best checkpoint on the held-out sequences at several working resolutions, keep the best,
#    ship it as fp16 with its card.
.venv/bin/python -m benchmarks.ship_default_weights --run "$RUNS/default-davis" --davis "$DAVIS" \
    --held-out "$HELD_OUT" --resolutions 96,128,160,224 --command "bash benchmarks/train_default_weights.sh"
