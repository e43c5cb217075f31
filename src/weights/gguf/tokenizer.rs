//! The tokenizer llama.cpp stores in a GPT-2 GGUF file: `tokenizer.ggml.model = "gpt2"`, the
//! byte-level BPE strings in `tokenizer.ggml.tokens` (ids by position), the merges as "a b"
//! in `tokenizer.ggml.merges`, and `tokenizer.ggml.token_type` (3 marks control tokens such as
//! `<|endoftext|>`).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;

use super::header::string;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// llama.cpp's token type of control tokens.
const CONTROL: i32 = 3;

fn strings<'a>(md: &'a HashMap<String, Value>, key: &str, origin: &str) -> Result<Vec<&'a str>> {
    let bad = |message: String| Error::Tokenizer {
        file: origin.to_string(),
        message,
    };
    let values = md
        .get(key)
        .ok_or_else(|| bad(format!("missing metadata key `{key}`")))?
        .to_vec()
        .map_err(|_| bad(format!("metadata key `{key}` is not an array")))?;
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(bad(format!(
                "metadata key `{key}` holds {other:?}, not strings"
            ))),
        })
        .collect()
}

/// The GPT-2 tokenizer described by a GGUF file's metadata.
pub fn from_metadata(md: &HashMap<String, Value>, origin: &str) -> Result<Tokenizer> {
    let bad = |message: String| Error::Tokenizer {
        file: origin.to_string(),
        message,
    };
    let model = string(md, "tokenizer.ggml.model", origin)?;
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer.ggml.model is `{model}`: only GPT-2's byte-level BPE (`gpt2`) is supported"
        )));
    }
    let tokens = strings(md, "tokenizer.ggml.tokens", origin)?;
    let merges = strings(md, "tokenizer.ggml.merges", origin)?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| bad(format!("merge {m:?} in tokenizer.ggml.merges is not `a b`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.to_string(), id as u32))
        .collect();
    let control: Vec<&str> = match md.get("tokenizer.ggml.token_type").map(Value::to_vec) {
        Some(Ok(types)) => types
            .iter()
            .zip(&tokens)
            .filter(|(t, _)| matches!(t, Value::I32(CONTROL)))
            .map(|(_, token)| *token)
            .collect(),
        _ => vec![crate::tokenizer::END_OF_TEXT],
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(format!("cannot build the BPE from tokenizer.ggml.*: {e}")))?;
    Tokenizer::from_bpe(bpe, &control, origin)
}
