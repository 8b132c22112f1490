#!/usr/bin/env bash
# Reproduce sievenet-s: `reproduce.sh v2` reproduces the shipped weights/sievenet-s (see "sievenet-s v2" below).
# v1, the plain commands: sievenet-s trained warp -> seg -> warp-fine -> tt on the 2D synthetic studio at
# 256x192, then evaluated on 500 synthetic test pairs. Planned for 2 CPU cores in under 3 hours (steps in the
# YAMLs: warp 3000, seg 3000, warp-fine 6000 (the fine TPS stage retrained alone on the frozen coarse one;
# linear lr decay over the last 1500), tt 4000 with the duelling triplet from step 3000; `reproduce.sh timing`
# projects the total on your machine, weights/README.md has the times measured here).
#
#   bash sievenet/train/reproduce.sh            # all stages, then the evaluation
#   bash sievenet/train/reproduce.sh warp       # one stage: warp | seg | warp-fine | tt | eval
#   bash sievenet/train/reproduce.sh timing     # measure s/step here and project the total first
#
# sievenet-s v2 (issue 15) IS the shipped release since session 7 (it beat v1 on the 3D studio and the photo
# path): the sievenet-s-v2-*.yaml stages on half 3D-studio pairs rendered ahead to disk ($V2_DATA, 3D train split,
# seed 0, $V2_RENDER_N pairs at 256x192) and half 2D studio drawn on the fly. Each stage exports to
# $V2_STAGES/<stage>, the next one starts from there, and tt exports the release to $V2_OUT (weights/sievenet-s).
# The commands without "v2" below reproduce the previous release (v1; in git history before session 7).
#
#   bash sievenet/train/reproduce.sh v2                 # render the 3D pairs, the four stages, the evaluation
#   bash sievenet/train/reproduce.sh v2-data            # only the 3D render (skipped when already complete)
#   bash sievenet/train/reproduce.sh v2 warp            # one stage: warp | seg | warp-fine | tt | eval
#   bash sievenet/train/reproduce.sh v2-timing          # s/step of the v2 stages here, render time, projection
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
EVAL_STUDIOS=${EVAL_STUDIOS:-2d 3d}  # each studio's test split, scored separately
PHOTO_N=${PHOTO_N:-50}              # photo-path pairs (3D renders through TryOnPipeline); 0 skips it
EVAL_PANEL=${EVAL_PANEL:-1}         # 0 skips the real-photo panel
CONFIGS=sievenet/train/configs
V2_OUT=${V2_OUT:-weights/sievenet-s}
V2_STAGES=${V2_STAGES:-weights/sievenet-s-v2-stages}
V2_DATA=${V2_DATA:-runs/data/studio3d-v2}   # the YAMLs' disk_root
V2_RENDER_N=${V2_RENDER_N:-2000}
V2_STUDIO=${V2_STUDIO:-2eabc93}       # the commit whose 3D studio rendered the v2 pairs
V2_RENDER_WORKERS=${V2_RENDER_WORKERS:-2}
V2_RUNS=${V2_RUNS:-runs/reproduce-v2}

train_stage() {  # train_stage STAGE [key=value ...]
    local stage=$1
    shift
    local init=() out=$PARTIAL
    [ "$stage" != warp ] && init=("init=$PARTIAL")
    [ "$stage" = tt ] && out=$OUT
    "$PY" -m sievenet.train "$CONFIGS/sievenet-s-$stage.yaml" "run_dir=$RUNS/$stage" resume=true "${init[@]}" "$@"
    "$PY" -m sievenet.export "$RUNS/$stage" --out "$out"
}

eval_release() {  # eval_release RELEASE
    local panel=()
    [ "$EVAL_PANEL" = 0 ] && panel=(--no-panel)
    # shellcheck disable=SC2086  # EVAL_STUDIOS is a list of words
    "$PY" -m sievenet.eval --weights "$1" --n "$EVAL_N" --studio $EVAL_STUDIOS --photo-n "$PHOTO_N" "${panel[@]}" \
        --out "$1/eval" --record
}

