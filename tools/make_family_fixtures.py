#!/usr/bin/env python3
"""Generate the GPT-2 *family* fixtures: tiny random models shaped like each family member.

Run from the repository root:

    python3 tools/make_family_fixtures.py

It writes, deterministically (fixed seeds, CPU, eval mode, eager attention, one thread):

    tests/fixtures/family/<name>/      one folder per model (config.json, weights, tokenizer.json)
    tests/fixtures/family/reference.json

Every model uses the same *reduced* GPT-2 tokenizer: the first 256 byte tokens and the first
255 merges of GPT-2's byte-level BPE (ids 0..510, exactly as in GPT-2) plus `<|endoftext|>`
as id 511, so the vocabulary is 512 and the embeddings stay small. See tools/README.md.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path

import safetensors
import safetensors.torch
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "family"
TOK_SRC = Path(os.environ.get("GPT2_TOKENIZER_DIR", "/work/shared/gpt2-tokenizer"))

MERGES = 255
VOCAB = 256 + MERGES + 1  # 512
EOS = VOCAB - 1  # 511
LOGIT_ID_STEP = 5  # last-position logits stored for ids 0, 5, 10, ... plus the top-20
TOP_LOGITS = 20
GREEDY_NEW = 12

PROMPTS = [
    "Hello, world! It's a test.",
    "The quick brown fox jumps over the lazy dog",
    "naïve café — 日本語 🤖",
]

# The real configs of the family (as published on the hub), minus the width/depth we reduce.
# Only n_embd (and for the deep ones n_layer, n_positions) change; n_head is the real one.
COMMON = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "embd_pdrop": 0.1,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
}

FAMILY = [
    {
        # distilgpt2: 6 layers, 12 heads (real n_embd 768); single model.safetensors from
        # save_pretrained (keys prefixed "transformer.", tied head not stored).
        "name": "distilgpt2",
        "real": "distilbert/distilgpt2",
        "format": "safetensors",
        "dtype": "float32",
        "config": {
            "_num_labels": 1,
            "id2label": {"0": "LABEL_0"},
            "label2id": {"LABEL_0": 0},
            "n_ctx": 1024,
            "n_positions": 1024,
            "n_head": 12,
            "n_layer": 6,
            "n_embd": 48,
            "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        },
        "seed": 11,
    },
    {
        # gpt2-medium: 16 heads (real: 24 layers, n_embd 1024); sharded safetensors + index.
        "name": "gpt2-medium-sharded",
        "real": "openai-community/gpt2-medium",
        "format": "sharded",
        "dtype": "float32",
        "config": {
            "n_ctx": 512,
            "n_positions": 512,
            "n_head": 16,
            "n_layer": 6,
            "n_embd": 32,
            "n_special": 0,
            "predict_special_tokens": True,
            "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        },
        "seed": 22,
    },
    {
        # gpt2-large: 20 heads (real: 36 layers, n_embd 1280); an old-style pytorch_model.bin
        # (torch.save of the GPT2Model state dict: no prefix, attn.bias / masked_bias buffers).
        "name": "gpt2-large-bin",
        "real": "openai-community/gpt2-large",
        "format": "bin-noprefix",
        "dtype": "float32",
        "config": {
            "n_ctx": 128,
            "n_positions": 128,
            "n_head": 20,
            "n_layer": 4,
            "n_embd": 40,
            "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        },
        "seed": 33,
    },
    {
        # gpt2-xl: 25 heads (real: 48 layers, n_embd 1600, head_dim 64); stored in float16.
        "name": "gpt2-xl-f16",
        "real": "openai-community/gpt2-xl",
        "format": "safetensors",
        "dtype": "float16",
        "config": {
            "n_ctx": 256,
            "n_positions": 256,
            "n_head": 25,
            "n_layer": 2,
            "n_embd": 100,
            "output_past": True,
            "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        },
        "seed": 44,
    },
    {
        # DialoGPT-medium: 16 heads (real: 24 layers, n_embd 1024), DialoGPT's
        # task_specific_params; pytorch_model.bin saved from GPT2LMHeadModel *with* an explicit
        # lm_head.weight (as the DialoGPT checkpoints have).
        "name": "dialogpt-medium-bin",
        "real": "microsoft/DialoGPT-medium",
        "format": "bin-lmhead",
        "dtype": "float32",
        "config": {
            "n_ctx": 256,
            "n_positions": 256,
            "n_head": 16,
            "n_layer": 3,
            "n_embd": 64,
            "task_specific_params": {"conversational": {"max_length": 1000}},
        },
        "seed": 55,
    },
    {
        # gpt2 (124M): 12 layers, 12 heads (real n_embd 768); bfloat16 safetensors without the
        # "transformer." prefix, like openai-community/gpt2's model.safetensors.
        "name": "gpt2-bf16",
        "real": "openai-community/gpt2",
        "format": "safetensors-noprefix",
        "dtype": "bfloat16",
        "config": {
            "n_ctx": 256,
            "n_positions": 256,
            "n_head": 12,
            "n_layer": 12,
            "n_embd": 48,
            "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        },
        "seed": 66,
    },
]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------
# tokenizer


def reduced_tokenizer_json() -> dict:
    """GPT-2's tokenizer.json cut down to 256 bytes + MERGES merges + <|endoftext|>."""
    t = json.loads((TOK_SRC / "tokenizer.json").read_text(encoding="utf-8"))
    model = t["model"]
    vocab = model["vocab"]
    keep = {tok: i for tok, i in vocab.items() if i < 256 + MERGES}
    merges = model["merges"][:MERGES]
    for i, m in enumerate(merges):
        a, b = m if isinstance(m, list) else m.split(" ")
        assert keep[a + b] == 256 + i, (i, m)
    keep["<|endoftext|>"] = EOS
    model["vocab"] = keep
    model["merges"] = merges
    assert len(t["added_tokens"]) == 1 and t["added_tokens"][0]["content"] == "<|endoftext|>"
    t["added_tokens"][0]["id"] = EOS
    return t


