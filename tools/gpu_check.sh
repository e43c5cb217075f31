#!/usr/bin/env bash
# GPU checks for gpt2-tui, run on a CUDA machine from the repository root:
#
#     bash tools/gpu_check.sh [OUTDIR]        # default: $OUT, else gpu-check-out
#
# It needs binaries built with `--features cuda` elsewhere, in target/gpu/ (git-ignored):
#     target/gpu/family   the tests/family.rs test binary  (cargo test --release --features cuda
#                         --test family --no-run; copy target/release/deps/family-HASH)
#     target/gpu/bench    the examples/bench.rs binary     (cargo build --release --features cuda
#                         --example bench)
#     (or both packed in target/gpu-bins.tar.xz, which is unpacked there)
#     target/gpu/stubs/   optional stand-ins for CUDA libraries the machine lacks (libcurand is
#                         linked by candle but not used for inference)
# and python3 with torch + transformers for the model and the reference timing.
#
# It writes to OUTDIR: env.txt (GPU, driver, libraries), family.txt (the parity tests on cuda in
# f32/f16/bf16), bench-{f32,f16,bf16}.txt (gpt2-tui prefill/decode on a GPT-2 124M-shaped random
# model), hf.txt (transformers on the same model and GPU), summary.txt.
set -u
OUTDIR=${1:-${OUT:-gpu-check-out}}
mkdir -p "$OUTDIR"
ROOT=$(pwd)
exec > >(tee "$OUTDIR/log.txt") 2>&1

# The binaries may come packed (target/gpu-bins.tar.xz holds family and bench).
if [ ! -x target/gpu/family ] && [ -f target/gpu-bins.tar.xz ]; then
  mkdir -p target/gpu
  python3 -c 'import tarfile; tarfile.open("target/gpu-bins.tar.xz").extractall("target/gpu")'
fi

echo "== environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  ldd --version 2>&1 | head -1
} | tee "$OUTDIR/env.txt"

# Where the CUDA libraries the binaries link against are: the toolkit, then pip's nvidia wheels.
find_lib() {
  local name=$1 d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
      $(python3 -c 'import nvidia, os; [print(os.path.join(p, s, "lib")) for p in nvidia.__path__ for s in os.listdir(p)]' 2>/dev/null) \
      $(ls -d /usr/local/cuda-*/lib64 2>/dev/null); do
    if [ -e "$d/$name" ]; then echo "$d"; return 0; fi
  done
  return 1
}
LIBPATH=""
for lib in libcublas.so.13 libcublasLt.so.13 libnvrtc.so.13 libcurand.so.10; do
  if d=$(find_lib "$lib"); then
    LIBPATH="$LIBPATH:$d"
    echo "$lib: $d" | tee -a "$OUTDIR/env.txt"
  elif [ -e "target/gpu/stubs/$lib" ]; then
    LIBPATH="$LIBPATH:$ROOT/target/gpu/stubs"
    echo "$lib: not found, using the stand-in in target/gpu/stubs" | tee -a "$OUTDIR/env.txt"
  else
    echo "$lib: NOT FOUND" | tee -a "$OUTDIR/env.txt"
  fi
done
export LD_LIBRARY_PATH="${LIBPATH#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd target/gpu/family | grep -E "not found|cuda|cublas|curand|nvrtc|libc.so" | tee -a "$OUTDIR/env.txt"

echo "== parity on cuda (tests/family.rs)"
GPT2_TUI_TEST_DEVICE=cuda GPT2_TUI_FIXTURES="$ROOT/tests/fixtures" \
  timeout 180 target/gpu/family --test-threads 1 --nocapture 2>&1 | tee "$OUTDIR/family.txt"
echo "family exit: ${PIPESTATUS[0]}" | tee -a "$OUTDIR/family.txt"

echo "== benchmark model"
MODEL=/tmp/gpt2-124m-random
[ -f "$MODEL/model.safetensors" ] || python3 tools/make_bench_model.py "$MODEL" 2>&1 | tail -3

echo "== gpt2-tui bench on cuda"
for dt in f32 f16 bf16; do
  echo "-- $dt"
  timeout 120 target/gpu/bench "$MODEL" --device cuda --dtype "$dt" --prompt-tokens 512 \
    --decode-tokens 128 --runs 3 2>&1 | tee "$OUTDIR/bench-$dt.txt"
