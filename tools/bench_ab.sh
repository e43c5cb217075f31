#!/usr/bin/env bash
# Two builds of examples/bench side by side, alternating in the same minutes (this machine is
# shared and noisy): f32 and q8_0, 512- and 16-token prompts, ROUNDS rounds. One JSON line per
# run to OUT; summarise with `python3 tools/bench_ab_summary.py OUT`.
#
#   tools/bench_ab.sh BEFORE_BENCH AFTER_BENCH MODEL_DIR [ROUNDS=3] [OUT=bench_ab.jsonl]
set -u
BEFORE=${1:?before bench binary}; AFTER=${2:?after bench binary}; MODEL=${3:?model folder}
ROUNDS=${4:-3}; OUT=${5:-bench_ab.jsonl}
: > "$OUT"
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    bin=$BEFORE; [ "$side" = after ] && bin=$AFTER
    for dtype in f32 q8_0; do
      for p in 512 16; do
        line=$("$bin" "$MODEL" --threads 2 --runs 3 --prompt-tokens "$p" --decode-tokens 64 --dtype "$dtype" 2>/dev/null)
        echo "{\"round\":$r,\"bin\":\"$side\",\"r\":$line}" | tee -a "$OUT"
      done
    done
  done
done
