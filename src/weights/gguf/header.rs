//! A GGUF file's metadata as a [`Gpt2Config`], with errors that name the key; and an
//! explanation of a header candle could not read (wrong magic, truncation, a tensor type it
//! does not know, named by tensor).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use super::keys;
use crate::error::{Error, Result};
use crate::model::Gpt2Config;

/// The metadata key `key`, or an error naming it.
fn get<'a>(md: &'a HashMap<String, Value>, key: &str, origin: &str) -> Result<&'a Value> {
    md.get(key).ok_or_else(|| Error::Config {
        file: origin.to_string(),
        message: format!("missing metadata key `{key}`"),
    })
}

/// An unsigned integer of any width (writers differ: u32 in llama.cpp, u64 elsewhere).
pub fn uint(md: &HashMap<String, Value>, key: &str, origin: &str) -> Result<usize> {
    let value = get(md, key, origin)?;
    let n = match value {
        Value::I8(v) => (*v).try_into().ok(),
        Value::I16(v) => (*v).try_into().ok(),
        Value::I32(v) => (*v).try_into().ok(),
        Value::I64(v) => (*v).try_into().ok(),
        other => other.to_u64().ok().and_then(|v| v.try_into().ok()),
    };
    n.ok_or_else(|| Error::Config {
        file: origin.to_string(),
        message: format!("metadata key `{key}` is {value:?}, not a count"),
    })
}

fn float(md: &HashMap<String, Value>, key: &str, origin: &str) -> Result<f64> {
    match get(md, key, origin)? {
        Value::F32(v) => Ok(*v as f64),
        Value::F64(v) => Ok(*v),
        other => Err(Error::Config {
            file: origin.to_string(),
            message: format!("metadata key `{key}` is {other:?}, not a number"),
        }),
    }
}

pub fn string<'a>(md: &'a HashMap<String, Value>, key: &str, origin: &str) -> Result<&'a str> {
    match get(md, key, origin)? {
        Value::String(s) => Ok(s),
        other => Err(Error::Config {
            file: origin.to_string(),
            message: format!("metadata key `{key}` is {other:?}, not a string"),
        }),
    }
}

/// The model's shape from llama.cpp's `gpt2.*` keys; the vocabulary is the rows of
/// `token_embd.weight`.
pub fn config(content: &Content, origin: &str) -> Result<Gpt2Config> {
    let md = &content.metadata;
    let arch = string(md, keys::ARCHITECTURE, origin)?;
    if arch != "gpt2" {
        return Err(Error::Config {
            file: origin.to_string(),
            message: format!(
                "general.architecture is `{arch}`: only GPT-2 (`gpt2`) GGUF files can be loaded"
            ),
        });
    }
    let vocab_size = content
        .tensor_infos
        .get("token_embd.weight")
        .and_then(|info| info.shape.dims().first().copied())
        .ok_or_else(|| Error::Weights {
            file: origin.to_string(),
            message: "missing tensor `token_embd.weight`".into(),
        })?;
    let special = |key: &str| -> Result<u32> {
        match md.contains_key(key) {
            true => Ok(uint(md, key, origin)? as u32),
            false => Ok(50256),
        }
    };
    let config = Gpt2Config {
        vocab_size,
        n_positions: uint(md, keys::CONTEXT_LENGTH, origin)?,
        n_embd: uint(md, keys::EMBEDDING_LENGTH, origin)?,
        n_layer: uint(md, keys::BLOCK_COUNT, origin)?,
        n_head: uint(md, keys::HEAD_COUNT, origin)?,
        n_inner: Some(uint(md, keys::FEED_FORWARD_LENGTH, origin)?),
        layer_norm_epsilon: float(md, keys::LAYER_NORM_EPSILON, origin)?,
        bos_token_id: special(keys::BOS_ID)?,
        eos_token_id: special(keys::EOS_ID)?,
        // llama.cpp's GPT-2 graph uses the tanh GELU, as `gelu_new` does.
        ..Gpt2Config::gpt2_small()
    };
    if config.n_head == 0 || !config.n_embd.is_multiple_of(config.n_head) {
        return Err(Error::Config {
            file: origin.to_string(),
            message: format!(
                "gpt2.attention.head_count {} does not divide gpt2.embedding_length {}",
                config.n_head, config.n_embd
            ),
        });
    }
    Ok(config)
}

/// Why candle could not read the header, in one line: it does not say which tensor has a type
/// it does not know, so that case is found again here by walking the tensor list.
pub fn explain_read_error(path: &Path, e: &candle_core::Error) -> String {
    let text = e.to_string();
    let text = text.lines().next().unwrap_or(&text);
    let mut magic = [0u8; 4];
    let read_magic = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    if read_magic.is_err() || &magic != super::MAGIC {
        return format!("not a GGUF file (it starts with {magic:02x?}, not the magic `GGUF`)");
    }
    if text.contains("unknown dtype") {
        if let Ok(Some((name, code))) = unknown_type_tensor(path) {
            return format!(
                "tensor `{name}` has GGML type {code}, which gpt2-tui cannot read (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)"
            );
        }
    }
    if text.contains("failed to fill whole buffer") || text.contains("remaining") {
        return format!("truncated GGUF header ({text})");
    }
    format!("cannot read the GGUF header: {text}")
}

/// The first tensor whose type code candle does not know, by walking the header (version 2 or
/// 3 layout: u64 lengths).
fn unknown_type_tensor(path: &Path) -> std::io::Result<Option<(String, u32)>> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let u32_ = |f: &mut dyn Read| -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    };
    let u64_ = |f: &mut dyn Read| -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        f.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    let _magic = u32_(&mut f)?;
    if u32_(&mut f)? < 2 {
        return Ok(None);
    }
    let tensors = u64_(&mut f)?;
    let kvs = u64_(&mut f)?;
    for _ in 0..kvs {
        let len = u64_(&mut f)?;
        f.seek(SeekFrom::Current(len as i64))?;
        let kind = u32_(&mut f)?;
        skip_value(&mut f, kind)?;
    }
    for _ in 0..tensors {
        let len = u64_(&mut f)? as usize;
        let mut name = vec![0u8; len.min(1 << 16)];
        f.read_exact(&mut name)?;
        let dims = u32_(&mut f)?;
        f.seek(SeekFrom::Current(8 * dims as i64))?;
        let code = u32_(&mut f)?;
        let _offset = u64_(&mut f)?;
        if !matches!(code, 0..=3 | 6..=15 | 30) {
            return Ok(Some((String::from_utf8_lossy(&name).into_owned(), code)));
        }
    }
    Ok(None)
}

/// Skips one metadata value of GGUF value type `kind`.
fn skip_value<R: Read + Seek>(f: &mut R, kind: u32) -> std::io::Result<()> {
    let mut b8 = [0u8; 8];
    let fixed = match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => {
            f.read_exact(&mut b8)?;
            f.seek(SeekFrom::Current(u64::from_le_bytes(b8) as i64))?;
            return Ok(());
        }
        9 => {
            let mut b4 = [0u8; 4];
            f.read_exact(&mut b4)?;
            f.read_exact(&mut b8)?;
            for _ in 0..u64::from_le_bytes(b8) {
                skip_value(f, u32::from_le_bytes(b4))?;
            }
            return Ok(());
        }
        _ => return Err(std::io::ErrorKind::InvalidData.into()),
    };
    f.seek(SeekFrom::Current(fixed))?;
    Ok(())
}