# ----------------------------------------------------------------------------------------------
# models


def full_config(entry: dict) -> dict:
    cfg = dict(COMMON)
    cfg.update(entry["config"])
    cfg.update({"vocab_size": VOCAB, "bos_token_id": EOS, "eos_token_id": EOS})
    if entry["dtype"] != "float32":
        cfg["torch_dtype"] = entry["dtype"]
    return dict(sorted(cfg.items()))


def build_model(cfg_dict: dict, seed: int) -> GPT2LMHeadModel:
    """Random GPT-2 with weights scaled to the width, so activations stay O(1) and the
    next-token distributions are peaked and varied (the stock std 0.02 gives near-uniform ones)."""
    cfg = GPT2Config(**{k: v for k, v in cfg_dict.items() if k != "torch_dtype"})
    cfg.attn_pdrop = cfg.resid_pdrop = cfg.embd_pdrop = 0.0
    torch.manual_seed(seed)
    try:
        model = GPT2LMHeadModel(cfg, attn_implementation="eager")  # type: ignore[call-arg]
    except TypeError:
        cfg._attn_implementation = "eager"
        model = GPT2LMHeadModel(cfg)
    e = cfg.n_embd
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = name.removeprefix("transformer.")
            if n == "wte.weight":
                v = torch.randn(p.shape, generator=g) * (4.0 / e**0.5)
            elif n == "wpe.weight":
                v = torch.randn(p.shape, generator=g) * 1.0
            elif n.endswith(("ln_1.weight", "ln_2.weight")) or n == "ln_f.weight":
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif n.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:  # Conv1D weights (in, out)
                v = torch.randn(p.shape, generator=g) * (2.0 / p.shape[0] ** 0.5)
            p.copy_(v)
    model.eval()
    return model


def save_weights(entry: dict, model: GPT2LMHeadModel, d: Path) -> None:
    dtype = DTYPES[entry["dtype"]]
    fmt = entry["format"]
    P = model.config.n_positions
    if fmt == "safetensors":
        model.to(dtype).save_pretrained(d)
    elif fmt == "sharded":
        model.to(dtype).save_pretrained(d, max_shard_size="150KB")
    elif fmt == "safetensors-noprefix":
        sd = {k: v.to(dtype).contiguous() for k, v in model.transformer.state_dict().items()}
        safetensors.torch.save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "bin-noprefix":
        sd = {k: v.to(dtype).clone().contiguous() for k, v in model.transformer.state_dict().items()}
        mask = torch.tril(torch.ones(P, P, dtype=torch.float32)).view(1, 1, P, P)
        for i in range(model.config.n_layer):
            sd[f"h.{i}.attn.bias"] = mask.clone()
            sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        torch.save(sd, d / "pytorch_model.bin")
    elif fmt == "bin-lmhead":
        sd = {k: v.to(dtype).clone().contiguous() for k, v in model.state_dict().items()}
        assert "lm_head.weight" in sd
        torch.save(sd, d / "pytorch_model.bin")
    else:
        raise SystemExit(f"unknown format {fmt}")
    for f in d.iterdir():
        os.chmod(f, 0o644)
    model.to(torch.float32)


def load_back(d: Path, dtype: torch.dtype) -> GPT2LMHeadModel:
    m = GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager", dtype=dtype)
    return m.eval()


