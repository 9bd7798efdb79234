#!/usr/bin/env bash
# One command for a short GPU lease (docs/training.md): training with `--memory-encoder shared` for all
# the time the limit leaves, the weights packed to come back, then the many-videos throughput of
# `qmra batch` with the weights just trained (one video at a time against several sharing the GPU).
# Results go to $OUT as they are made, so a command cut off at its limit still returns them.
#
# Carried along: .device-small (the data pack, made by `train_imagenet_weights.sh data`, 27 MB) and
# either .imagenet (the encoder, 8.5 MB: training starts from ImageNet) or INIT, a checkpoint to
# continue, as fp16 (24 MB), made here by
#   python -c 'import sys, torch; from qmra.model.checkpoint import load_model, save_checkpoint
#   m, _ = load_model(sys.argv[1]); save_checkpoint(sys.argv[2], m, dtype=torch.float16)' RUN/last.safetensors F
# into a git-ignored folder; the shipped weights are moved out of the tree for the call.
#   OUT=out LIMIT=580 [INIT=.gpu-init/init.safetensors] bash benchmarks/gpu_lease.sh
# A dry run here, at a tiny size:
#   PYTHON=.venv/bin/python DEVICE=cpu LIMIT=230 SIZE=64 BATCH=2 WORKERS=1 CLIPS=2 FRAMES=2 MODES=batch1x1,batch1x2 \
#     MODE_LIMIT=40 BATCH_LIMIT=90 TAIL=40 OUT=/tmp/lease RUN=/tmp/lease-run bash benchmarks/gpu_lease.sh
set -uo pipefail
OUT=${OUT:?set OUT to the folder that comes back}
INIT=${INIT:-}                  # a checkpoint to continue; without it, the ImageNet encoder in .imagenet/
LIMIT=${LIMIT:-580}             # seconds the whole command may take
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-48}              # 16 clips of 20 frames were too short a job: start-up pressed every ratio to 1
FRAMES=${FRAMES:-20}
MODES=${MODES-batch1x1,batch1x16,batch1x4,batch4}  # empty: training alone
MODE_LIMIT=${MODE_LIMIT:-50}    # seconds one throughput mode may take
BATCH_LIMIT=${BATCH_LIMIT:-230} # seconds kept for the whole throughput part
TAIL=${TAIL:-60}                # seconds kept for training's start-up, the export and the packing
RUN=${RUN:-runs/lease}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
START=$(date +%s)
mkdir -p "$OUT"
RES=$(mktemp -d)
pack() { (cd "$RES" && tar -czf "$OUT/results.tar.gz.part" . && mv "$OUT/results.tar.gz.part" "$OUT/results.tar.gz"); }
log() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - START ))s] $*" | tee -a "$RES/steps.log"; pack; }
(while sleep 20; do pack; done) &
PACKER=$!
trap 'kill $PACKER 2>/dev/null' EXIT

budget=$(( LIMIT - BATCH_LIMIT - TAIL ))
log "training for $budget s from ${INIT:-ImageNet}"
OUT="$RES/train" DEVICE="$DEVICE" INIT="$INIT" BUDGET="$budget" MEMORY_ENCODER="${MEMORY_ENCODER:-shared}" \
  FROZEN="${FROZEN:-early}" RUN="$RUN" PYTHON="$PYTHON" \
  bash benchmarks/train_imagenet_weights.sh gpu > "$RES/train-recipe.log" 2>&1
log "training: exit $?"
mv "$RES"/train/weights.part-* "$OUT"/ 2>/dev/null  # files of their own: at most 8 come back

weights=$RUN/last.safetensors
[ -f "$weights" ] || weights=$INIT
if [ -n "$weights" ] && [ -n "$MODES" ]; then
  left=$(( LIMIT - ($(date +%s) - START) - 10 ))
  log "throughput of $MODES with $weights, at most $left s"
  timeout "$left" "$PYTHON" -m benchmarks.batch_throughput --davis .device-small/davis --work /tmp/lease-clips \
    --clips "$CLIPS" --frames "$FRAMES" --folders --resize 854x480 --modes "$MODES" --baseline "${MODES%%,*}" --warmup \
    --timeout "$MODE_LIMIT" --args "--device $DEVICE --adapt 0 --weights $weights" --json "$RES/batch-throughput.json" \
    > "$RES/batch-throughput.log" 2>&1
  log "throughput: exit $?"
fi
log "done"
ls -la "$OUT"
