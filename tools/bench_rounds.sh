#!/usr/bin/env bash
# gpt2-tui, CTranslate2 and llama.cpp in alternating rounds on the same model and thread count,
# so all see the same minutes of this shared machine. Prints one line per engine, weight type and
# round: gpt2-tui's benchmark JSON line (warm, best of 2), the real binary's --stats line in pipe
# mode (a fresh process's first request, 512-token prompt), tools/bench_ct2.py's line (first
# request and warm), and llama-bench's averages (pp512, tg128, tg128 at depth 512, peak KB;
# skipped when llama-bench is not built).
#
#   tools/bench_rounds.sh [THREADS] [ROUNDS]      # defaults: 2 threads, 3 rounds
#
# Run tools/bench_peers.sh once first: it writes the model and its GGUF files and builds
# llama-bench (LLAMA_DIR, default /tmp/llamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
model=tools/out/gpt2-124m-random
bench=$(ls -d "${LLAMA_DIR:-/tmp/llamacpp}"/llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-bench 2>/dev/null | head -n 1 || true)
cargo build --release --example bench --bin gpt2-tui >&2
prompt=$(python3 -c "print(' The quick brown fox jumps over the lazy dog, and the dog sleeps on.' * 32, end='')")
declare -A ct2_type=([f32]=float32 [q8_0]=int8)

summarize() { python3 tools/llama_bench_summary.py; }

for round in $(seq "$rounds"); do
  for type in f32 q8_0; do
    for tokens in 512 16; do
      echo "round $round gpt2-tui $type prompt $tokens $(./target/release/examples/bench "$model" \
        --threads "$threads" --dtype "$type" --runs 2 --prompt-tokens "$tokens" | tail -n 1)"
    done
    echo "round $round gpt2-tui-pipe $type $(/usr/bin/time -f '{"peak_kb": %M}' ./target/release/gpt2-tui \
      --model "$model" --dtype "$type" --threads "$threads" --prompt "$prompt" --max-tokens 128 \
      --ignore-eos --temperature 0 --stats 2>&1 >/dev/null | grep -E '^\{' | tr '\n' ' ')"
    echo "round $round ctranslate2 $type $(python3 tools/bench_ct2.py "$model" --threads "$threads" \
      --type "${ct2_type[$type]}" 2>/dev/null | tail -n 1)"
    [ -n "$bench" ] || continue
    echo "round $round llama.cpp $type $(/usr/bin/time -f 'peak_kb=%M' "$bench" \
      -m "$model/model-$type.gguf" -t "$threads" -p 512 -n 128 -r 2 -o jsonl 2>&1 | summarize)"
    echo "round $round llama.cpp $type $("$bench" -m "$model/model-$type.gguf" -t "$threads" \
      -p 0 -n 128 -d 512 -r 2 -o jsonl 2>&1 | summarize)"
  done
done
