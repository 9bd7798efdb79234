#!/usr/bin/env bash
# Issue 15's comparison in one run on a lent GPU: qmra's paper preset (fp32, then bf16 + channels-last),
# Cutie-base and SAM 2.1 on the same machine, same 854x480 frames, 1 and 3 objects, steady state.
# Every result is written to $OUT as soon as it exists (a time-out still returns what finished).
#
# Here first, at a tiny size (checks the script, not the numbers):
#   cp -r ../shared/peer-bench peer-bench    # ignored: add /peer-bench/ to .git/info/exclude
#   DEVICE=cpu SIZE=160x96 FRAMES=2 WARMUP=2 LONG=none SMOKE=1 AMP= OUT=/tmp/gpu-out bash benchmarks/gpu_speed.sh
# On the GPU machine (device tool: carry peer-bench; about 6 minutes on an H100):
#   bash benchmarks/gpu_speed.sh
set -uo pipefail
OUT=${OUT:?set OUT to the folder that comes back}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-854x480}
FRAMES=${FRAMES:-20}
WARMUP=${WARMUP:-full}
LONG=${LONG:-100,2000}
SMOKE=${SMOKE:-}
AMP=${AMP---amp}                 # the peers' own autocast (fp16 for Cutie, bf16 for SAM 2); AMP= for none
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/steps.log"; }
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; nproc;
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'; git log --oneline -1; } \
  > "$OUT/machine.txt" 2>&1

qmra_bench() {  # NAME, then qmra bench switches
  local name=$1; shift
  log "qmra $name"
  timeout 240 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup "$WARMUP" --frames "$FRAMES" \
    --runs 3 --no-profile --memory-frames "$LONG" --json "$OUT/qmra-$name.json" "$@" > "$OUT/qmra-$name.log" 2>&1
  log "qmra $name: exit $?"
}
qmra_bench fp32
qmra_bench bf16-nhwc --precision bf16 --channels-last
# Where the time goes: a short profiled window, memory already full.
log "qmra profile"
timeout 120 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup "$WARMUP" --frames 5 --runs 1 \
  --memory-frames none --precision bf16 --channels-last --json "$OUT/qmra-profile.json" > "$OUT/qmra-profile.log" 2>&1
log "qmra profile: exit $?"

if [ -d peer-bench ]; then
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" peer-bench/whl/*.whl \
    > "$OUT/peer-install.log" 2>&1
  peers="PYTHONPATH=$site:$PWD/peer-bench/cutie:$PWD/peer-bench/sam2"
  small=()
  [ -n "$SMOKE" ] && small=(--size "$SIZE" --frames 6 --warmup 2)
  log "cutie"
  env "$peers" timeout 120 "$PYTHON" peer-bench/bench_cutie.py --device "$DEVICE" --objects 1,3 --frames 100 $AMP \
    --json "$OUT/cutie.json" "${small[@]}" > "$OUT/cutie.log" 2>&1
  log "cutie: exit $?"
  [ -n "$SMOKE" ] && small+=(--image-size 256)
  log "sam2"
  env "$peers" timeout 180 "$PYTHON" peer-bench/bench_sam2.py --device "$DEVICE" --objects 1,3 --frames 40 $AMP \
    --json "$OUT/sam2.json" "${small[@]}" > "$OUT/sam2.log" 2>&1
  log "sam2: exit $?"
else
  log "no peer-bench/ folder: Cutie and SAM 2 skipped"
fi
(cd "$OUT" && tar -czf results.tar.gz ./*.json ./*.log machine.txt 2>/dev/null)
ls -la "$OUT"