evaluate() {
    eval_release "$OUT"
}

v2_data() {  # the 3D studio's train split, seed 0, rendered once (a few samples/s: slower than training reads)
    if [ -f "$V2_DATA/train_pairs.txt" ] && [ "$(wc -l < "$V2_DATA/train_pairs.txt")" -ge "$V2_RENDER_N" ]; then
        echo "v2-data: $V2_DATA already holds $V2_RENDER_N pairs"
        return
    fi
    # The studio as it was when v2 was trained (commit $V2_STUDIO): later studio work changes its pictures, and
    # the release is reproduced only from the same pairs (digests: weights/sievenet-s-v2-stages/README.md).
    # One process per core (the same bytes as one process: tests/test_studio3d.py).
    local src=$V2_RUNS/studio-$V2_STUDIO py out
    if [ ! -f "$src/sievenet/__init__.py" ]; then
        mkdir -p "$src"
        git archive "$V2_STUDIO" sievenet | tar -x -C "$src" || {
            echo "v2-data: cannot read commit $V2_STUDIO from git (a full clone is needed: git fetch --unshallow)" >&2
            rm -rf "$src"
            exit 1
        }
    fi
    py=$(command -v "$PY")
    case $py in /*) ;; *) py=$PWD/$py ;; esac
    out=$(mkdir -p "$V2_DATA" && cd "$V2_DATA" && pwd)
    (cd "$src" && LP_NUM_THREADS=1 "$py" -m sievenet.synthetic export --studio 3d --split train --seed 0 \
        --n "$V2_RENDER_N" --size 256x192 --workers "$V2_RENDER_WORKERS" --out "$out")
}

v2_stage() {  # v2_stage STAGE [key=value ...]: init from the previous stage's export, export to $V2_STAGES/STAGE
    local stage=$1 prev="" out
    shift
    case $stage in
        seg) prev=warp ;;
        warp-fine) prev=seg ;;
        tt) prev=warp-fine ;;
    esac
    local init=()
    [ -n "$prev" ] && init=("init=$V2_STAGES/$prev")
    out=$V2_STAGES/$stage
    [ "$stage" = tt ] && out=$V2_OUT
    "$PY" -m sievenet.train "$CONFIGS/sievenet-s-v2-$stage.yaml" "run_dir=$V2_RUNS/$stage" resume=true \
        "disk_root=$V2_DATA" "${init[@]}" "$@"
    "$PY" -m sievenet.export "$V2_RUNS/$stage" --out "$out"
}

v2_evaluate() {
    eval_release "$V2_OUT"
}

case "${1:-all}" in
    warp | seg | warp-fine | tt) stage=$1; shift; train_stage "$stage" "$@" ;;
    eval) evaluate ;;
    timing) "$PY" -m sievenet.train.timing --model sievenet-s ;;
    v2-timing) "$PY" -m sievenet.train.timing --model sievenet-s --configs sievenet-s-v2 --render-n "$V2_RENDER_N" ;;
    v2-data) v2_data ;;
    v2)
        shift
        case "${1:-all}" in
            warp | seg | warp-fine | tt) stage=$1; shift; v2_data; v2_stage "$stage" "$@" ;;
            eval) v2_evaluate ;;
            all)
                v2_data
                for stage in warp seg warp-fine tt; do v2_stage "$stage"; done
                v2_evaluate
                ;;
            *) echo "usage: $0 v2 [all|warp|seg|warp-fine|tt|eval] [key=value ...]" >&2; exit 2 ;;
        esac
        ;;
    all)
        for stage in warp seg warp-fine tt; do train_stage "$stage"; done
        evaluate
        ;;
    *) echo "usage: $0 [all|warp|seg|warp-fine|tt|eval|timing|v2 [stage]|v2-data|v2-timing] [key=value ...]" >&2; exit 2 ;;
esac
