#!/usr/bin/env bash
# The README's CPU speed rows in one run on this machine: qmra's shipped weights with the settings they
# recommend and with --preset fast, Cutie-base beside them (when ../shared/peer-bench is there), the
# same 854x480 frames, 1 and 3 objects, memory full (what frames of a long video cost) and at the start
# of a video; then `qmra segment` end to end on a real clip made from DAVIS frames (decoded, masks and
# overlay written, start-up included). Nothing else should run on the machine meanwhile.
#
#   bash benchmarks/cpu_speed.sh                 # about 25 minutes on 2 cores; results in bench-results/cpu/
#   PARTS=qmra bash benchmarks/cpu_speed.sh      # only qmra's model rows
#   SIZE=160x96 FRAMES=1 RUNS=1 OUT=/tmp/cpu-smoke bash benchmarks/cpu_speed.sh   # checks the script, not the numbers
#
# PARTS, run in the order given: qmra (bench, memory full and start of video), cutie (peer-bench's
# bench_cutie.py on the CPU, random weights: speed does not depend on them), segment (qmra segment on
# CLIP, default and --preset fast).
set -uo pipefail
OUT=${OUT:-bench-results/cpu}
PARTS=${PARTS:-qmra,cutie,segment}
SIZE=${SIZE:-854x480}
FRAMES=${FRAMES:-6}
RUNS=${RUNS:-3}
DAVIS=${DAVIS:-../shared/data/davis2016}
CLIP_SEQUENCE=${CLIP_SEQUENCE:-goat}                # a validation sequence: speed only, nothing is scored
CLIP_BOX=${CLIP_BOX:-349,71,566,390}                  # its first mask's tight box
PEERS=${PEERS:-../shared/peer-bench}
PYTHON=${PYTHON:-.venv/bin/python}
WEIGHTS=qmra/weights/qmra-default.safetensors
mkdir -p "$OUT"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/steps.log"; }
{ date; lscpu | grep -E '^(Model name|CPU\(s\)|Flags)' | sed 's/^Flags:.*\(avx512_bf16\).*/Flags: ... \1 .../';
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'; git log --oneline -1;
  uptime; } > "$OUT/machine.txt" 2>&1

qmra_bench() {  # NAME, then qmra bench switches
  local name=$1; shift
  log "qmra $name"
  "$PYTHON" -m qmra bench --weights "$WEIGHTS" --size "$SIZE" --objects 1,3 --frames "$FRAMES" --runs "$RUNS" --no-profile \
    --json "$OUT/qmra-$name.json" "$@" > "$OUT/qmra-$name.log" 2>&1
  log "qmra $name: exit $?"
}
part_qmra() {
  qmra_bench default-full --warmup full
  qmra_bench fast-full --preset fast --warmup full
  qmra_bench default-start --warmup 2
  qmra_bench fast-start --preset fast --warmup 2
}
part_cutie() {
  if [ ! -f "$PEERS/bench_cutie.py" ]; then log "cutie: skipped, no $PEERS/bench_cutie.py"; return; fi
  local site
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$site" "$PEERS"/whl/*.whl > "$OUT/cutie-install.log" 2>&1
  log "cutie-base"
  PYTHONPATH="$site:$PEERS/cutie:$PEERS" "$PYTHON" "$PEERS/bench_cutie.py" --device cpu --size "$SIZE" --objects 1,3 \
    --frames "$FRAMES" --json "$OUT/cutie.json" > "$OUT/cutie.log" 2>&1
  log "cutie-base: exit $?"
  rm -rf "$site"
}
part_segment() {
  local clip="$OUT/$CLIP_SEQUENCE.mp4"
  "$PYTHON" - "$DAVIS/JPEGImages/480p/$CLIP_SEQUENCE" "$clip" <<'EOF'
import sys

from qmra.data import Mp4Writer, open_frames

frames = open_frames(sys.argv[1])
with Mp4Writer(sys.argv[2], frames.info.width, frames.info.height, fps=24) as writer:
    for frame in frames:
        writer.write(frame)
EOF
  for preset in default fast; do
    local flags=()
    [ "$preset" = fast ] && flags=(--preset fast)
    log "segment $preset"
    rm -rf "$OUT/segment-$preset"
    local start=$EPOCHREALTIME
    "$PYTHON" -m qmra segment "$clip" --box "$CLIP_BOX" --out "$OUT/segment-$preset/masks" \
      --overlay "$OUT/segment-$preset/overlay.mp4" "${flags[@]}" > "$OUT/segment-$preset.log" 2>&1
    local status=$?
    log "segment $preset: exit $status, $("$PYTHON" -c "print(round($EPOCHREALTIME - $start, 1))") s wall"
  done
}

for part in ${PARTS//,/ }; do
  "part_$part"
done
log "done"
