#!/usr/bin/env bash
# Reproduce weights/sievenet-s: sievenet-s trained warp -> seg -> warp-fine -> tt on the synthetic studio at
# 256x192, then evaluated on 500 synthetic test pairs. Planned for 2 CPU cores in under 3 hours (steps in the
# YAMLs: warp 3000, seg 3000, warp-fine 6000 (the fine TPS stage retrained alone on the frozen coarse one;
# linear lr decay over the last 1500), tt 4000 with the duelling triplet from step 3000; `reproduce.sh timing`
# projects the total on your machine, weights/README.md has the times measured here).
#
#   bash sievenet/train/reproduce.sh            # all stages, then the evaluation
#   bash sievenet/train/reproduce.sh warp       # one stage: warp | seg | warp-fine | tt | eval
#   bash sievenet/train/reproduce.sh timing     # measure s/step here and project the total first
#
# warp, seg and warp-fine export to $PARTIAL (default weights/sievenet-s-partial), the next stage starts from
# there, and tt exports the complete release to $OUT (default weights/sievenet-s), so stages can run in
# different sessions: commit the folder a stage wrote before starting the next (and drop $PARTIAL from the
# repository once $OUT is committed; the app only ever sees a complete release). A killed stage continues
# where it stopped when run again (resume=true; checkpoints are atomic). Deterministic on one machine with the
# same torch build.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-weights/sievenet-s}
PARTIAL=${PARTIAL:-weights/sievenet-s-partial}
RUNS=${RUNS:-runs/reproduce}
EVAL_N=${EVAL_N:-500}
CONFIGS=sievenet/train/configs

train_stage() {  # train_stage STAGE [key=value ...]
    local stage=$1
    shift
    local init=() out=$PARTIAL
    [ "$stage" != warp ] && init=("init=$PARTIAL")
    [ "$stage" = tt ] && out=$OUT
    "$PY" -m sievenet.train "$CONFIGS/sievenet-s-$stage.yaml" "run_dir=$RUNS/$stage" resume=true "${init[@]}" "$@"
    "$PY" -m sievenet.export "$RUNS/$stage" --out "$out"
}

evaluate() {
    "$PY" -m sievenet.eval --weights "$OUT" --n "$EVAL_N" --out "$OUT/eval" --record
}

case "${1:-all}" in
    warp | seg | warp-fine | tt) stage=$1; shift; train_stage "$stage" "$@" ;;
    eval) evaluate ;;
    timing) "$PY" -m sievenet.train.timing --model sievenet-s ;;
    all)
        for stage in warp seg warp-fine tt; do train_stage "$stage"; done
        evaluate
        ;;
    *) echo "usage: $0 [all|warp|seg|warp-fine|tt|eval|timing] [key=value ...]" >&2; exit 2 ;;
esac
