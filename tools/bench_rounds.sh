#!/usr/bin/env bash
# gpt2-tui and llama.cpp in alternating rounds on the same model and thread count, so both see
# the same minutes of this shared machine. Prints one line per engine, weight type and round:
# gpt2-tui's own JSON line, and llama-bench's averages (pp512, tg128, tg128 at depth 512, peak KB).
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
bench=$(ls -d "${LLAMA_DIR:-/tmp/llamacpp}"/llama_cpp_python-*/vendor/llama.cpp/build/bin/llama-bench | head -n 1)
cargo build --release --example bench >&2

# llama-bench's JSON lines as "pp=... tg=..." (or "tg_d512=..."), with GNU time's peak memory.
summarize() {
  python3 -c '
import json, sys
out = []
for line in sys.stdin:
    if line.startswith("peak_kb"):
        out.append(line.strip())
    elif line.startswith("{"):
        d = json.loads(line)
        name = "pp" if d["n_prompt"] else ("tg_d%d" % d["n_depth"] if d.get("n_depth") else "tg")
        out.append("%s=%.1f" % (name, d["avg_ts"]))
print(" ".join(out))'
}

for round in $(seq "$rounds"); do
  for type in f32 q8_0; do
    for prompt in 512 16; do
      echo "round $round gpt2-tui $type prompt $prompt $(./target/release/examples/bench "$model" \
        --threads "$threads" --dtype "$type" --runs 2 --prompt-tokens "$prompt" | tail -n 1)"
    done
    echo "round $round llama.cpp $type $(/usr/bin/time -f 'peak_kb=%M' "$bench" \
      -m "$model/model-$type.gguf" -t "$threads" -p 512 -n 128 -r 2 -o jsonl 2>&1 | summarize)"
    echo "round $round llama.cpp $type $("$bench" -m "$model/model-$type.gguf" -t "$threads" \
      -p 0 -n 128 -d 512 -r 2 -o jsonl 2>&1 | summarize)"
  done
done