@torch.no_grad()
def last_logits(model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


@torch.no_grad()
def greedy(model, ids: list[int], n: int) -> tuple[list[int], float]:
    ids = list(ids)
    out, margin = [], float("inf")
    for _ in range(n):
        last = last_logits(model, ids)
        top2 = torch.topk(last, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        tok = int(torch.argmax(last))
        out.append(tok)
        ids.append(tok)
    return out, margin


def make_one(entry: dict, tok, tok_json: dict) -> dict:
    d = OUT / entry["name"]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    cfg = full_config(entry)
    model = build_model(cfg, entry["seed"])
    save_weights(entry, model, d)
    # config.json as the family writes it (old keys such as n_ctx kept), not as transformers
    # would rewrite it today.
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (d / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False) + "\n", encoding="utf-8")

    # The reference is what transformers computes from the files as stored: load them back.
    ref32 = load_back(d, torch.float32)
    ref16 = load_back(d, torch.float16)
    refbf = load_back(d, torch.bfloat16)
    stored = ref32 if entry["dtype"] == "float32" else load_back(d, DTYPES[entry["dtype"]])
    cases = []
    err = {"float16": 0.0, "bfloat16": 0.0}
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        assert max(ids) < EOS
        l32 = last_logits(ref32, ids)
        l16 = last_logits(ref16, ids)
        lbf = last_logits(refbf, ids)
        err["float16"] = max(err["float16"], float((l16 - l32).abs().max()))
        err["bfloat16"] = max(err["bfloat16"], float((lbf - l32).abs().max()))
        top = torch.topk(l32, TOP_LOGITS).indices.tolist()
        lid = sorted(set(range(0, VOCAB, LOGIT_ID_STEP)) | set(int(i) for i in top))
        gids, margin = greedy(ref32, ids, GREEDY_NEW)
        cases.append(
            {
                "prompt": prompt,
                "prompt_ids": ids,
                "last_logits": {
                    "ids": lid,
                    "f32": [float(l32[i]) for i in lid],
                    "f16": [float(l16[i]) for i in lid],
                    "bf16": [float(lbf[i]) for i in lid],
                },
                "logit_std": float(l32.std()),
                "greedy_ids": gids,
                "greedy_min_margin": margin,
            }
        )
    files = {f.name: f.stat().st_size for f in sorted(d.iterdir())}
    keys = []
    for f in sorted(d.iterdir()):
        if f.suffix == ".safetensors":
            with safetensors.safe_open(str(f), "pt") as s:
                keys += [(k, s.get_slice(k).get_dtype()) for k in s.keys()]
    del stored
    return {
        "real": entry["real"],
        "format": entry["format"],
        "storage_dtype": entry["dtype"],
        "config": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")},
        "num_parameters": int(ref32.num_parameters()),
        "files": files,
        "hf_max_abs_error": err,
        "cases": cases,
    }


def main() -> int:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    if not (TOK_SRC / "tokenizer.json").is_file():
        raise SystemExit(f"missing {TOK_SRC / 'tokenizer.json'} (set GPT2_TOKENIZER_DIR)")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    tok_json = reduced_tokenizer_json()
    tmp = OUT / "_tokenizer.json"
    tmp.write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp))
    tmp.unlink()
    assert len(tok) == VOCAB, len(tok)
    assert tok("x<|endoftext|>", add_special_tokens=False)["input_ids"][-1] == EOS

    models = {}
    for entry in FAMILY:
        models[entry["name"]] = make_one(entry, tok, tok_json)

    reference = {
        "generated_by": f"tools/make_family_fixtures.py, transformers {transformers.__version__}, "
        f"torch {torch.__version__}, safetensors {safetensors.__version__}",
        "vocab_size": VOCAB,
        "eos_id": EOS,
        "models": models,
    }
    with open(OUT / "reference.json", "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")

    total = 0
    for name, m in models.items():
        size = sum(m["files"].values())
        total += size
        margins = min(c["greedy_min_margin"] for c in m["cases"])
        stds = [round(c["logit_std"], 2) for c in m["cases"]]
        print(
            f"{name:22} {m['format']:22} {m['storage_dtype']:9} params={m['num_parameters']:7d} "
            f"bytes={size:8d} logit_std={stds} greedy_margin>={margins:.3g} "
            f"hf_err f16={m['hf_max_abs_error']['float16']:.4f} bf16={m['hf_max_abs_error']['bfloat16']:.4f}"
        )
        for fname, sz in m["files"].items():
            print(f"    {fname:40} {sz:9d}")
    total += (OUT / "reference.json").stat().st_size
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
