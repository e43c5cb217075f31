#!/usr/bin/env bash
# Runs gpt2-tui's benchmark and its peers side by side on one GPT-2 124M-shaped model with random
# weights, on this machine, with the same thread count. Prints one JSON line per engine and setting.
#
#   tools/bench_peers.sh [THREADS]
#
# Needs: GNU time (Debian package `time`), python3 with torch + transformers (tools/README.md) and
# ctranslate2 (`pip install ctranslate2`), cmake and a C++ compiler, and the
# llama.cpp sources, which PyPI's llama-cpp-python sdist carries:
#   pip download --no-deps --no-binary llama-cpp-python llama-cpp-python -d "$LLAMA_DIR"
# LLAMA_DIR (default /tmp/llamacpp) is where the sdist is unpacked and llama-bench is built.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
model=tools/out/gpt2-124m-random
llama_dir=${LLAMA_DIR:-/tmp/llamacpp}

[ -f "$model/model.safetensors" ] || python3 tools/make_bench_model.py "$model"

# The sources: unpacked already, or the sdist downloaded but not unpacked, or neither. `|| true`:
# under `set -e -o pipefail` an `ls` that matches nothing would end the script here.
find_src() { ls -d "$llama_dir"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n 1 || true; }
src=$(find_src)
if [ -z "$src" ]; then
  mkdir -p "$llama_dir"
  sdist=$(ls "$llama_dir"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n 1 || true)
  if [ -z "$sdist" ]; then
    pip download --no-deps --no-binary llama-cpp-python llama-cpp-python -d "$llama_dir" >&2 || true
    sdist=$(ls "$llama_dir"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n 1 || true)
  fi
  [ -n "$sdist" ] || { echo "bench_peers: no llama-cpp-python sdist in $llama_dir" >&2; exit 1; }
  tar xzf "$sdist" -C "$llama_dir"
  src=$(find_src)
  [ -n "$src" ] || { echo "bench_peers: $sdist holds no vendor/llama.cpp" >&2; exit 1; }
fi
bench="$src/build/bin/llama-bench"
if [ ! -x "$bench" ] || [ ! -x "$src/build/bin/llama-quantize" ]; then
  # GGML_NATIVE turns on every feature the CPU reports, AMX included, and llama.cpp's AMX code
  # faults in some VMs (an illegal instruction on q8_0 on the issue's machine): where the CPU has
  # AMX, name the other features one by one instead and leave AMX out.
  features=(-DGGML_NATIVE=ON)
  if grep -qw amx_int8 /proc/cpuinfo; then
    features=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
      -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON
      -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  fi
  cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release "${features[@]}" -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  cmake --build "$src/build" --target llama-bench llama-quantize -j"$(nproc)" >&2
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
# The 4-bit types people download: made by llama.cpp's own quantizer from the f32 file.
for type in q4_0:Q4_0 q4_k_m:Q4_K_M; do
  gguf="$model/model-${type%%:*}.gguf"
  [ -f "$gguf" ] || "$src/build/bin/llama-quantize" "$model/model-f32.gguf" "$gguf" "${type##*:}" >&2
done

cargo build --release --example bench --bin gpt2-tui >&2
# The prompt of examples/bench.rs and tools/bench_ct2.py as text: its sentence 32 times, 512 tokens.
prompt=$(python3 -c "print(' The quick brown fox jumps over the lazy dog, and the dog sleeps on.' * 32, end='')")
for type in f32 q8_0; do
  # The real binary in pipe mode, a fresh process's first request, timed by its own --stats.
  ./target/release/gpt2-tui --model "$model" --dtype "$type" --threads "$threads" --prompt "$prompt" \
    --max-tokens 128 --ignore-eos --temperature 0 --stats 2>&1 >/dev/null | grep -E '^\{' | sed "s/^/gpt2-tui pipe $type /"
done
for type in float32 int8; do
  # CTranslate2, converted by its own converter: first request of a fresh process, then warm.
  python3 tools/bench_ct2.py "$model" --type "$type" --threads "$threads"
done
for type in f32 q8_0; do
  # A 512-token prompt: prefill speed, then decoding 128 tokens after it (context 512-640).
  ./target/release/examples/bench "$model" --threads "$threads" --dtype "$type"
  # A 16-token prompt: decoding from a nearly empty context, as llama-bench's tg128.
  ./target/release/examples/bench "$model" --threads "$threads" --dtype "$type" --prompt-tokens 16
done
for type in q8_0 q4_0 q4_k_m; do
  # The same GGUF files in gpt2-tui (pipe mode, a fresh process, as above).
  ./target/release/gpt2-tui --model "$model/model-$type.gguf" --threads "$threads" --prompt "$prompt" \
    --max-tokens 128 --ignore-eos --temperature 0 --stats 2>&1 >/dev/null | grep -E '^\{' | sed "s/^/gpt2-tui gguf $type /"
done
for type in f32 f16 q8_0 q4_0 q4_k_m; do
  # pp512: prefill of a 512-token prompt; tg128: decode of 128 tokens from an empty context.
  # /usr/bin/time gives peak memory.
  /usr/bin/time -f '{"llama_bench_peak_rss_kb": %M}' "$bench" -m "$model/model-$type.gguf" -t "$threads" \
    -p 512 -n 128 -r 3 -o jsonl 2>&1 | grep -E '^\{' | sed "s/^/$type /"
  # tg128 after 512 tokens of context (-d 512), like gpt2-tui's first line above.
  "$bench" -m "$model/model-$type.gguf" -t "$threads" -p 0 -n 128 -d 512 -r 3 -o jsonl 2>&1 \
    | grep -E '^\{' | sed "s/^/$type depth512 /"
done
python3 tools/bench_transformers.py "$model" --threads "$threads"
