#!/usr/bin/env python3
"""Reference for `gpt2-tui score`: every token of tests/fixtures/ppl.txt under tiny-gpt2.

    python3 tools/make_score_fixtures.py      # from the repository root; a few seconds on CPU

Writes tests/fixtures/score.json: for each token (in order) its id, its log-probability (natural
log, float64 log_softmax of transformers' float32 logits), its rank (1 = argmax), the entropy (nats)
of the distribution that predicted it, and the TOP best alternatives (id, logprob); the first token
has nulls. `ties` counts the tokens within 1e-4 of each token's log-probability, the rank's slack. ppl.txt (1494 bytes, ~400 tokens) is longer than tiny-gpt2's 64-position window, so the
sliding window is exercised: windows of 64 start every STRIDE tokens, each token is scored once in
the first window that reaches it (the definition of make_fixtures.py's perplexity), and the text
ends with a Unicode line whose characters are split across tokens.  Deterministic: two runs give
the same file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
STRIDE = 24
TOP = 5


@torch.no_grad()
def main() -> int:
    torch.set_num_threads(1)
    model = GPT2LMHeadModel.from_pretrained(FIX / "tiny-gpt2", attn_implementation="eager").eval()
    tok = Tokenizer.from_file(str(FIX / "tiny-gpt2" / "tokenizer.json"))
    text = (FIX / "ppl.txt").read_text(encoding="utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    window = model.config.n_positions
    rows: list[dict | None] = [None] * len(ids)
    prev_end, begin = 0, 0
    while True:
        end = min(begin + window, len(ids))
        x = torch.tensor([ids[begin:end]], dtype=torch.long)
        lp = torch.log_softmax(model(input_ids=x).logits[0].float().double(), dim=-1)
        for t in range(max(prev_end, 1), end):
            row = lp[t - 1 - begin]
            target = ids[t]
            value = float(row[target])
            top_v, top_i = torch.topk(row, TOP)
            rows[t] = {
                "logprob": value,
                "rank": 1 + int((row > row[target]).sum()),
                # Tokens within 1e-4 of the target (itself excluded): where the rank may move
                # with logits that agree with these to 1e-4.
                "ties": int(((row - row[target]).abs() < 1e-4).sum()) - 1,
                "entropy": float(-(row.exp() * row).sum()),
                "top": [[int(i), float(v)] for v, i in zip(top_v.tolist(), top_i.tolist())],
            }
        prev_end = end
        if end == len(ids):
            break
        begin += STRIDE
    nll = -sum(r["logprob"] for r in rows[1:])
    n_bytes = len(text.encode("utf-8"))
    out = {
        "generated_by": "tools/make_score_fixtures.py",
        "model": "tiny-gpt2",
        "file": "ppl.txt",
        "stride": STRIDE,
        "top": TOP,
        "ids": ids,
        "tokens": rows,
        "mean_nll": nll / (len(ids) - 1),
        "perplexity": math.exp(nll / (len(ids) - 1)),
        "bits_per_byte": nll / math.log(2) / n_bytes,
    }
    (FIX / "score.json").write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {FIX / 'score.json'}: {len(ids)} tokens, window {window}, stride {STRIDE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
