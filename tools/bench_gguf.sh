#!/usr/bin/env bash
# gpt2-tui and llama.cpp on the same GGUF files, in alternating rounds: for each type, the real
# binary in pipe mode (a fresh process: load, a 512-token prompt, 128 tokens decoded, timed by
# its own --stats, peak memory by GNU time) and llama-bench on the same file (pp512, tg128 from an
# empty context and after 512 tokens, peak memory).
#
#   tools/bench_gguf.sh [MODEL_DIR] [THREADS] [ROUNDS] [TYPES]
#       defaults: tools/out/gpt2-124m-random, 2 threads, 3 rounds, "f32 q8_0 q4_0 q4_k_m"
#
# MODEL_DIR is a Hugging Face GPT-2 folder (tools/make_bench_model.py makes random ones; `--shape
# xl` the 1.5B shape); its GGUF files are made next to it, once: an F32 conversion by
# llama.cpp's convert_hf_to_gguf.py, the other types by llama-quantize from it. Needs llama.cpp
# built as tools/bench_peers.sh builds it, plus its llama-quantize target (LLAMA_DIR, default
# /tmp/llamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-tools/out/gpt2-124m-random}
threads=${2:-2}
rounds=${3:-3}
types=${4:-f32 q8_0 q4_0 q4_k_m}
src=$(ls -d "${LLAMA_DIR:-/tmp/llamacpp}"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n 1 || true)
[ -x "$src/build/bin/llama-bench" ] && [ -x "$src/build/bin/llama-quantize" ] || {
  echo "bench_gguf: build llama.cpp first: cmake --build $src/build --target llama-bench llama-quantize" >&2
  exit 1
}
declare -A quantize_name=([q8_0]=Q8_0 [q4_0]=Q4_0 [q4_k_m]=Q4_K_M [q5_k_m]=Q5_K_M [q6_k]=Q6_K)

# llama.cpp's converter still reads GPT-2's old `n_ctx` key, which transformers 5 no longer writes.
python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c.setdefault('n_ctx', c['n_positions']); json.dump(c, open(p, 'w'), indent=2)" "$model/config.json"
if [ ! -f "$model/model-f32.gguf" ]; then
  PYTHONPATH="$src/gguf-py" python3 "$src/convert_hf_to_gguf.py" "$model" --outtype f32 \
    --outfile "$model/model-f32.gguf" >&2
fi
for type in $types; do
  [ "$type" = f32 ] || [ -f "$model/model-$type.gguf" ] || "$src/build/bin/llama-quantize" \
    "$model/model-f32.gguf" "$model/model-$type.gguf" "${quantize_name[$type]}" >&2
done
cargo build --release --bin gpt2-tui >&2
# The same 512 tokens as examples/bench.rs and tools/bench_ct2.py.
prompt=$(python3 -c "print(' The quick brown fox jumps over the lazy dog, and the dog sleeps on.' * 32, end='')")

summarize() { python3 tools/llama_bench_summary.py; }

for round in $(seq "$rounds"); do
  for type in $types; do
    file="$model/model-$type.gguf"
    echo "round $round gpt2-tui $type $(/usr/bin/time -f '{"peak_kb": %M}' ./target/release/gpt2-tui \
      --model "$file" --threads "$threads" --prompt "$prompt" --max-tokens 128 --ignore-eos \
      --temperature 0 --stats 2>&1 >/dev/null | grep -E '^\{' | tr '\n' ' ')"
    echo "round $round llama.cpp $type $( { /usr/bin/time -f 'peak_kb=%M' "$src/build/bin/llama-bench" \
      -m "$file" -t "$threads" -p 512 -n 128 -r 1 -o jsonl 2>&1;
      "$src/build/bin/llama-bench" -m "$file" -t "$threads" -p 0 -n 128 -d 512 -r 1 -o jsonl 2>&1; } \
      | summarize)"
  done
done
