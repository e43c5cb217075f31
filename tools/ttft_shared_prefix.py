#!/usr/bin/env python3
"""Time to first token of `gpt2-tui serve` with and without a prompt prefix already in the cache.

    gpt2-tui serve --model MODEL --port 8080 &
    python3 tools/ttft_shared_prefix.py TEXT_FILE [--url http://127.0.0.1:8080] [--chars 2500]

Takes the first CHARS characters of TEXT_FILE as a long prompt (keep it under the window, or the
truncation from the start defeats reuse). "No shared prefix": three prompts that differ at their
first tokens. "Shared prefix": the long prompt once, then three prompts that only add a few words
after it. Streams each answer and prints the times to the first data event (standard library
only).
"""

import argparse
import json
import time
import urllib.request


def ttft(url: str, prompt: str) -> float:
    body = {"prompt": prompt, "max_tokens": 4, "temperature": 0, "stream": True}
    req = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    first = None
    with urllib.request.urlopen(req) as response:
        for line in response:
            if first is None and line.startswith(b"data: {"):
                first = time.perf_counter() - started
    return first


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--chars", type=int, default=2500)
    a = ap.parse_args()
    base = open(a.text, encoding="utf-8").read()[: a.chars]
    cold = [ttft(a.url, f"Variant {i} opens differently. " + base) for i in range(3)]
    ttft(a.url, base)
    shared = [ttft(a.url, base + f" And then {i}.") for i in range(3)]
    for name, times in (("no shared prefix", cold), ("shared prefix", shared)):
        times = sorted(times)
        print(f"{name}: TTFT ms {[round(t * 1000) for t in times]}, median {round(times[1] * 1000)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