done

echo "== transformers on the same GPU"
timeout 240 python3 - "$MODEL" <<'EOF' 2>&1 | tee "$OUTDIR/hf.txt"
import sys, time, torch
from transformers import GPT2LMHeadModel
path = sys.argv[1]
torch.manual_seed(0)
ids = torch.randint(0, 50000, (1, 512), device="cuda")
for name, dtype in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)]:
    try:
        model = GPT2LMHeadModel.from_pretrained(path, dtype=dtype)
    except TypeError:
        model = GPT2LMHeadModel.from_pretrained(path, torch_dtype=dtype)
    model = model.to("cuda").eval()
    best_prefill = best_decode = 0.0
    for _ in range(3):
        with torch.no_grad():
            torch.cuda.synchronize(); t = time.perf_counter()
            out = model(ids, use_cache=True)
            torch.cuda.synchronize(); prefill = time.perf_counter() - t
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize(); t = time.perf_counter()
            for _ in range(128):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize(); decode = time.perf_counter() - t
        best_prefill = max(best_prefill, 512 / prefill)
        best_decode = max(best_decode, 128 / decode)
    print(f"transformers {name}: prefill {best_prefill:.1f} tokens/s (512 tokens), decode {best_decode:.1f} tokens/s (128 tokens, KV cache, greedy, batch 1)")
    del model; torch.cuda.empty_cache()
EOF

echo "== transformers eager and compiled (static cache + torch.compile reduce-overhead)"
timeout 600 python3 tools/bench_transformers_gpu.py "$MODEL" --device cuda --dtypes bf16,f16 \
  2>&1 | grep '^{' | tee "$OUTDIR/hf-compiled.txt"

echo "== GPT-2 XL shape, bf16: bandwidth-bound decoding"
XL=/tmp/gpt2-xl-random
[ -f "$XL/model.safetensors" ] || python3 tools/make_bench_model.py "$XL" --shape xl 2>&1 | tail -2
timeout 300 target/gpu/bench "$XL" --device cuda --dtype bf16 --prompt-tokens 512 \
  --decode-tokens 128 --runs 3 2>&1 | tee "$OUTDIR/bench-xl-bf16.txt"
timeout 600 python3 tools/bench_transformers_gpu.py "$XL" --device cuda --dtypes bf16 \
  2>&1 | grep '^{' | tee "$OUTDIR/hf-xl.txt"
# The fraction of the card's memory bandwidth a decoded token reaches: weight bytes per token
# times tokens/s over the card's peak (H100 SXM 3.35 TB/s, H200 4.8 TB/s; else unknown).
python3 - "$OUTDIR" <<'EOF2' 2>&1 | tee "$OUTDIR/bandwidth.txt"
import json, subprocess, sys
out = sys.argv[1]
name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout
peak = 4.8e12 if "H200" in name else 3.35e12 if "H100" in name else None
weight_bytes = 1_557_611_200 * 2  # GPT-2 XL parameters in bf16
for line in open(f"{out}/bench-xl-bf16.txt"):
    if line.startswith("{"):
        r = json.loads(line)
        tps = r["decode_tokens_per_s"]
        frac = f"{weight_bytes * tps / peak:.2f}" if peak else "unknown"
        print(f"gpt2-tui XL bf16 decode {tps} tok/s: {weight_bytes * tps / 1e9:.0f} GB/s, {frac} of the card's {name.strip()} peak")
EOF2

{
  echo "== summary"
  grep -E "^test |test result|family exit" "$OUTDIR/family.txt"
  grep -E "max error" "$OUTDIR/family.txt" | sort -t: -k2 | tail -4
  for dt in f32 f16 bf16; do echo "gpt2-tui $dt: $(grep -iE 'prefill|decode' "$OUTDIR/bench-$dt.txt" | tr '\n' ' ')"; done
  grep transformers "$OUTDIR/hf.txt"
  cat "$OUTDIR/hf-compiled.txt" "$OUTDIR/hf-xl.txt" "$OUTDIR/bandwidth.txt" 2>/dev/null
  grep -iE 'prefill|decode' "$OUTDIR/bench-xl-bf16.txt" 2>/dev/null
} | tee "$OUTDIR/summary.txt"
