#!/usr/bin/env bash
# The GPU speed comparison (docs/speed.md) in one run on a GPU machine: qmra's paper preset (fp32, then bf16 + channels-last),
# Cutie-base and SAM 2.1 on the same machine, same 854x480 frames, 1 and 3 objects, steady state.
# Every result goes into $OUT/results.tar.gz as soon as it exists (a time-out still returns what
# finished); $OUT holds three files only, since at most 8 come back.
#
# Here first, at a tiny size (checks the script, not the numbers):
#   cp -r ../shared/peer-bench peer-bench    # ignored: add /peer-bench/ to .git/info/exclude
#   DEVICE=cpu SIZE=160x96 FRAMES=2 WARMUP=2 LONG=none SMOKE=1 AMP= OUT=/tmp/gpu-out bash benchmarks/gpu_speed.sh
# On the GPU machine (peer-bench and .device-data/agree uploaded beside the checkout; about 6 minutes on an H200
# for the default PARTS, compilation included: about 35 s for the first object count, 20 s for the next):
#   bash benchmarks/gpu_speed.sh
#   PARTS=graphs,agree bash benchmarks/gpu_speed.sh      # only the compiled rows and the mask check
# PARTS, run in the order given: default (the shipped weights with the settings they recommend, bf16 +
# NHWC compiled with CUDA graphs), fast (--preset fast with the shipped weights so compiled: the top-k read
# under bf16 and CUDA graphs), layout (benchmarks/memory_layout_ab.py in bf16: the memory of features
# against the memory of values on SDPA, frames interleaved, 1 and 3 objects), graphs (the paper preset so compiled, with the long-run memory), peers (Cutie, SAM 2), agree (benchmarks/agreement.py: the switches' masks against fp32 on a
# real clip, shipped weights), qmra (fp32, bf16 + NHWC, not compiled; a profiled window), probe
# (benchmarks/gpu_probe.py: device-busy and host-wait time per frame, compiled), redetect (the default part
# with --no-redetect, then with --redetect: the cost of looking again for emptied masks, whose check reads
# each object's peak back to the host mid-frame), segment (qmra segment
# on the real clip as a user runs it, fp32 and bf16: adaptation seconds and FPS). The real clip: a
# DAVIS-layout folder at AGREE (made here by
#   python -m benchmarks.agreement_clip --davis ../shared/data/davis2016 --out .device-data/agree).
set -uo pipefail
OUT=${OUT:?set OUT to the folder that comes back}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-854x480}
FRAMES=${FRAMES:-20}
WARMUP=${WARMUP:-full}
LONG=${LONG:-100,2000}
SMOKE=${SMOKE:-}
PARTS=${PARTS:-default,redetect,fast,layout,graphs,peers,agree,qmra,probe,segment}
LONG_EAGER=${LONG_EAGER:-none}   # the long-run memory of the uncompiled rows (docs/speed.md: 1.000 and 1.031)
AGREE=${AGREE:-.device-data/agree}
WEIGHTS=${WEIGHTS:-qmra/weights/qmra-default.safetensors}  # a copy of the shipped weights where they were moved out
AMP=${AMP---amp}                 # the peers' own autocast (fp16 for Cutie, bf16 for SAM 2); AMP= for none
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
RES=$(mktemp -d)  # every JSON and log, packed into $OUT/results.tar.gz after each step
pack() { (cd "$RES" && tar -czf "$OUT/results.tar.gz.part" . && mv "$OUT/results.tar.gz.part" "$OUT/results.tar.gz"); }
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/steps.log"; pack; }
(while sleep 20; do pack; done) &  # a step cut off by the time limit still returns its log so far
PACKER=$!
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; nproc;
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'; git log --oneline -1; } \
  > "$OUT/machine.txt" 2>&1

