#!/usr/bin/env python3
"""gpt2-tui's perplexity next to llama.cpp's `llama-perplexity` on the same GGUF files and text.

Run from the repository root (after `cargo build --release` and llama.cpp's tools are built):

    python3 tools/perplexity_vs_llama.py [--model DIR] [--text FILE] [--types f32,q8_0,...]

The model (default: the bundled one, assets/model) is converted to an F32 GGUF with llama.cpp's
convert_hf_to_gguf.py, and quantized to each type with llama-quantize. Both engines then read the
same file. llama.cpp pads contexts to 256 tokens, so a model with fewer positions (the bundled
one has 128) gets its position table widened to 256 first (the added rows repeat the last):
the figures are then those of that widened model, the same for both engines.

The two count the same tokens: llama-perplexity with `--ppl-stride S` runs windows of W tokens
starting every S tokens and scores the last S tokens of each (it widens `-c` by S/2 first, so it
is given `-c W - S/2`); gpt2-tui's sliding window (`score --stride S`) runs the same windows and
scores every token once, so its per-token log-probabilities are averaged over the tokens
llama-perplexity scores (from token W - S, and no partial window at the end) for the comparison. gpt2-tui's own
`perplexity` figure (every token after the first) is printed too.

LLAMA_CPP_DIR (default /tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp) is the llama.cpp
tree, with build/bin/llama-perplexity and build/bin/llama-quantize. Prints one JSON line per type.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from make_gguf_fixtures import LLAMA, convert, with_n_ctx  # noqa: E402

BIN = ROOT / "target" / "release" / "gpt2-tui"
# llama-quantize's names for the types gpt2-tui reads.
QUANTIZE_NAME = {
    "q8_0": "Q8_0",
    "q4_0": "Q4_0",
    "q4_k_m": "Q4_K_M",
    "q5_k_m": "Q5_K_M",
    "q6_k": "Q6_K",
}


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return done.stdout + done.stderr


def ours(gguf: Path, text: Path, stride: int, scored: range, threads: int) -> dict:
    """gpt2-tui's per-token log-probabilities, averaged over the tokens in `scored`."""
    out = subprocess.run(
        [str(BIN), "--model", str(gguf), "--threads", str(threads), "score", "--top", "0",
         "--stride", str(stride), "--format", "jsonl", str(text)],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    done = lines[-1]
    logprobs = [t["logprob"] for t in lines[:-1] if t["i"] in scored]
    return {
        "tokens": done["tokens"],
        "perplexity": done["perplexity"],
        "same_tokens_perplexity": math.exp(-sum(logprobs) / len(logprobs)),
        "same_tokens": len(logprobs),
    }


def theirs(gguf: Path, text: Path, window: int, stride: int, threads: int) -> dict:
    out = run([str(LLAMA / "build/bin/llama-perplexity"), "-m", str(gguf), "-f", str(text),
               "-c", str(window - stride // 2), "--ppl-stride", str(stride), "-b", str(window),
               "-t", str(threads)])
    # The strided run prints "[window]running perplexity," per window; the last is the total.
    rows = re.findall(r"\[(\d+)\](\d+\.\d+),", out)
    if not rows:
        raise SystemExit(f"no perplexity in llama-perplexity's output:\n{out[-2000:]}")
    return {"perplexity": float(rows[-1][1]), "windows": len(rows)}


# llama.cpp pads every context to a multiple of 256 tokens, and runs windows of that length.
LLAMA_MIN_WINDOW = 256


def with_positions(src: Path, dst: Path, positions: int) -> Path:
    """A copy of a HF folder whose position table has at least `positions` rows (the rows added
    repeat the last one), so that llama.cpp's padded windows stay inside it. Both engines read
    the same file, so the comparison holds; the perplexity is that of this widened model."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    dst = with_n_ctx(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    if cfg["n_positions"] >= positions:
        return dst
    tensors = load_file(dst / "model.safetensors")
    name = next(k for k in tensors if k.endswith("wpe.weight"))
    wpe = tensors[name]
    extra = np.repeat(wpe[-1:], positions - wpe.shape[0], axis=0)
    tensors[name] = np.concatenate([wpe, extra])
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    cfg["n_positions"] = cfg["n_ctx"] = positions
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=ROOT / "assets" / "model")
    p.add_argument("--text", type=Path,
                   default=ROOT / "data" / "heldout" / "macbeth_gut.txt")
    p.add_argument("--types", default="f32,q8_0,q4_0,q4_k_m,q5_k_m,q6_k")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", type=Path, help="a folder to keep the GGUF files in")
    args = p.parse_args()
    window = max(
        json.loads((args.model / "config.json").read_text())["n_positions"], LLAMA_MIN_WINDOW
    )
    stride = window // 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out_dir = args.keep or tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        f32 = out_dir / "model-f32.gguf"
        if not f32.exists():
            # The bundled tokenizer is GPT-2's byte-level BPE, not one llama.cpp knows by hash.
            hf = with_positions(args.model, tmp / "hf", window)
            convert(hf, "f32", f32, patch_pre=True)
        for kind in args.types.split(","):
            gguf = out_dir / f"model-{kind}.gguf"
            if kind != "f32" and not gguf.exists():
                run([str(LLAMA / "build/bin/llama-quantize"), str(f32), str(gguf),
                     QUANTIZE_NAME[kind]])
            llama = theirs(gguf, args.text, window, stride, args.threads)
            # llama-perplexity scores tokens W - S .. W - S + windows * S (no partial window).
            first = window - stride
            scored = range(first, first + llama["windows"] * stride)
            mine = ours(gguf, args.text, stride, scored, args.threads)
            ratio = mine["same_tokens_perplexity"] / llama["perplexity"]
            print(json.dumps({
                "type": kind, "file_bytes": gguf.stat().st_size, "text": args.text.name,
                "window": window, "stride": stride,
                "gpt2_tui_same_tokens": round(mine["same_tokens_perplexity"], 4),
                "llama_cpp": llama["perplexity"],
                "difference_percent": round((ratio - 1) * 100, 3),
                "gpt2_tui_perplexity_all_tokens": round(mine["perplexity"], 4),
                "tokens": mine["tokens"], "scored_same": mine["same_tokens"],
            }), flush=True)


if __name__ == "__main__":
    main()
