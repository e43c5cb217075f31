"""Prefill and decode speed of Hugging Face transformers on a model folder, for comparison with
gpt2-tui's `examples/bench.rs` (same prompt length, decode length and thread count).

python3 tools/bench_transformers.py MODEL_DIR [--threads 2] [--prompt-tokens 512]
    [--decode-tokens 128] [--device cpu|cuda] [--dtype float32|float16|bfloat16]
"""

import argparse
import json
import resource
import time

import torch
from transformers import GPT2LMHeadModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dtype = getattr(torch, a.dtype)
    model = GPT2LMHeadModel.from_pretrained(a.model, dtype=dtype).to(a.device).eval()
    prompt = torch.arange(a.prompt_tokens, device=a.device).remainder(1000).unsqueeze(0) + 100

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    best_prefill = best_decode = 0.0
    with torch.inference_mode():
        for _ in range(a.runs):
            sync()
            t0 = time.perf_counter()
            # Last-position logits only, like gpt2-tui's prefill.
            out = model(prompt, use_cache=True, logits_to_keep=1)
            sync()
            best_prefill = max(best_prefill, a.prompt_tokens / (time.perf_counter() - t0))
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            sync()
            t0 = time.perf_counter()
            for _ in range(a.decode_tokens):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            sync()
            best_decode = max(best_decode, a.decode_tokens / (time.perf_counter() - t0))
    print(json.dumps({
        "engine": f"transformers {__import__('transformers').__version__} + torch {torch.__version__}",
        "device": a.device,
        "dtype": a.dtype,
        "threads": a.threads,
        "prefill_tokens_per_s": round(best_prefill, 1),
        "decode_tokens_per_s": round(best_decode, 1),
        # ru_maxrss is in KiB on Linux; MB here are 10^6 bytes, as the weights.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6),
    }))


if __name__ == "__main__":
    main()
