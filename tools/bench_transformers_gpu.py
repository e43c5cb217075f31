#!/usr/bin/env python3
"""transformers on a GPU, the two ways a PyTorch user would run GPT-2 for speed (issue 13):

  eager    the model as loaded, dynamic KV cache (what `generate` does by default)
  compiled a static KV cache and torch.compile(mode="reduce-overhead") (CUDA graphs)

    python3 tools/bench_transformers_gpu.py MODEL_DIR [--device cuda] [--dtypes bf16,f16]
        [--prompt 512] [--decode-prompt 16] [--decode 128] [--runs 3] [--modes eager,compiled]

Prints one JSON line per (mode, dtype): prefill tokens/s of a `--prompt`-token prompt, and decode
tokens/s of `--decode` greedy tokens after a `--decode-prompt`-token prompt (batch 1, best of
`--runs`). Runs on the CPU too (`--device cpu`, for a dry run of the script; torch.compile then
uses no CUDA graphs).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import GPT2LMHeadModel, StaticCache

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def run(model, device: str, mode: str, prompt: int, decode_prompt: int, decode: int, runs: int) -> dict:
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    long_ids = torch.randint(0, cfg.vocab_size, (1, prompt), generator=gen).to(device)
    short_ids = torch.randint(0, cfg.vocab_size, (1, decode_prompt), generator=gen).to(device)
    step = model
    cache = None
    if mode == "compiled":
        cache = StaticCache(config=cfg, max_batch_size=1, max_cache_len=cfg.n_positions,
                            device=device, dtype=model.dtype)
        step = torch.compile(model, mode="reduce-overhead", fullgraph=False)
    best_prefill = best_decode = 0.0
    # The first run warms up (and, compiled, records the CUDA graphs); it is not counted.
    for timed in [False] + [True] * runs:
        sync(device)
        t = time.perf_counter()
        model(long_ids, use_cache=False)
        sync(device)
        if timed:
            best_prefill = max(best_prefill, prompt / (time.perf_counter() - t))
        if cache is not None:
            cache.reset()
            out = model(short_ids, past_key_values=cache, use_cache=True,
                        cache_position=torch.arange(decode_prompt, device=device))
        else:
            out = model(short_ids, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        sync(device)
        t = time.perf_counter()
        for i in range(decode):
            pos = torch.tensor([decode_prompt + i], device=device)
            out = step(nxt, past_key_values=past, use_cache=True, cache_position=pos)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
        sync(device)
        if timed:
            best_decode = max(best_decode, decode / (time.perf_counter() - t))
    return {"prefill_tokens_per_s": round(best_prefill, 1), "decode_tokens_per_s": round(best_decode, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtypes", default="bf16,f16")
    ap.add_argument("--modes", default="eager,compiled")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode-prompt", type=int, default=16)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    for name in a.dtypes.split(","):
        model = GPT2LMHeadModel.from_pretrained(a.model, dtype=DTYPES[name], attn_implementation="sdpa")
        model = model.to(a.device).eval()
        for mode in a.modes.split(","):
            r = run(model, a.device, mode, a.prompt, a.decode_prompt, a.decode, a.runs)
            print(json.dumps({"engine": f"transformers-{mode}", "dtype": name, "device": a.device, **r}), flush=True)
        del model
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