qmra_bench() {  # NAME, then qmra bench switches
  local name=$1; shift
  log "qmra $name"
  timeout 240 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup "$WARMUP" --frames "$FRAMES" \
    --runs 3 --no-profile --memory-frames "$LONG_EAGER" --json "$RES/qmra-$name.json" "$@" > "$RES/qmra-$name.log" 2>&1
  log "qmra $name: exit $?"
}
part_qmra() {
  qmra_bench fp32 --no-channels-last   # the reference layout (NHWC is the default)
  qmra_bench bf16-nhwc --precision bf16 --channels-last
  # Where the time goes: a short profiled window, memory already full.
  log "qmra profile"
  timeout 120 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup "$WARMUP" --frames 5 --runs 1 \
    --memory-frames none --precision bf16 --channels-last --json "$RES/qmra-profile.json" > "$RES/qmra-profile.log" 2>&1
  log "qmra profile: exit $?"
}
part_graphs() {
  # Compiled, the memory is read whole (empty slots masked) from the first frame on, so a frame costs
  # what a steady-state frame costs after a few warm-up frames (compilation, graph capture).
  log "qmra bf16-nhwc-graphs"
  timeout 420 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup 6 --frames "$FRAMES" \
    --runs 3 --no-profile --memory-frames "$LONG" --precision bf16 --channels-last --compile reduce-overhead \
    --json "$RES/qmra-bf16-nhwc-graphs.json" > "$RES/qmra-bf16-nhwc-graphs.log" 2>&1
  log "qmra bf16-nhwc-graphs: exit $?"
}
part_default() {
  # What a user of the shipped weights gets at best on this GPU: their own settings (working size, memory
  # schedule), compiled; the paper preset's compiled row is the reference beside it.
  log "qmra default-bf16-nhwc-graphs"
  timeout 300 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup 6 --frames "$FRAMES" \
    --runs 3 --no-profile --memory-frames "$LONG" --precision bf16 --channels-last --compile reduce-overhead \
    --weights "$WEIGHTS" \
    --json "$RES/qmra-default-bf16-nhwc-graphs.json" > "$RES/qmra-default-bf16-nhwc-graphs.log" 2>&1
  log "qmra default-bf16-nhwc-graphs: exit $?"
}
part_redetect() {
  # The shipped settings look again for an emptied mask (--redetect): each tracked frame reads the
  # objects' peak probabilities back to the host before its merge and the next frame's encoding are
  # queued. Without and with it, one after the other, otherwise as the default part.
  for switch in --no-redetect --redetect; do
    log "qmra default-graphs $switch"
    timeout 240 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup 6 --frames "$FRAMES" \
      --runs 3 --no-profile --memory-frames none --precision bf16 --channels-last --compile reduce-overhead \
      --weights "$WEIGHTS" "$switch" --json "$RES/qmra-default-graphs$switch.json" > "$RES/qmra-default-graphs$switch.log" 2>&1
    log "qmra default-graphs $switch: exit $?"
  done
}
part_fast() {
  # The fast preset with the shipped weights, bf16, compiled with CUDA graphs: its top-k read (sparse
  # sums of K values, softmax weights cast to the values' precision) under autocast and graph capture.
  log "qmra fast-bf16-graphs"
  timeout 300 "$PYTHON" -m qmra bench --device "$DEVICE" --size "$SIZE" --objects 1,3 --warmup 6 --frames "$FRAMES" \
    --runs 3 --no-profile --memory-frames none --preset fast --precision bf16 --compile reduce-overhead \
    --weights "$WEIGHTS" \
    --json "$RES/qmra-fast-bf16-graphs.json" > "$RES/qmra-fast-bf16-graphs.log" 2>&1
  log "qmra fast-bf16-graphs: exit $?"
}
part_layout() {
  # Memory of features (one 352-channel head for SDPA) against memory of values (four 128-channel
  # heads, flash attention): decides whether GPUs should keep features too, as CPUs do.
  for objects in 1 3; do
    log "memory layout, $objects object(s)"
    timeout 180 "$PYTHON" -m benchmarks.memory_layout_ab --device "$DEVICE" --precision bf16 --everywhere \
      --objects "$objects" --frames "$FRAMES" ${SMOKE:+--warmup 3} \
      > "$RES/layout-$objects.log" 2>&1
    log "memory layout, $objects object(s): exit $?"
  done
}
part_probe() {
  log "probe"
  timeout 240 "$PYTHON" -m benchmarks.gpu_probe --device "$DEVICE" --size "$SIZE" --configs bf16-graphs --objects 1,3 \
    ${SMOKE:+--warmup 2 --frames 2 --profile-frames 2} --out "$RES/probe.jsonl" > "$RES/probe.log" 2>&1
  log "probe: exit $?"
}
part_agree() {
  if [ -d "$AGREE" ]; then
    log "agreement"
    timeout 300 "$PYTHON" -m benchmarks.agreement --davis "$AGREE" --device "$DEVICE" --frames "${AGREE_FRAMES:-40}" \
      --variant "bf16-nhwc=--precision bf16 --channels-last" \
      --variant "bf16-nhwc-graphs=--precision bf16 --channels-last --compile reduce-overhead" \
      --json "$RES/agreement.jsonl" > "$RES/agreement.log" 2>&1
    log "agreement: exit $?"
  else
    log "no $AGREE folder: agreement skipped"
  fi
}
part_segment() {
  if [ -d "$AGREE" ]; then
    # What a user gets: qmra segment with the shipped weights' recommendation (its last line gives
    # the adaptation's seconds on this device and the frames per second).
    clip=$(ls -d "$AGREE"/JPEGImages/480p/* | head -1)
    box=$("$PYTHON" -c 'import sys, numpy as np; from PIL import Image; from qmra.data import box_from_mask
b = box_from_mask(np.asarray(Image.open(sys.argv[1])) > 0); print(f"{b.x0:g},{b.y0:g},{b.x1:g},{b.y1:g}")' \
      "${clip/JPEGImages/Annotations}/00000.png")
    for precision in fp32 bf16; do
      log "segment $precision"
      timeout 120 "$PYTHON" -m qmra segment "$clip" --box "$box" --device "$DEVICE" --precision "$precision" \
        --out "$(mktemp -d)/masks" > "$RES/segment-$precision.log" 2>&1
      log "segment $precision: exit $?"
    done
  else
    log "no $AGREE folder: segment skipped"
  fi
}
part_peers() {
  if [ ! -d peer-bench ]; then
    log "no peer-bench/ folder: Cutie and SAM 2 skipped"
    return
  fi
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" peer-bench/whl/*.whl \
    > "$RES/peer-install.log" 2>&1
  # omegaconf needs PyYAML and iopath needs portalocker, which not every image has (docs/speed.md:
  # their wheels in peer-bench/extra).
  for need in yaml:PyYAML portalocker:portalocker; do
    "$PYTHON" -c "import ${need%%:*}" 2>/dev/null || "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --upgrade --target "$site" peer-bench/extra/"${need#*:}"-*.whl >> "$RES/peer-install.log" 2>&1
  done
  peers="PYTHONPATH=$site:$PWD/peer-bench/cutie:$PWD/peer-bench/sam2"
  small=()
  [ -n "$SMOKE" ] && small=(--size "$SIZE" --frames 6 --warmup 2)
  log "cutie"
  env "$peers" timeout 120 "$PYTHON" peer-bench/bench_cutie.py --device "$DEVICE" --objects 1,3 --frames 100 $AMP \
    --json "$RES/cutie.json" "${small[@]}" > "$RES/cutie.log" 2>&1
  log "cutie: exit $?"
  [ -n "$SMOKE" ] && small+=(--image-size 256)
  log "sam2"
  env "$peers" timeout 180 "$PYTHON" peer-bench/bench_sam2.py --device "$DEVICE" --objects 1,3 --frames 40 $AMP \
    --json "$RES/sam2.json" "${small[@]}" > "$RES/sam2.log" 2>&1
  log "sam2: exit $?"
}
for name in ${PARTS//,/ }; do
  if ! declare -F "part_$name" > /dev/null; then
    log "unknown part $name"
    continue
  fi
  "part_$name"
done
kill "$PACKER" 2>/dev/null
log "done"
ls -la "$OUT" "$RES"
