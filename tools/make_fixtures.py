#!/usr/bin/env python3
"""Generate reference fixtures for the Rust tests of gpt2-tui.

Run from the repository root:

    python3 tools/make_fixtures.py

It writes, deterministically (fixed seeds, float32, CPU, eval mode, eager attention):

    tests/fixtures/tiny-gpt2/            save_pretrained() layout ("transformer." prefix, tied lm_head)
        config.json, generation_config.json, model.safetensors, tokenizer.json
    tests/fixtures/tiny-gpt2-noprefix/   old-style single checkpoint without the "transformer." prefix,
        config.json, model.safetensors,   with the h.{i}.attn.bias / h.{i}.attn.masked_bias buffers
        vocab.json, merges.txt            (no tokenizer.json)
    tests/fixtures/ppl.txt               text used for the perplexity reference
    tests/fixtures/reference.json        logits, greedy continuations, attentions, perplexity, tokenizer

The GPT-2 tokenizer files are copied from /work/shared/gpt2-tokenizer (or $GPT2_TOKENIZER_DIR) so that
the tests never depend on that folder.  See tools/README.md for the exact definitions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TOK_SRC = Path(os.environ.get("GPT2_TOKENIZER_DIR", "/work/shared/gpt2-tokenizer"))

EOS = 50256
VOCAB = 50257
LOGIT_ID_STEP = 97  # last_logits are stored for ids 0, 97, 194, ... plus the top-20 ids
TOP_LOGITS = 20
TOP_K = 10
PPL_STRIDE = 24

PROMPTS = [
    "Hello, world! It's a test.",
    "The quick brown fox",
    "  leading spaces,\ttabs and\n\nnewlines  ",
    "naïve café — 日本語のテキスト 🤖 emoji",
    "To be, or not to be, that is the question:",
    "x",
]
ATTENTION_PROMPT = "The cat sat on the mat."

TOKENIZER_STRINGS = [
    "",
    " ",
    "a",
    "\n",
    "Hello, world! It's a test.",
    "  leading and trailing spaces  ",
    "multiple    spaces   between     words",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\n",
    "windows\r\nline endings\r\n",
    "don't won't I'LL you're she'd they've it's WE'RE",
    "3.14159 and 1,000,000 and 2024-01-01",
    "?!?!... --- *** ((())) ;;;",
    "See https://example.com/path?q=1&r=two#frag or mail@example.org",
    'fn main() { println!("hi"); }',
    "naïve café résumé Ångström façade",
    "日本語のテキスト and 中文 and 한국어",
    "emoji 🤖🎉 and ZWJ family 👩\u200d👩\u200d👧 and flag 🇯🇵",
    "العربية نص قصير",
    "before<|endoftext|>after",
    "supercalifragilisticexpialidocious",
    "Ünïcödé\u00a0non-breaking\u2003em-space",
    "   ",
    "$x = [1, 2, 3]; // comment\n\tif (x >= 0) return;",
    "The year 1999: 'quoted' \"double\" `backtick`",
    "Ελληνικά Русский текст",
]

# Public-domain prose: Jane Austen, "Pride and Prejudice" (1813), opening of chapter 1
# (as in Project Gutenberg eBook #1342), plus one line of mixed Unicode.
PPL_TEXT = """It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one or other of their daughters.

"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield Park is let at last?"

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"You want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken by a young man of large fortune from the north of England; that he came down on Monday in a chaise and four to see the place, and was so much delighted with it, that he agreed with Mr. Morris immediately; that he is to take possession before Michaelmas, and some of his servants are to be in the house by the end of next week."

"What is his name?"

"Bingley."

"Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or five thousand a year. What a fine thing for our girls!"

