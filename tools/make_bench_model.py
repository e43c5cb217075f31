#!/usr/bin/env python3
"""Write a randomly initialised GPT-2 124M (the real gpt2 config, random weights) for benchmarks.

    python3 tools/make_bench_model.py [OUTDIR] [--shape 124m|xl]   # default: tools/out/gpt2-124m-random

`--shape xl` writes the GPT-2 XL shape instead (1.5B: 48 layers, 25 heads, width 1600; ~6.2 GB).

OUTDIR gets config.json, generation_config.json, model.safetensors (~498 MB, float32, keys with the
"transformer." prefix, tied lm_head not stored) and tokenizer.json (copied from
/work/shared/gpt2-tokenizer or $GPT2_TOKENIZER_DIR, else from tests/fixtures/tiny-gpt2/, which holds
the same GPT-2 tokenizer, so the script also runs where /work/shared is absent).  tools/out is git-ignored: do not commit it.
The weights are NOT meaningful; this is only for speed / memory measurements.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
TOK_SRC = Path(os.environ.get("GPT2_TOKENIZER_DIR", "/work/shared/gpt2-tokenizer"))


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--shape")]
    xl = "--shape=xl" in sys.argv or ("--shape" in sys.argv and sys.argv[sys.argv.index("--shape") + 1] == "xl")
    args = [a for a in args if a != "xl"]
    out = Path(args[0]) if args else ROOT / "tools" / "out" / ("gpt2-xl-random" if xl else "gpt2-124m-random")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # 124M: n_layer 12, n_head 12, n_embd 768; XL: 48, 25, 1600; both n_positions 1024.
    config = GPT2Config(n_layer=48, n_head=25, n_embd=1600) if xl else GPT2Config()
    model = GPT2LMHeadModel(config).eval()
    try:
        model.save_pretrained(out, safe_serialization=True)
    except TypeError:  # transformers >= 5 always writes safetensors
        model.save_pretrained(out)
    tokenizer = TOK_SRC / "tokenizer.json"
    if not tokenizer.is_file():
        tokenizer = ROOT / "tests" / "fixtures" / "tiny-gpt2" / "tokenizer.json"
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    os.chmod(out / "model.safetensors", 0o644)
    print(f"wrote {out} ({model.num_parameters()} parameters)")
    for f in sorted(out.iterdir()):
        print(f"  {f.name:24} {f.stat().st_size:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
