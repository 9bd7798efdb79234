#!/usr/bin/env bash
# One training run on a remote GPU machine (see docs/training.md), made to fit its limits: the
# data travel as a compact pack (benchmarks/device_pack.py → .device-data/), training runs for a
# fixed time budget, and the weights come back as fp16 in pieces of at most 15 MiB.
#
#   OUT=out bash benchmarks/train_device.sh               # on the GPU machine; OUT: the folder that comes back
#   DEVICE=cpu BUDGET=20 SIZE=64 BATCH=2 WORKERS=1 OUT=/tmp/out bash benchmarks/train_device.sh   # a dry run here
#
# Reassemble here: cat OUT/weights.part-* > weights.safetensors
set -euo pipefail
DATA=${DATA:-.device-data}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-420}          # seconds of training
SIZE=${SIZE:-384}
BATCH=${BATCH:-16}
WORKERS=${WORKERS:-14}
BACKBONE=${BACKBONE:-resnet18}
DECODER=${DECODER:-128}
LR=${LR:-3e-4}
INIT=${INIT:-}                 # continue from a checkpoint (fp16 weights from an earlier run)
BACKBONE_WEIGHTS=${BACKBONE_WEIGHTS:-}   # ImageNet encoders: a file (benchmarks/export_backbone.py) or 'imagenet'
BACKBONE_LR=${BACKBONE_LR:-}   # the encoder's learning rate over the new layers' (default: 0.1 with ImageNet weights, else 1)
FROZEN=${FROZEN:-none}         # encoder parameters kept fixed: none, early, all
MEMORY_ENCODER=${MEMORY_ENCODER:-own}   # own (the paper's) or shared (the query encoder's features + the box)
FLYING=${FLYING:-$DATA/appearance}   # the cut-outs and photographs (a training split of them, to hold some out)
EXTRA_DATA=${EXTRA_DATA:-}     # more data specs, space-separated, e.g. synthetic:64@0.5 (procedural small shapes on busy texture)
LOOSE_BOXES=${LOOSE_BOXES:-}   # memory frames' boxes drawn loose (qmra train --loose-boxes), e.g. 0.1; default tight
GREY_CLIPS=${GREY_CLIPS:-}     # share of greyscale clips (qmra train --grey-clips); default qmra train's
BLUR_CLIPS=${BLUR_CLIPS:-}     # share of blurred clips (qmra train --blur-clips), e.g. 0.1; default none
MAX_GAP=${MAX_GAP:-}           # most frames between a video clip's frames (qmra train --max-gap); default qmra train's
# From scratch BatchNorm must learn; ImageNet encoders keep theirs (BN=none).
BN=${BN:-train}
RUN=${RUN:-runs/device}
OUT=${OUT:?set OUT to the folder that comes back}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

mkdir -p "$OUT"
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; nproc;
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'; } > "$OUT/machine.txt" 2>&1
if command -v nvidia-smi >/dev/null && [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$OUT/gpu-use.csv" 2>&1 &
  MONITOR=$!
fi

"$PYTHON" -m qmra train --device "$DEVICE" --backbone "$BACKBONE" --decoder-channels "$DECODER" \
  $([ "$BN" = train ] && echo --train-batchnorm) --frozen-backbone "$FROZEN" --memory-encoder "$MEMORY_ENCODER" \
  ${BACKBONE_WEIGHTS:+--backbone-weights "$BACKBONE_WEIGHTS"} ${BACKBONE_LR:+--backbone-lr "$BACKBONE_LR"} \
  --data "flying:$FLYING@5" --data "davis:$DATA/davis@2" --data "davis-static:$DATA/davis@1" \
  --data "composite:$DATA/davis@1" $(for spec in $EXTRA_DATA; do echo --data "$spec"; done) ${INIT:+--init "$INIT"} \
  --size "$SIZE" --batch-size "$BATCH" --lr "$LR" --lr-schedule cosine --warmup 200 --steps 1000000 \
  ${LOOSE_BOXES:+--loose-boxes "$LOOSE_BOXES"} ${GREY_CLIPS:+--grey-clips "$GREY_CLIPS"} \
  ${BLUR_CLIPS:+--blur-clips "$BLUR_CLIPS"} ${MAX_GAP:+--max-gap "$MAX_GAP"} \
  --time-budget "$BUDGET" --save-every 1000 --workers "$WORKERS" --out "$RUN" --quiet 2>&1 | tee "$OUT/train.log"

"$PYTHON" - "$RUN" "$OUT" <<'EOF' | tee -a "$OUT/train.log"
import json, sys
from pathlib import Path

import torch

from qmra.model.checkpoint import load_model, save_checkpoint

run, out = Path(sys.argv[1]), Path(sys.argv[2])
model, metadata = load_model(run / "last.safetensors")
record = json.loads((run / "last.json").read_text())
save_checkpoint(out / "weights.safetensors", model, metadata={"training": record}, dtype=torch.float16)
# Where the steps' time went (docs/training.md): waiting for clips, or the step itself; the run's
# second half, after the workers' start-up.
import csv
with (run / "metrics.csv").open() as handle:
    rows = [r for r in csv.DictReader(handle) if r.get("data_wait_s")]
late = rows[len(rows) // 2:]
if late:
    seconds = sum(1 / float(r["steps_per_s"]) for r in late)
    waited = sum(float(r["data_wait_s"]) for r in late)
    print(f"steps {late[0]['step']}-{late[-1]['step']}: {len(late) / seconds:.2f} steps/s, "
          f"{100 * waited / seconds:.0f} % of the time waiting for clips")
EOF
split -b 15M "$OUT/weights.safetensors" "$OUT/weights.part-"
rm "$OUT/weights.safetensors"
[ -n "${MONITOR:-}" ] && kill "$MONITOR" 2>/dev/null || true
(cd "$RUN" && tar -czf "$OUT/run.tar.gz" $(ls metrics.csv last.json curves.png 2>/dev/null))
ls -la "$OUT"
