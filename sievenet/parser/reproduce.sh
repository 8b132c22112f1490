#!/usr/bin/env bash
# Reproduce weights/parser-s: render the training scenes of both studios (with mediapipe's view of each),
# train the parser, export it, render the test scenes at 512x384 on held-out background photos, evaluate
# (learned vs heuristic, recorded in the manifest) and draw assets/parser-compare.png.
#
#   bash sievenet/parser/reproduce.sh          # everything (a killed step continues where it stopped)
#   bash sievenet/parser/reproduce.sh data     # one step: data | train | export | eval | compare
#
# The two renders run side by side (one process per core). weights/parser-s/README.md has the times.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} LP_NUM_THREADS=1
PY=${PYTHON:-python}
DATA=${DATA:-runs/parser-data}
RUN=${RUN:-runs/parser-s}
OUT=${OUT:-weights/parser-s}
STEPS=${STEPS:-2000}
N3D=${N3D:-3000}
N2D=${N2D:-2000}
step=${1:-all}

if [[ $step == all || $step == data ]]; then
  $PY -m sievenet.parser render --studio 3d --n "$N3D" --out "$DATA/train-3d" &
  $PY -m sievenet.parser render --studio 2d --n "$N2D" --out "$DATA/train-2d"
  wait
fi
if [[ $step == all || $step == train ]]; then
  $PY -m sievenet.parser train "$RUN" --data "$DATA/train-3d" "$DATA/train-2d" --steps "$STEPS"
fi
if [[ $step == all || $step == export ]]; then
  $PY -m sievenet.parser export "$RUN" --out "$OUT"
fi
if [[ $step == all || $step == eval ]]; then
  $PY -m sievenet.parser render --studio 3d --n 150 --split test --size 512x384 --out "$DATA/test-3d" &
  $PY -m sievenet.parser render --studio 2d --n 150 --split test --size 512x384 --out "$DATA/test-2d"
  wait
  $PY -m sievenet.parser eval --weights "$OUT" --data "$DATA/test-3d" "$DATA/test-2d" --out "$OUT/eval.json" --record
fi
if [[ $step == all || $step == compare ]]; then
  $PY -m sievenet.parser compare --weights "$OUT" --out assets/parser-compare.png
fi
