#!/usr/bin/env bash
# Instruction counts (valgrind's callgrind) of the same short bench run on two builds: repeatable
# on a noisy machine, where timings are not. valgrind hides AVX-512, so this counts the AVX2
# paths. One thread, 64-token prompt, 8 decoded tokens, load included; a few minutes per run.
#
#   tools/callgrind_ab.sh BEFORE_BENCH AFTER_BENCH MODEL_DIR
set -u
BEFORE=${1:?before bench binary}; AFTER=${2:?after bench binary}; MODEL=${3:?model folder}
for dtype in f32 q8_0; do
  for side in before after; do
    bin=$BEFORE; [ "$side" = after ] && bin=$AFTER
    count=$(RAYON_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$MODEL" \
      --threads 1 --runs 1 --prompt-tokens 64 --decode-tokens 8 --dtype "$dtype" 2>&1 | grep -E "Collected")
    echo "$dtype $side $count"
  done
done
