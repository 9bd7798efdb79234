#!/usr/bin/env bash
# How qmra/weights/qmra-default.safetensors is made (its card, qmra/weights/qmra-default.json, has
# every setting and score). Three parts, on two machines:
#
#   bash benchmarks/train_default_weights.sh data    # here (CPU): the appearance pack and the device pack
#   bash benchmarks/train_default_weights.sh data-small   # the pack that travels beside the shipped weights
#   (on a remote GPU machine, see docs/training.md)   # three runs of benchmarks/train_device.sh
#   bash benchmarks/train_default_weights.sh cpu     # or, without one, a fine-tune on this CPU
#   bash benchmarks/train_default_weights.sh ship    # here (CPU): choose settings on validation, test once, ship
#
# The DAVIS 2016 split (docs/results-history.md, "The split"): test sequences are never trained on and never choose;
# validation sequences choose the checkpoint, the working resolution and the test-time adaptation.
set -euo pipefail
source "$(dirname "$0")/davis_split.sh"

case "${1:-}" in
  data)
    # Cut-outs and photographs from Debian packages plus the training sequences' objects and frames.
    .venv/bin/python -m benchmarks.prepare_appearance --davis "$DAVIS" --train-sequences "$TRAIN" --out "$APPEARANCE"
    # What travels to the GPU machine (64 MiB with the checkout): WebP cut-outs, smaller JPEGs.
    .venv/bin/python -m benchmarks.device_pack --appearance "$APPEARANCE" --davis "$DAVIS" --sequences "$TRAIN" \
        --out .device-data --quality 72 --max-background-side 640 --davis-scale 0.75
    grep -qx '/.device-data/' .git/info/exclude || echo '/.device-data/' >> .git/info/exclude
    ;;
  data-small)
    # A pack small enough to travel *with* the shipped weights (36.6 MB of a 64 MiB upload), so that a
    # remote GPU machine continues from them: 27.4 MB (WebP/JPEG quality 50, backgrounds <= 512 px, DAVIS
    # frames at 0.55 scale). See docs/training.md, "Training on a remote GPU machine".
    .venv/bin/python -m benchmarks.device_pack --appearance "$APPEARANCE" --davis "$DAVIS" --sequences "$TRAIN" \
        --out .device-small --quality 50 --max-background-side 512 --davis-scale 0.55
    grep -qx '/.device-small/' .git/info/exclude || echo '/.device-small/' >> .git/info/exclude
    # It travels as one file: as 3,058 files, an upload that counts per-file overhead refused it over 64 MiB.
    rm -f .device-small.zip && .venv/bin/python -m zipfile -c .device-small.zip .device-small
    grep -qx '/.device-small.zip' .git/info/exclude || echo '/.device-small.zip' >> .git/info/exclude
    ;;
  # On the GPU machine (upload .device-data beside the checkout; move the old default weights out of
  # the tree first so that 64 MiB suffice), then reassemble OUT/weights.part-* here:
  #   BUDGET=450 bash benchmarks/train_device.sh                                             # runs/gpu1
  #   BUDGET=190 LR=1e-4 INIT=runs/device/last.safetensors RUN=runs/device2 bash benchmarks/train_device.sh   # runs/gpu2
  # and, with the pack that travels beside the shipped weights (data-small, sent as one zip file):
  #   BUDGET=460 LR=1e-4 INIT=qmra/weights/qmra-default.safetensors DATA=.device-small RUN=runs/device3 \
  #       bash benchmarks/train_device.sh                                                               # runs/gpu3
  cpu)
    # Without a GPU: continue from the shipped weights on this machine's CPU for BUDGET seconds (2 cores:
    # ~0.6 steps/s at 256 px, batch 4), BatchNorm frozen (its statistics from the GPU runs' batch 16),
    # the project's procedural clips added (seed 1: the demo's video is seed 0), a candidate kept every
    # KEEP steps for the ship step to choose among on validation. Tried once from run 3
    # (docs/results-history.md): validation fell (49.8 -> 43.3 at step 1,000 -> 32.7 at 2,000), so it was not shipped.
    .venv/bin/python -m qmra train --device cpu --backbone resnet18 --decoder-channels 128 \
        --data "flying:.device-data/appearance@5" --data "davis:.device-data/davis@2" \
        --data "davis-static:.device-data/davis@1" --data "composite:.device-data/davis@1" --data "synthetic:64@1" \
        --init "${INIT:-qmra/weights/qmra-default.safetensors}" --size 256 --batch-size 4 --lr "${LR:-3e-5}" \
        --lr-schedule cosine --warmup 50 --steps 1000000 --time-budget "${BUDGET:-6600}" --save-every 500 \
        --keep-every "${KEEP:-1000}" --val-every 1000000 --workers 1 --seed 1 --out "${RUN:-runs/cpu4}"
    ;;
  ship)
    .venv/bin/python -m benchmarks.ship_default_weights --davis "$DAVIS" --validation "$VALIDATION" --test "$TEST" \
        --checkpoints "${CHECKPOINTS:-runs/gpu2/weights.safetensors,runs/gpu3/weights.safetensors}" \
        --candidates "${CANDIDATES:-384:20:1e-5:30:0:1:3:largest-blob:5,448:20:1e-5:30:0:1:3:largest-blob:10,448:20:1e-5:30:0:1:3:largest-blob:5}" \
        --tolerance "${TOLERANCE:-1}" \
        --command "bash benchmarks/train_default_weights.sh data" \
        --command "BUDGET=450 bash benchmarks/train_device.sh" \
        --command "BUDGET=190 LR=1e-4 INIT=runs/device/last.safetensors RUN=runs/device2 bash benchmarks/train_device.sh" \
        --command "bash benchmarks/train_default_weights.sh data-small" \
        --command "BUDGET=460 LR=1e-4 INIT=qmra/weights/qmra-default.safetensors DATA=.device-small RUN=runs/device3 bash benchmarks/train_device.sh" \
        --training-note "${NOTE:-}" ${OUT:+--out "$OUT"}
    ;;
  *)
    echo "usage: $0 data|data-small|cpu|ship" >&2
    exit 2
    ;;
esac
