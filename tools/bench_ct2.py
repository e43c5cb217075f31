"""Prompt and decode speed of CTranslate2 on a GPT-2 model folder, for comparison with gpt2-tui:
the same prompt (a sentence repeated to --prompt-tokens, as examples/bench.rs builds it), the
same thread count, greedy decoding of --decode-tokens tokens. The model is converted once with
CTranslate2's own converter (`ct2-transformers-converter`) into MODEL_DIR/ct2-TYPE.

Each process times its FIRST request, as a pipe user meets it (a fresh process), and then
--runs more (warm); both are printed.

python3 tools/bench_ct2.py MODEL_DIR [--type int8|float32] [--threads 2]
    [--prompt-tokens 512] [--decode-tokens 128] [--runs 2]
"""

import argparse
import json
import os
import resource
import subprocess
import time

import ctranslate2
from transformers import AutoTokenizer


def converted(model_dir, quantization):
    out = os.path.join(model_dir, f"ct2-{quantization}")
    if not os.path.isfile(os.path.join(out, "model.bin")):
        subprocess.run(
            ["ct2-transformers-converter", "--model", model_dir, "--output_dir", out,
             "--quantization", quantization, "--force"],
            check=True, stdout=subprocess.DEVNULL)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--type", default="int8", choices=["int8", "float32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=2)
    a = p.parse_args()
    path = converted(a.model, a.type)
    started = time.perf_counter()
    generator = ctranslate2.Generator(path, device="cpu", compute_type=a.type,
                                      intra_threads=a.threads, inter_threads=1)
    load_s = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    sentence = tokenizer.encode(" The quick brown fox jumps over the lazy dog, and the dog sleeps on.")
    ids = [sentence[i % len(sentence)] for i in range(a.prompt_tokens)]
    tokens = tokenizer.convert_ids_to_tokens(ids)

    def one_request():
        t0 = time.perf_counter()
        first = None
        n = 0
        # min_length keeps end-of-text from stopping a random model early; greedy (top-k 1).
        for _ in generator.generate_tokens(tokens, max_length=a.decode_tokens + 1,
                                           min_length=a.decode_tokens + 1, sampling_topk=1):
            n += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        return a.prompt_tokens / (first - t0), (n - 1) / (end - first)

    first_prefill, first_decode = one_request()
    warm = [one_request() for _ in range(a.runs)]
    print(json.dumps({
        "engine": f"ctranslate2 {ctranslate2.__version__}",
        "dtype": a.type,
        "threads": a.threads,
        "prompt_tokens": a.prompt_tokens,
        "decode_tokens": a.decode_tokens,
        "load_s": round(load_s, 3),
        "first_prefill_tokens_per_s": round(first_prefill, 1),
        "first_decode_tokens_per_s": round(first_decode, 1),
        "warm_prefill_tokens_per_s": round(max(w[0] for w in warm), 1) if warm else None,
        "warm_decode_tokens_per_s": round(max(w[1] for w in warm), 1) if warm else None,
        # ru_maxrss is in KiB on Linux; MB are 10^6 bytes.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6),
    }))


if __name__ == "__main__":
    main()
