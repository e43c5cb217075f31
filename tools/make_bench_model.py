#!/usr/bin/env python3
"""Write a randomly initialised GPT-2 124M (the real gpt2 config, random weights) for benchmarks.

    python3 tools/make_bench_model.py [OUTDIR]      # default: tools/out/gpt2-124m-random

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
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tools" / "out" / "gpt2-124m-random"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()  # n_layer 12, n_head 12, n_embd 768, n_positions 1024
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
