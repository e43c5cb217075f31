#!/usr/bin/env python3
"""Write a randomly initialised GPT-2 124M (the real gpt2 config, random weights) for benchmarks.

    python3 tools/make_bench_model.py [OUTDIR] [--shape 124m|medium|xl]   # default: tools/out/gpt2-124m-random

`--shape medium` writes the GPT-2 medium shape instead (355M: 24 layers, 16 heads, width 1024;
~1.4 GB), `--shape xl` the GPT-2 XL shape (1.5B: 48 layers, 25 heads, width 1600; ~6.2 GB); the
default folders are tools/out/gpt2-medium-random and tools/out/gpt2-xl-random.

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
    argv = sys.argv[1:]
    shape = "124m"
    if "--shape" in argv:
        at = argv.index("--shape")
        shape = argv[at + 1] if at + 1 < len(argv) else ""
        del argv[at : at + 2]
    for a in list(argv):
        if a.startswith("--shape="):
            shape = a.split("=", 1)[1]
            argv.remove(a)
    # n_positions is 1024 for all three.
    configs = {
        "124m": GPT2Config(),
        "medium": GPT2Config(n_layer=24, n_head=16, n_embd=1024),
        "xl": GPT2Config(n_layer=48, n_head=25, n_embd=1600),
    }
    if shape not in configs:
        print(f"make_bench_model: unknown --shape {shape!r} (124m, medium or xl)", file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else ROOT / "tools" / "out" / f"gpt2-{shape}-random"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = configs[shape]
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
