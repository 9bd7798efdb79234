#!/usr/bin/env bash
# One command for a short GPU lease (docs/training.md): first the many-videos throughput of
# `qmra batch` (one video at a time against several sharing the GPU, with INIT's network), then
# training continued from INIT for all the time left, then the weights packed to come back.
# Results go to $OUT as they are made, so a command cut off at its limit still returns them.
#
# Carried along (about 60 MiB, under the 64 MiB limit): .device-small (the data pack, made by
# `train_imagenet_weights.sh data`) and INIT as fp16, made here by
#   python -c 'import sys, torch; from qmra.model.checkpoint import load_model, save_checkpoint
#   m, _ = load_model(sys.argv[1]); save_checkpoint(sys.argv[2], m, dtype=torch.float16)' RUN/last.safetensors .gpu-init/init.safetensors
# with the shipped weights moved out of the tree for the call.
#   OUT=out INIT=.gpu-init/init.safetensors LIMIT=590 bash benchmarks/gpu_lease.sh
# A dry run here, at a tiny size:
#   DEVICE=cpu LIMIT=200 SIZE=64 BATCH=2 WORKERS=1 CLIPS=2 FRAMES=2 MODES=batch1x1,batch1x2 OUT=/tmp/lease \
#     INIT=.gpu-init/init.safetensors bash benchmarks/gpu_lease.sh
set -uo pipefail
OUT=${OUT:?set OUT to the folder that comes back}
INIT=${INIT:?set INIT to the checkpoint to time and to continue from}
LIMIT=${LIMIT:-590}             # seconds the whole command may take
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-16}
FRAMES=${FRAMES:-20}
MODES=${MODES:-batch1x1,batch1x16,batch1x4,batch4}
MODE_LIMIT=${MODE_LIMIT:-40}    # seconds one throughput mode may take
BATCH_LIMIT=${BATCH_LIMIT:-150} # seconds the whole throughput part may take
TAIL=${TAIL:-75}                # seconds kept after training: its start-up, the export, the packing
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

log "throughput: $MODES"
timeout "$BATCH_LIMIT" "$PYTHON" -m benchmarks.batch_throughput --davis .device-small/davis --work /tmp/lease-clips \
  --clips "$CLIPS" --frames "$FRAMES" --folders --resize 854x480 --modes "$MODES" --baseline "${MODES%%,*}" --warmup \
  --timeout "$MODE_LIMIT" --args "--device $DEVICE --adapt 0 --weights $INIT" --json "$RES/batch-throughput.json" \
  > "$RES/batch-throughput.log" 2>&1
log "throughput: exit $?"

budget=$(( LIMIT - ($(date +%s) - START) - TAIL ))
log "training for $budget s"
if [ "$budget" -gt 30 ]; then
  OUT="$RES/train" DEVICE="$DEVICE" INIT="$INIT" BUDGET="$budget" MEMORY_ENCODER="${MEMORY_ENCODER:-shared}" \
    FROZEN="${FROZEN:-early}" RUN="${RUN:-runs/lease}" PYTHON="$PYTHON" \
    bash benchmarks/train_imagenet_weights.sh gpu > "$RES/train-recipe.log" 2>&1
  log "training: exit $?"
  # The weights' pieces come back as files of their own (at most 8 files in all).
  mv "$RES"/train/weights.part-* "$OUT"/ 2>/dev/null
fi
log "done"
ls -la "$OUT"
