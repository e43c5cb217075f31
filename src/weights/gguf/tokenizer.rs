//! The tokenizer llama.cpp stores in a GPT-2 GGUF file: `tokenizer.ggml.model = "gpt2"`, the
//! byte-level BPE strings in `tokenizer.ggml.tokens` (ids by position), the merges as "a b"
//! in `tokenizer.ggml.merges`, and `tokenizer.ggml.token_type` (3 marks control tokens such as
//! `<|endoftext|>`). Read by [`from_metadata`], written by [`to_metadata`].

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::BPE;

use super::header::string;
use super::keys;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// llama.cpp's token types: ordinary tokens, and control tokens.
const NORMAL: i32 = 1;
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
    let model = string(md, keys::TOKENIZER_MODEL, origin)?;
    if model != "gpt2" {
        return Err(bad(format!(
            "tokenizer.ggml.model is `{model}`: only GPT-2's byte-level BPE (`gpt2`) is supported"
        )));
    }
    let tokens = strings(md, keys::TOKENS, origin)?;
    let merges = strings(md, keys::MERGES, origin)?
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
    let control: Vec<&str> = match md.get(keys::TOKEN_TYPES).map(Value::to_vec) {
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

/// The metadata that describes `tokenizer` as llama.cpp stores GPT-2's: what
/// [`from_metadata`] reads back. Fails for a vocabulary with gaps in its ids or a tokenizer that
/// is not BPE.
pub fn to_metadata(tokenizer: &Tokenizer, origin: &str) -> Result<Vec<(&'static str, Value)>> {
    let bad = |message: String| Error::Tokenizer {
        file: origin.to_string(),
        message,
    };
    let hf = tokenizer.hf();
    let tokenizers::models::ModelWrapper::BPE(bpe) = hf.get_model() else {
        return Err(bad(
            "not a BPE tokenizer: GGUF files store GPT-2's byte-level BPE".into(),
        ));
    };
    // `tokenizers` keeps the merges private; its serialised form lists them by rank.
    let model =
        serde_json::to_value(bpe).map_err(|e| bad(format!("cannot read the merges: {e}")))?;
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| bad("the BPE model has no merges".into()))?
        .iter()
        .map(|m| match (m.as_str(), m.as_array().map(Vec::as_slice)) {
            (Some(text), _) => Ok(text.to_string()),
            (_, Some([a, b])) => Ok(format!(
                "{} {}",
                a.as_str().unwrap_or_default(),
                b.as_str().unwrap_or_default()
            )),
            _ => Err(bad(format!("merge {m} is not a pair"))),
        })
        .map(|m| m.map(Value::String))
        .collect::<Result<Vec<_>>>()?;
    let added = hf.get_added_tokens_decoder();
    let mut tokens = Vec::with_capacity(tokenizer.vocab_size());
    let mut types = Vec::with_capacity(tokenizer.vocab_size());
    for id in 0..tokenizer.vocab_size() as u32 {
        let token = hf
            .id_to_token(id)
            .ok_or_else(|| bad(format!("no token has id {id}: GGUF needs ids without gaps")))?;
        let special = added.get(&id).is_some_and(|t| t.special);
        tokens.push(Value::String(token));
        types.push(Value::I32(if special { CONTROL } else { NORMAL }));
    }
    Ok(vec![
        (keys::TOKENIZER_MODEL, Value::String("gpt2".into())),
        (keys::TOKENIZER_PRE, Value::String("gpt-2".into())),
        (keys::TOKENS, Value::Array(tokens)),
        (keys::TOKEN_TYPES, Value::Array(types)),
        (keys::MERGES, Value::Array(merges)),
        (keys::ADD_BOS, Value::Bool(false)),
    ])
}
