#!/usr/bin/env bash
# Runs gpt2-tui's benchmark and its peers side by side on one GPT-2 124M-shaped model with random
# weights, on this machine, with the same thread count. Prints one JSON line per engine and setting.
#
#   tools/bench_peers.sh [THREADS]
#
# Needs: GNU time (Debian package `time`), python3 with torch + transformers (tools/README.md), cmake and a C++ compiler, and the
# llama.cpp sources, which PyPI's llama-cpp-python sdist carries:
#   pip download --no-deps --no-binary :all: llama-cpp-python -d "$LLAMA_DIR"
# LLAMA_DIR (default /tmp/llamacpp) is where the sdist is unpacked and llama-bench is built.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
model=tools/out/gpt2-124m-random
llama_dir=${LLAMA_DIR:-/tmp/llamacpp}

[ -f "$model/model.safetensors" ] || python3 tools/make_bench_model.py "$model"

src=$(ls -d "$llama_dir"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n 1)
if [ -z "$src" ]; then
  pip download --no-deps --no-binary :all: llama-cpp-python -d "$llama_dir" >&2
  tar xzf "$llama_dir"/llama_cpp_python-*.tar.gz -C "$llama_dir"
  src=$(ls -d "$llama_dir"/llama_cpp_python-*/vendor/llama.cpp | head -n 1)
fi
bench="$src/build/bin/llama-bench"
if [ ! -x "$bench" ]; then
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$src/build" --target llama-bench -j"$(nproc)" >&2
fi
# llama.cpp's converter still reads GPT-2's old `n_ctx` key, which transformers 5 no longer writes.
python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c.setdefault('n_ctx', c['n_positions']); json.dump(c, open(p, 'w'), indent=2)" "$model/config.json"
for type in f32 f16 q8_0; do
  gguf="$model/model-$type.gguf"
  if [ ! -f "$gguf" ]; then
    # convert_hf_to_gguf.py writes f32/f16/q8_0 directly.
    PYTHONPATH="$src/gguf-py" python3 "$src/convert_hf_to_gguf.py" "$model" --outtype "$type" --outfile "$gguf" >&2
  fi
done

cargo build --release --example bench >&2
for type in f32 q8_0; do
  # A 512-token prompt: prefill speed, then decoding 128 tokens after it (context 512-640).
  ./target/release/examples/bench "$model" --threads "$threads" --dtype "$type"
  # A 16-token prompt: decoding from a nearly empty context, as llama-bench's tg128.
  ./target/release/examples/bench "$model" --threads "$threads" --dtype "$type" --prompt-tokens 16
done
for type in f32 f16 q8_0; do
  # pp512: prefill of a 512-token prompt; tg128: decode of 128 tokens from an empty context.
  # /usr/bin/time gives peak memory.
  /usr/bin/time -f '{"llama_bench_peak_rss_kb": %M}' "$bench" -m "$model/model-$type.gguf" -t "$threads" \
    -p 512 -n 128 -r 3 -o jsonl 2>&1 | grep -E '^\{' | sed "s/^/$type /"
  # tg128 after 512 tokens of context (-d 512), like gpt2-tui's first line above.
  "$bench" -m "$model/model-$type.gguf" -t "$threads" -p 0 -n 128 -d 512 -r 3 -o jsonl 2>&1 \
    | grep -E '^\{' | sed "s/^/$type depth512 /"
done
python3 tools/bench_transformers.py "$model" --threads "$threads"