Unicode line: naïve café, Straße, 東京, Привет, 🤖 — “quotes” and ½ cup.
"""


# ----------------------------------------------------------------------------------------------
# models


def make_config(**kw) -> GPT2Config:
    cfg = GPT2Config(
        vocab_size=VOCAB,
        bos_token_id=EOS,
        eos_token_id=EOS,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **kw,
    )
    return cfg


def build_model(cfg: GPT2Config, seed: int, wte_std: float, wpe_std: float, w_std: float) -> GPT2LMHeadModel:
    """Random GPT-2, re-initialised so that the output distribution is peaked and varied.

    The stock init (std 0.02) gives near-uniform next-token distributions over 50257 ids and a
    degenerate greedy decode, which makes a poor test.  Every tensor is re-drawn from a seeded
    generator with larger scales (deterministic for a given seed).
    """
    torch.manual_seed(seed)
    try:
        model = GPT2LMHeadModel(cfg, attn_implementation="eager")  # type: ignore[call-arg]
    except TypeError:
        cfg._attn_implementation = "eager"
        model = GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head appears once (as wte)
            n = name.removeprefix("transformer.")
            if n == "wte.weight":
                v = torch.randn(p.shape, generator=g) * wte_std
            elif n == "wpe.weight":
                v = torch.randn(p.shape, generator=g) * wpe_std
            elif n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n == "ln_f.weight":
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif n.endswith(".bias"):  # ln biases and Conv1D biases
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:  # Conv1D weights: c_attn, c_proj, c_fc, mlp.c_proj
                v = torch.randn(p.shape, generator=g) * w_std
            p.copy_(v.to(p.dtype))
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "lm_head not tied"
    return model


@torch.no_grad()
def logits_of(model, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x).logits[0].float()  # [T, V]


@torch.no_grad()
def greedy(model, prompt_ids: list[int], n_new: int):
    """Plain loop of full (uncached) forward passes.  No EOS stopping."""
    ids = list(prompt_ids)
    out, logprobs, top10, margins = [], [], [], []
    for _ in range(n_new):
        last = logits_of(model, ids)[-1]
        lp = torch.log_softmax(last.double(), dim=-1)
        probs = lp.exp()
        tok = int(torch.argmax(last).item())
        s = torch.sort(last, descending=True)
        margins.append(float(s.values[0] - s.values[1]))
        pv, pi = torch.topk(probs, TOP_K)
        top10.append([{"id": int(i), "prob": float(p)} for p, i in zip(pv.tolist(), pi.tolist())])
        assert top10[-1][0]["id"] == tok
        out.append(tok)
        logprobs.append(float(lp[tok]))
        ids.append(tok)
    return out, logprobs, top10, margins


@torch.no_grad()
def greedy_generate(model, prompt_ids: list[int], n_new: int) -> list[int]:
    x = torch.tensor([prompt_ids], dtype=torch.long)
    gen_cfg = transformers.GenerationConfig(
        do_sample=False,
        max_new_tokens=n_new,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=EOS,
        bos_token_id=EOS,
        use_cache=True,
    )
    y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gen_cfg)
    return y[0, len(prompt_ids):].tolist()


@torch.no_grad()
def perplexity(model, ids: list[int], max_length: int, stride: int, n_bytes: int) -> dict:
    """Sliding-window perplexity computed explicitly from logits (not HF's loss).

    Windows of length L = max_length start at begin = 0, stride, 2*stride, ...; a window covers
    ids[begin:end] with end = min(begin + L, n).  Inside it the tokens at absolute positions
    max(prev_end, 1) .. end-1 are scored, each conditioned on ids[begin:t] (the logits at window
    position t-1-begin); prev_end = end; stop after the window whose end == n.  So every token
    except the very first is scored exactly once.  nll_sum = sum of -log p(token | context)
    (natural log, float64 accumulation of a float64 log_softmax of the float32 logits).
    """
    n = len(ids)
    nll_sum = 0.0
    scored = 0
    prev_end = 0
    begin = 0
    windows = 0
    while True:
        end = min(begin + max_length, n)
        logits = logits_of(model, ids[begin:end]).double()
        lp = torch.log_softmax(logits, dim=-1)
        for t in range(max(prev_end, 1), end):
            assert t - 1 - begin >= 0
            nll_sum += -float(lp[t - 1 - begin, ids[t]])
            scored += 1
        windows += 1
        prev_end = end
        if end == n:
            break
        begin += stride
    assert scored == n - 1
    mean = nll_sum / scored
    return {
        "file": "ppl.txt",
        "max_length": max_length,
        "stride": stride,
        "num_tokens": n,
        "windows": windows,
        "tokens_scored": scored,
        "nll_sum": nll_sum,
        "mean_nll": mean,
        "perplexity": math.exp(mean),
        "bytes": n_bytes,
        "bits_per_byte": nll_sum / math.log(2) / n_bytes,
    }


def model_reference(name: str, model, tok, max_new: int, with_attention: bool) -> tuple[dict, list]:
    cfg = model.config
    P = cfg.n_positions
    ref: dict = {
        "config": {
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_embd": cfg.n_embd,
            "n_inner": cfg.n_inner,
            "n_positions": cfg.n_positions,
            "vocab_size": cfg.vocab_size,
        },
        "num_parameters": int(model.num_parameters()),
        "tensor_parameters": {
            n.removeprefix("transformer."): int(p.numel()) for n, p in model.named_parameters()
        },
        "cases": [],
    }
    warnings = []
    all_margins = []
    for prompt in PROMPTS:
        pids = tok(prompt, add_special_tokens=False)["input_ids"]
        n_new = min(max_new, P - len(pids))
        if n_new < max_new:
            warnings.append(f"{name}: prompt {prompt!r} has {len(pids)} tokens -> only {n_new} new tokens")
        last = logits_of(model, pids)[-1]
        top = torch.topk(last, TOP_LOGITS).indices.tolist()
        lid = sorted(set(range(0, VOCAB, LOGIT_ID_STEP)) | set(int(i) for i in top))
        gids, glp, gtop, margins = greedy(model, pids, n_new)
        all_margins += margins
        gen = greedy_generate(model, pids, n_new)
        if gen != gids:
            raise SystemExit(f"{name}: generate() disagrees with the full-forward loop for {prompt!r}:\n{gids}\n{gen}")
        ref["cases"].append(
            {
                "prompt": prompt,
                "prompt_ids": pids,
                "last_logits": {"ids": lid, "values": [float(last[i]) for i in lid]},
                "last_logits_top20": top,
                "greedy_ids": gids,
                "greedy_text": tok.decode(gids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
                "greedy_logprobs": glp,
                "greedy_top10": gtop,
                "greedy_min_margin": min(margins),
            }
        )
    ref["greedy_min_margin"] = min(all_margins)

    if with_attention:
        aids = tok(ATTENTION_PROMPT, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([aids]), output_attentions=True)
        att = [a[0].float().tolist() for a in out.attentions]  # [layer][head][q][k]
        ref["attention"] = {"prompt": ATTENTION_PROMPT, "ids": aids, "weights": att}

    ids = tok(PPL_TEXT, add_special_tokens=False)["input_ids"]
    ref["perplexity"] = perplexity(model, ids, P, PPL_STRIDE, len(PPL_TEXT.encode("utf-8")))
    return ref, warnings


def summarize(name: str, ref: dict, tok) -> None:
    print(f"== {name}: num_parameters={ref['num_parameters']} greedy_min_margin={ref['greedy_min_margin']:.4g}")
    for c in ref["cases"]:
        top1 = [t[0]["prob"] for t in c["greedy_top10"]]
        distinct = len(set(c["greedy_ids"]))
        print(
            f"  {c['prompt']!r:48} new={len(c['greedy_ids']):2d} distinct={distinct:2d} "
            f"top1 p in [{min(top1):.3f}, {max(top1):.3f}] margin>={c['greedy_min_margin']:.3g}"
        )
        print(f"     -> {c['greedy_text']!r}"[:200])
    p = ref["perplexity"]
    print(f"  ppl: n={p['num_tokens']} windows={p['windows']} mean_nll={p['mean_nll']:.4f} ppl={p['perplexity']:.2f} bpb={p['bits_per_byte']:.4f}")


# ----------------------------------------------------------------------------------------------
# tokenizer


def byte_offsets(text: str, offsets) -> list[list[int]]:
    """Convert HF char offsets to UTF-8 byte offsets."""
    cum = [0]
    for ch in text:
        cum.append(cum[-1] + len(ch.encode("utf-8")))
    return [[cum[s], cum[e]] for s, e in offsets]


def tokenizer_reference(tok) -> list[dict]:
    out = []
    for s in TOKENIZER_STRINGS:
        enc = tok(s, add_special_tokens=False, return_offsets_mapping=True)
        out.append({"text": s, "ids": enc["input_ids"], "offsets": byte_offsets(s, enc["offset_mapping"])})
    return out


# ----------------------------------------------------------------------------------------------


def copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)  # content only (the source files are read-only)


def main() -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    for f in ("vocab.json", "merges.txt", "tokenizer.json"):
        if not (TOK_SRC / f).is_file():
            raise SystemExit(f"missing {TOK_SRC / f} (set GPT2_TOKENIZER_DIR)")

    FIX.mkdir(parents=True, exist_ok=True)
    d1 = FIX / "tiny-gpt2"
    d2 = FIX / "tiny-gpt2-noprefix"
    for d in (d1, d2):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    tok = PreTrainedTokenizerFast(tokenizer_file=str(TOK_SRC / "tokenizer.json"))
    check = tok("Hello, world! It's a test.", add_special_tokens=False)["input_ids"]
    assert check == [15496, 11, 995, 0, 632, 338, 257, 1332, 13], check

    (FIX / "ppl.txt").write_text(PPL_TEXT, encoding="utf-8")
    # the file must round-trip byte for byte (no newline translation)
    assert (FIX / "ppl.txt").read_bytes() == PPL_TEXT.encode("utf-8")

    warnings: list[str] = []

    # --- model 1: tiny-gpt2 (save_pretrained layout) ---
    cfg1 = make_config(n_layer=2, n_head=2, n_embd=16, n_positions=64)
    m1 = build_model(cfg1, seed=1234, wte_std=1.3, wpe_std=3.0, w_std=0.8)
    try:
        m1.save_pretrained(d1, safe_serialization=True)
    except TypeError:
        m1.save_pretrained(d1)
    copy_file(TOK_SRC / "tokenizer.json", d1 / "tokenizer.json")

    # --- model 2: tiny-gpt2-noprefix (old checkpoint layout) ---
    cfg2 = make_config(n_layer=3, n_head=3, n_embd=12, n_inner=20, n_positions=48)
    m2 = build_model(cfg2, seed=4321, wte_std=1.3, wpe_std=3.0, w_std=0.8)
    P2 = cfg2.n_positions
    sd = {}
    for k, v in m2.transformer.state_dict().items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue  # re-added below in a fixed form
        sd[k] = v.detach().clone().contiguous().float()
    mask = torch.tril(torch.ones(P2, P2, dtype=torch.float32)).view(1, 1, P2, P2)
    for i in range(cfg2.n_layer):
        sd[f"h.{i}.attn.bias"] = mask.clone()
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float32)
    safetensors.torch.save_file(sd, str(d2 / "model.safetensors"), metadata={"format": "pt"})
    cfg2.to_json_file(str(d2 / "config.json"))
    copy_file(TOK_SRC / "vocab.json", d2 / "vocab.json")
    copy_file(TOK_SRC / "merges.txt", d2 / "merges.txt")
    # the vocab.json + merges.txt pair must tokenize exactly like tokenizer.json
    tok_vm = GPT2TokenizerFast.from_pretrained(str(d2))
    for s in TOKENIZER_STRINGS + PROMPTS + [PPL_TEXT]:
        a = tok(s, add_special_tokens=False)["input_ids"]
        b = tok_vm(s, add_special_tokens=False)["input_ids"]
        assert a == b, (s, a, b)

    # --- round-trip checks: HF reloads both folders and gets identical logits ---
    probe = tok(PROMPTS[0], add_special_tokens=False)["input_ids"]
    for d, m in ((d1, m1), (d2, m2)):
        r = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager").eval()
        assert torch.equal(logits_of(r, probe), logits_of(m, probe)), f"reload mismatch for {d}"

    # --- references ---
    ref1, w1 = model_reference("tiny-gpt2", m1, tok, max_new=48, with_attention=True)
    ref2, w2 = model_reference("tiny-gpt2-noprefix", m2, tok, max_new=30, with_attention=True)
    warnings += w1 + w2

    reference = {
        "generated_by": f"tools/make_fixtures.py, transformers {transformers.__version__}, torch {torch.__version__}, "
        f"safetensors {safetensors.__version__}, numpy {np.__version__}",
        "models": {"tiny-gpt2": ref1, "tiny-gpt2-noprefix": ref2},
        "tokenizer": tokenizer_reference(tok),
    }
    with open(FIX / "reference.json", "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")

    summarize("tiny-gpt2", ref1, tok)
    summarize("tiny-gpt2-noprefix", ref2, tok)
    for d in (d1, d2):
        os.chmod(d / "model.safetensors", 0o644)  # save_file/save_pretrained may create it 0600
        with safetensors.safe_open(str(d / "model.safetensors"), "pt") as f:
            keys = list(f.keys())
            print(f"== {d.relative_to(ROOT)}/model.safetensors: {len(keys)} tensors")
            for k in keys:
                t = f.get_slice(k)
                print(f"    {k:36} {t.get_dtype():5} {t.get_shape()}")
    for w in warnings:
        print("NOTE:", w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
