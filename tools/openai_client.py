#!/usr/bin/env python3
"""Drive `gpt2-tui serve` with the official `openai` package, as a real client would.

    pip install openai
    gpt2-tui serve --model tests/fixtures/tiny-gpt2 --port 8080 &
    python3 tools/openai_client.py [--base-url http://127.0.0.1:8080/v1] [--api-key KEY]

Or let the script start the server itself (and stop it at the end):

    python3 tools/openai_client.py --start target/release/gpt2-tui --model tests/fixtures/tiny-gpt2

It lists the models, asks for a completion (greedy, then sampled with a seed), streams one,
scores a prompt with echo + logprobs (what lm-evaluation-harness does), chats (whole and
streamed) and asks for chat logprobs; it checks that the streamed pieces join to the whole
answer and exits non-zero if any step fails.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time

from openai import OpenAI


def start_server(binary, model):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [binary, "serve", "--model", model, "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        match = re.search(r"http://[0-9.:\[\]a-z]+", line)
        if match:
            return proc, match.group(0) + "/v1"
    proc.kill()
    sys.exit("the server did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--start", metavar="BINARY", help="start `BINARY serve` on a free port")
    parser.add_argument("--model", default="bundled", help="the model for --start")
    args = parser.parse_args()
    server = None
    base_url = args.base_url
    if args.start:
        server, base_url = start_server(args.start, args.model)
    try:
        run(OpenAI(base_url=base_url, api_key=args.api_key))
    finally:
        if server:
            server.terminate()
            print(f"server exit status: {server.wait(timeout=30)}")


def run(client):
    print(f"== models ({client.base_url})")
    models = client.models.list()
    for m in models.data:
        print(f"  {m.id}  context_length={getattr(m, 'context_length', None)}")
    model = models.data[0].id

    print("== completion, greedy")
    prompt = "The meaning of life is"
    c = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0)
    whole = c.choices[0].text
    print(f"  {prompt!r} -> {whole!r}")
    print(f"  finish_reason={c.choices[0].finish_reason} usage={c.usage.model_dump()}")

    print("== completion, sampled with a seed (twice: the same text)")
    a = client.completions.create(model=model, prompt=prompt, max_tokens=12, seed=42)
    b = client.completions.create(model=model, prompt=prompt, max_tokens=12, seed=42)
    print(f"  {a.choices[0].text!r}")
    assert a.choices[0].text == b.choices[0].text

    print("== completion, streamed (greedy: joins to the whole)")
    pieces = []
    for chunk in client.completions.create(
        model=model, prompt=prompt, max_tokens=12, temperature=0, stream=True
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
    print(f"  {len(pieces)} chunks: {pieces!r}")
    assert "".join(pieces) == whole, ("".join(pieces), whole)

    print("== echo + logprobs, max_tokens 0 (the prompt's log-probabilities)")
    text = "The cat sat on the mat."
    s = client.completions.create(
        model=model, prompt=text, max_tokens=0, echo=True, logprobs=2, temperature=0
    )
    lp = s.choices[0].logprobs
    total = 0.0
    for tok, logprob, top, offset in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, lp.text_offset):
        shown = "null" if logprob is None else f"{logprob:9.4f}"
        print(f"  {offset:3d} {tok!r:12} {shown}  top={top}")
        total += logprob or 0.0
    scored = len(lp.tokens) - 1
    print(f"  sum {total:.4f} over {scored} tokens, perplexity {math.exp(-total / scored):.2f}")
    assert s.choices[0].text == text and lp.token_logprobs[0] is None

    print("== chat")
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! Who are you?"},
    ]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0)
    reply = r.choices[0].message.content
    print(f"  assistant: {reply!r}")
    print(f"  finish_reason={r.choices[0].finish_reason} usage={r.usage.model_dump()}")

    print("== chat, streamed (joins to the whole)")
    deltas = []
    for chunk in client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, temperature=0, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
    print(f"  {len(deltas)} deltas: {deltas!r}")
    assert "".join(deltas) == reply, ("".join(deltas), reply)

    print("== chat logprobs (top 3)")
    r = client.chat.completions.create(
        model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    for item in r.choices[0].logprobs.content:
        alts = ", ".join(f"{t.token!r} {t.logprob:.3f}" for t in item.top_logprobs)
        print(f"  {item.token!r:12} {item.logprob:8.4f}  [{alts}]")

    print("== an error, as the client raises it")
    try:
        client.completions.create(model=model, prompt="x", temperature=7)
    except Exception as e:  # openai.BadRequestError
        print(f"  {type(e).__name__}: {e}")
    print("all steps passed")


if __name__ == "__main__":
    main()
