#!/usr/bin/env bash
# gpt2-tui (f32 and q8_0, from the Hugging Face folder), CTranslate2 (float32 and int8) and
# llama.cpp (F32 and Q8_0 GGUF files of the same folder) on one model of any GPT-2 shape, in
# alternating rounds with the same thread count and the same 512 prompt tokens. For each:
#   gpt2-tui: the real binary in pipe mode, a fresh process (--stats: prompt and decode tok/s;
#             GNU time: wall seconds and peak memory), and the time of a second start to the first
#             token of a short prompt (its quantized cache written by the run before, for q8_0);
#   CTranslate2: tools/bench_ct2.py (load seconds, first request and warm, peak memory);
#   llama.cpp: llama-bench pp512 and tg at depth 512, peak memory.
#
#   tools/bench_shapes.sh MODEL_DIR [THREADS] [ROUNDS] [DECODE_TOKENS]   # 2 threads, 2 rounds, 64
#
# MODEL_DIR from `tools/make_bench_model.py --shape medium|xl`. Needs what tools/bench_peers.sh
# needs, and llama.cpp built as it builds it (LLAMA_DIR, default /tmp/llamacpp).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: tools/bench_shapes.sh MODEL_DIR [THREADS] [ROUNDS] [DECODE_TOKENS]}
threads=${2:-2}
rounds=${3:-2}
decode=${4:-64}
src=$(ls -d "${LLAMA_DIR:-/tmp/llamacpp}"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n 1 || true)
bench="$src/build/bin/llama-bench"
[ -x "$bench" ] && [ -x "$src/build/bin/llama-quantize" ] || {
  echo "bench_shapes: build llama.cpp first (tools/bench_peers.sh does)" >&2
  exit 1
}
# llama.cpp's converter still reads GPT-2's old `n_ctx` key, which transformers 5 no longer writes.
python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c.setdefault('n_ctx', c['n_positions']); json.dump(c, open(p, 'w'), indent=2)" "$model/config.json"
[ -f "$model/model-f32.gguf" ] || PYTHONPATH="$src/gguf-py" python3 "$src/convert_hf_to_gguf.py" \
  "$model" --outtype f32 --outfile "$model/model-f32.gguf" >&2
[ -f "$model/model-q8_0.gguf" ] || "$src/build/bin/llama-quantize" "$model/model-f32.gguf" \
  "$model/model-q8_0.gguf" Q8_0 >&2
cargo build --release --bin gpt2-tui >&2
prompt=$(python3 -c "print(' The quick brown fox jumps over the lazy dog, and the dog sleeps on.' * 32, end='')")
declare -A ct2_type=([f32]=float32 [q8_0]=int8)

summarize() { python3 tools/llama_bench_summary.py; }

for round in $(seq "$rounds"); do
  for type in f32 q8_0; do
    echo "round $round gpt2-tui $type $(/usr/bin/time -f '{"wall_s": %e, "peak_kb": %M}' \
      ./target/release/gpt2-tui --model "$model" --dtype "$type" --threads "$threads" \
      --prompt "$prompt" --max-tokens "$decode" --ignore-eos --temperature 0 --stats 2>&1 >/dev/null \
      | grep -E '^\{' | tr '\n' ' ')"
    echo "round $round gpt2-tui-start $type $(/usr/bin/time -f '{"start_to_first_token_s": %e}' \
      ./target/release/gpt2-tui --model "$model" --dtype "$type" --threads "$threads" \
      --prompt "Hello" --max-tokens 1 2>&1 >/dev/null | grep -E '^\{' | tail -n 1)"
    echo "round $round ctranslate2 $type $(python3 tools/bench_ct2.py "$model" --threads "$threads" \
      --type "${ct2_type[$type]}" --decode-tokens "$decode" 2>/dev/null | tail -n 1)"
    echo "round $round llama.cpp $type $( { /usr/bin/time -f 'peak_kb=%M' "$bench" \
      -m "$model/model-$type.gguf" -t "$threads" -p 512 -n 0 -r 1 -o jsonl 2>&1;
      "$bench" -m "$model/model-$type.gguf" -t "$threads" -p 0 -n "$decode" -d 512 -r 1 -o jsonl 2>&1; } \
      | summarize)"
  done
done
