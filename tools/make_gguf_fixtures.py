#!/usr/bin/env python3
"""Generate the GGUF fixtures with llama.cpp's own tools.

Run from the repository root:

    python3 tools/make_gguf_fixtures.py [LLAMA_CPP_DIR]

LLAMA_CPP_DIR (default $LLAMA_CPP_DIR, else /tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp)
is a llama.cpp source tree: `pip download llama-cpp-python --no-binary :all: --no-deps` gives one
under vendor/llama.cpp. Needs torch, transformers, numpy and `pip install gguf`.

It writes tests/fixtures/gguf/:

    tiny-gpt2-f32.gguf    tests/fixtures/tiny-gpt2 through convert_hf_to_gguf.py --outtype f32
    tiny-gpt2-q8_0.gguf   the same with --outtype q8_0 (its 16-wide rows cannot be blocked in 32s,
                          so the converter keeps them in F16: a file of mixed types)
    wide-q8_0.gguf        a random GPT-2 256 wide (1 layer, the family fixtures' 512-token
                          tokenizer) through convert_hf_to_gguf.py --outtype q8_0
    wide-q4_0.gguf        the same model's F32 conversion with every matrix re-quantized to Q4_0
                          by gguf-py (gguf.quants), norms, biases and positions kept in F32,
                          the tied token embeddings in Q4_0, as llama-quantize's pure Q4_0 does
    wide-q4_k_m.gguf      the F32 conversion through llama-quantize (build/bin/llama-quantize
    wide-q5_k_m.gguf      under LLAMA_CPP_DIR) in its Q4_K_M, Q5_K_M and Q6_K mixes
    wide-q6_k.gguf

gguf-py cannot quantize the K types (Q4_K, Q5_K, Q6_K raise NotImplementedError), hence
llama-quantize for those; tests/gguf.rs also makes K-type files with candle's quantizer.

The wide model's tokenizer is not one llama.cpp knows by hash, so its pre-tokenizer name is
given as `gpt-2` (it is GPT-2's byte-level BPE, cut to 512 tokens).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"
LLAMA = Path(
    os.environ.get("LLAMA_CPP_DIR", "/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
)

CONVERT_WITH_GPT2_PRE = """
import sys
sys.path.insert(0, {llama!r})
sys.path.insert(0, {gguf_py!r})
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = ["convert_hf_to_gguf.py"] + {args!r}
import runpy
runpy.run_path({script!r}, run_name="__main__")
"""


def convert(model_dir: Path, outtype: str, outfile: Path, patch_pre: bool = False) -> None:
    args = [str(model_dir), "--outtype", outtype, "--outfile", str(outfile)]
    script = LLAMA / "convert_hf_to_gguf.py"
    if patch_pre:
        code = CONVERT_WITH_GPT2_PRE.format(
            llama=str(LLAMA), gguf_py=str(LLAMA / "gguf-py"), args=args, script=str(script)
        )
        subprocess.run([sys.executable, "-c", code], check=True, cwd=LLAMA)
    else:
        subprocess.run([sys.executable, str(script), *args], check=True, cwd=LLAMA)
    print(f"wrote {outfile} ({outfile.stat().st_size} bytes)")


def with_n_ctx(src: Path, dst: Path) -> Path:
    """A copy of a HF folder whose config has `n_ctx`, which the converter reads."""
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.setdefault("n_ctx", cfg["n_positions"])
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


def wide_model(dst: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(17)
    config = GPT2Config(
        vocab_size=512, n_positions=64, n_ctx=64, n_embd=256, n_layer=1, n_head=4,
        bos_token_id=511, eos_token_id=511, initializer_range=0.1,
    )
    model = GPT2LMHeadModel(config).eval()
    dst.mkdir()
    model.save_pretrained(dst, safe_serialization=True)
    shutil.copy(ROOT / "tests/fixtures/family/distilgpt2/tokenizer.json", dst / "tokenizer.json")
    return dst


def requantize_q4_0(src: Path, dst: Path) -> None:
    """Every 2-D matrix but the positions in Q4_0, with gguf-py; the metadata copied."""
    sys.path.insert(0, str(LLAMA / "gguf-py"))
    import gguf
    from gguf import GGMLQuantizationType as T

    reader = gguf.GGUFReader(src)
    writer = gguf.GGUFWriter(dst, arch="gpt2")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        kind = field.types[0]
        value = field.contents()
        if field.name == "general.file_type":
            value = int(gguf.LlamaFileType.MOSTLY_Q4_0)
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_array(field.name, value)
        else:
            writer.add_key_value(field.name, value, kind)
    for t in reader.tensors:
        data = np.array(t.data, dtype=np.float32).reshape(list(reversed(t.shape.tolist())))
        if data.ndim == 2 and t.name != "position_embd.weight":
            writer.add_tensor(t.name, gguf.quants.quantize(data, T.Q4_0), raw_dtype=T.Q4_0)
        else:
            writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")


def llama_quantize(src: Path, dst: Path, kind: str) -> None:
    """llama.cpp's own quantizer (build/bin/llama-quantize, built as tools/bench_peers.sh does)."""
    subprocess.run([str(LLAMA / "build/bin/llama-quantize"), str(src), str(dst), kind],
                   check=True, capture_output=True)
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")


def main() -> None:
    global LLAMA
    if len(sys.argv) > 1:
        LLAMA = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = with_n_ctx(ROOT / "tests/fixtures/tiny-gpt2", tmp / "tiny")
        convert(tiny, "f32", OUT / "tiny-gpt2-f32.gguf")
        convert(tiny, "q8_0", OUT / "tiny-gpt2-q8_0.gguf")
        wide = wide_model(tmp / "wide")
        convert(wide, "q8_0", OUT / "wide-q8_0.gguf", patch_pre=True)
        convert(wide, "f32", tmp / "wide-f32.gguf", patch_pre=True)
        requantize_q4_0(tmp / "wide-f32.gguf", OUT / "wide-q4_0.gguf")
        for kind in ["Q4_K_M", "Q5_K_M", "Q6_K"]:
            llama_quantize(tmp / "wide-f32.gguf", OUT / f"wide-{kind.lower()}.gguf", kind)


if __name__ == "__main__":
    main()
