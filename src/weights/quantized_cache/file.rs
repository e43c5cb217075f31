//! A cached quantized model on disk: a GGUF file laid out as llama.cpp lays out GPT-2 (arch
//! `gpt2`, llama.cpp's tensor names and metadata keys, the tokenizer in the metadata, every
//! matrix (out, in)), so llama.cpp can run it too, plus `gpt2_tui.cache.*` keys saying what it
//! was made from. [`write`] saves a quantized model as it sits in memory; [`read`] checks a
//! file against what the checkpoint and the type lead one to expect, then builds that very
//! model again without quantizing anything.
//!
//! A tied head that is quantized is stored as llama.cpp stores it: its blocks are
//! `token_embd.weight`, which serve the lookups and the product, with no `output.weight`; the
//! `gpt2_tui.cache.tied_head` key says that the head is tied.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::key::Fingerprint;
use crate::atomic_file::Sync;
use crate::model::gpt2::StoredWeight;
use crate::model::q8::{QuantType, QuantizedWeights};
use crate::model::{Gpt2, Gpt2Config};
use crate::weights::gguf::write::{TensorData, ALIGNMENT};
use crate::weights::gguf::{self, gguf_name, keys, GgufFile};
use crate::weights::layout::{expected_shapes, is_projection, LoadedModel};
use crate::weights::loader::{self, ModelFiles};

/// The layout version: a file of another version is rebuilt, never read.
/// 2: a quantized tied head is `token_embd.weight` alone (1 kept an f32 copy beside it).
pub const FORMAT: u32 = 2;

/// Writes `loaded`, quantized to `kind` from the files `fingerprint` describes, to `path`
/// (atomically: a temporary file in the same folder, renamed when whole). Returns the
/// file's size.
pub fn write(
    path: &Path,
    loaded: &LoadedModel,
    kind: QuantType,
    fingerprint: &Fingerprint,
) -> Result<u64, String> {
    let stored = loaded.model.stored_weights().map_err(|e| e.to_string())?;
    // llama.cpp stores every matrix (out, in): dense projections are written transposed.
    let transposed = stored
        .iter()
        .map(|(name, weight)| match weight {
            StoredWeight::Dense(w) if is_projection(name) => w.t()?.contiguous().map(Some),
            _ => Ok(None),
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let tensors: Vec<(String, TensorData)> = stored
        .iter()
        .zip(&transposed)
        .map(|((name, weight), transposed)| {
            let data = match (weight, transposed) {
                (_, Some(t)) => TensorData::Dense(t),
                (StoredWeight::Dense(t), None) => TensorData::Dense(t),
                (StoredWeight::Quantized(q), None) => TensorData::Quantized(q),
            };
            (gguf_name(name), data)
        })
        .collect();
    let mut crc = crc32fast::Hasher::new();
    for (_, data) in &tensors {
        data.with_bytes(|bytes| crc.update(bytes))
            .map_err(|e| e.to_string())?;
    }
    let metadata = metadata(loaded, kind, fingerprint, crc.finalize())?;
    // Every read checks the size and the checksum, so a file a crash cut short is rebuilt:
    // no need to wait for the disk (fsync) before the first token.
    crate::atomic_file::write_atomic_with(path, Sync::Checked, |w| {
        gguf::write::write(w, &metadata, &tensors)
    })
    .map_err(|e| e.to_string())?;
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// llama.cpp's `llama_ftype` for a file of mostly `kind` tensors.
fn file_type(kind: QuantType) -> u32 {
    match kind {
        QuantType::Q8_0 => 7,
        QuantType::Q4_0 => 2,
        QuantType::Q4K => 14,
    }
}

fn metadata(
    loaded: &LoadedModel,
    kind: QuantType,
    fingerprint: &Fingerprint,
    crc: u32,
) -> Result<Vec<(&'static str, Value)>, String> {
    let config = loaded.model.config();
    let count = |n: usize| Value::U32(n as u32);
    let mut md = vec![
        (keys::ARCHITECTURE, Value::String("gpt2".into())),
        (keys::NAME, Value::String(loaded.name.clone())),
        (keys::FILE_TYPE, Value::U32(file_type(kind))),
        (keys::QUANTIZATION_VERSION, Value::U32(2)),
        (keys::CONTEXT_LENGTH, count(config.n_positions)),
        (keys::EMBEDDING_LENGTH, count(config.n_embd)),
        (keys::BLOCK_COUNT, count(config.n_layer)),
        (keys::FEED_FORWARD_LENGTH, count(config.mlp_width())),
        (keys::HEAD_COUNT, count(config.n_head)),
        (
            keys::LAYER_NORM_EPSILON,
            Value::F32(config.layer_norm_epsilon as f32),
        ),
        (keys::BOS_ID, Value::U32(config.bos_token_id)),
        (keys::EOS_ID, Value::U32(config.eos_token_id)),
    ];
    md.extend(
        gguf::tokenizer::to_metadata(&loaded.tokenizer, &loaded.name).map_err(|e| e.to_string())?,
    );
    md.extend([
        (keys::CACHE_FORMAT, Value::U32(FORMAT)),
        (
            keys::CACHE_SOURCE_KEY,
            Value::String(fingerprint.key.clone()),
        ),
        (
            keys::CACHE_SOURCE,
            Value::String(fingerprint.source.clone()),
        ),
        (keys::CACHE_QUANT_TYPE, Value::String(kind.name().into())),
        (
            keys::CACHE_TIED_HEAD,
            Value::Bool(loaded.model.has_tied_head()),
        ),
        (
            keys::CACHE_PARAMETERS,
            Value::U64(loaded.parameter_count as u64),
        ),
        (keys::CACHE_DATA_CRC32, Value::U32(crc)),
    ]);
    Ok(md)
}

/// One tensor a cache file must hold.
struct Expected {
    /// Our name (`h.0.attn.c_attn.weight`).
    ours: String,
    /// llama.cpp's (`blk.0.attn_qkv.weight`).
    stored: String,
    /// As stored: matrices (out, in).
    dims: Vec<usize>,
    dtype: GgmlDType,
}

/// Every tensor of a `kind` cache file for `config`, in file order: a matrix is in `kind` when
/// its input width is a multiple of the type's block (as [`Gpt2::quantize`] does), else f32.
fn expected_tensors(config: &Gpt2Config, kind: QuantType, tied: bool) -> Vec<Expected> {
    let in_blocks = |width: usize| width.is_multiple_of(kind.block());
    let mut out: Vec<Expected> = expected_shapes(config, false)
        .into_iter()
        .map(|(ours, shape)| {
            let matrix = is_projection(&ours);
            Expected {
                stored: gguf_name(&ours),
                dtype: match matrix && in_blocks(shape[0]) {
                    true => kind.ggml(),
                    false => GgmlDType::F32,
                },
                dims: match matrix {
                    true => shape.iter().rev().copied().collect(),
                    false => shape,
                },
                ours,
            }
        })
        .collect();
    if tied && in_blocks(config.n_embd) {
        // The tied head's blocks are the token embeddings.
        if let Some(wte) = out.iter_mut().find(|t| t.ours == "wte.weight") {
            wte.dtype = kind.ggml();
        }
    }
    let head_dtype = match (in_blocks(config.n_embd), tied) {
        (_, true) => None,
        (true, false) => Some(kind.ggml()),
        (false, false) => Some(GgmlDType::F32),
    };
    if let Some(dtype) = head_dtype {
        out.push(Expected {
            ours: "lm_head.weight".into(),
            stored: gguf_name("lm_head.weight"),
            dims: vec![config.vocab_size, config.n_embd],
            dtype,
        });
    }
    out
}

/// Bytes a tensor of this type and shape takes.
fn byte_len(dtype: GgmlDType, dims: &[usize]) -> u64 {
    let elems: usize = dims.iter().product();
    (elems / dtype.block_size() * dtype.type_size()) as u64
}

/// Where the last tensor's data ends, padded as the writer pads: the size a whole file has.
fn whole_size(content: &Content) -> u64 {
    let end = content
        .tensor_infos
        .values()
        .map(|t| t.offset + byte_len(t.ggml_dtype, t.shape.dims()))
        .max()
        .unwrap_or(0);
    content.tensor_data_offset + end.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// A truncated file (or one with bytes after its tensors), said as a reason.
fn size_problem(content: &Content, actual: u64) -> Option<String> {
    let whole = whole_size(content);
    match actual.cmp(&whole) {
        std::cmp::Ordering::Less => Some(format!(
            "it is {actual} bytes but its tensors end at {whole}: truncated"
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "it is {actual} bytes but its tensors end at {whole}: {} bytes too many",
            actual - whole
        )),
        std::cmp::Ordering::Equal => None,
    }
}

fn recorded<'a>(content: &'a Content, key: &str) -> Result<&'a Value, String> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| format!("it has no `{key}`"))
}

fn recorded_text<'a>(content: &'a Content, key: &str) -> Result<&'a str, String> {
    gguf::header::string(&content.metadata, key, "").map_err(message)
}

fn recorded_number(content: &Content, key: &str) -> Result<u64, String> {
    gguf::header::uint(&content.metadata, key, "")
        .map(|n| n as u64)
        .map_err(message)
}

/// An error's message without the file it names (the caller names it).
fn message(e: crate::Error) -> String {
    match e {
        crate::Error::Weights { message, .. }
        | crate::Error::Config { message, .. }
        | crate::Error::Tokenizer { message, .. } => message,
        other => other.to_string(),
    }
}

/// A model read back from a cache file.
pub struct FromCache {
    pub loaded: LoadedModel,
    /// Matrices stored in f32 because their width is not a multiple of the type's block.
    pub kept_f32: usize,
}

/// Reads the cache file at `path` as the `kind` model of the checkpoint `files` (whose config
/// is `config`), after checking it: the header parses; it is of this layout version and type
/// and was made from these files (the fingerprint); it holds every tensor with the type and
/// shape expected and nothing else; its size is where its tensors end (not truncated); and its
/// tensor bytes match their checksum. Any failure is the reason the file cannot be used (the
/// inner error); the outer one is the checkpoint's own (its tokenizer cannot be read), which
/// quantizing again would meet too.
pub fn read(
    path: &Path,
    files: &ModelFiles,
    config: &Gpt2Config,
    kind: QuantType,
    fingerprint: &Fingerprint,
) -> crate::Result<Result<FromCache, String>> {
    let mut tokenizer = None;
    let model = read_model(path, config, kind, fingerprint, || {
        tokenizer = Some(loader::read_tokenizer(files, config));
    });
    let (model, parameter_count, kept_f32) = match model {
        Ok(read) => read,
        Err(why) => return Ok(Err(why)),
    };
    // A model was read, so `meanwhile` ran.
    let tokenizer = tokenizer.unwrap_or_else(|| loader::read_tokenizer(files, config))?;
    Ok(Ok(FromCache {
        loaded: LoadedModel {
            name: files.name.clone(),
            model,
            tokenizer,
            parameter_count,
        },
        kept_f32,
    }))
}

/// [`read`] less the tokenizer, which `meanwhile` reads on a second thread once the header
/// has passed its checks (GPT-2's `tokenizer.json` takes a few hundred milliseconds). Returns
/// the model, its parameter count and how many matrices are f32.
fn read_model(
    path: &Path,
    config: &Gpt2Config,
    kind: QuantType,
    fingerprint: &Fingerprint,
    meanwhile: impl FnOnce() + Send,
) -> Result<(Gpt2, usize, usize), String> {
    let mut file = GgufFile::open(path).map_err(message)?;
    let content = &file.content;
    let format = recorded_number(content, keys::CACHE_FORMAT)?;
    if format != u64::from(FORMAT) {
        return Err(format!(
            "it has layout version {format}, this build reads {FORMAT}"
        ));
    }
    let stored_kind = recorded_text(content, keys::CACHE_QUANT_TYPE)?;
    if stored_kind != kind.name() {
        return Err(format!("it holds {stored_kind}, not {}", kind.name()));
    }
    if recorded_text(content, keys::CACHE_SOURCE_KEY)? != fingerprint.key {
        return Err("the checkpoint changed since it was made (stale)".into());
    }
    let tied = match recorded(content, keys::CACHE_TIED_HEAD)? {
        Value::Bool(b) => *b,
        other => return Err(format!("`{}` is {other:?}", keys::CACHE_TIED_HEAD)),
    };
    let parameter_count = recorded_number(content, keys::CACHE_PARAMETERS)? as usize;
    let crc = recorded_number(content, keys::CACHE_DATA_CRC32)?;
    let expected = expected_tensors(config, kind, tied);
    for t in &expected {
        let Some(info) = content.tensor_infos.get(&t.stored) else {
            return Err(format!("tensor `{}` is missing", t.stored));
        };
        if info.ggml_dtype != t.dtype || info.shape.dims() != t.dims.as_slice() {
            return Err(format!(
                "tensor `{}` is {:?} {:?}, expected {:?} {:?}",
                t.stored,
                info.ggml_dtype,
                info.shape.dims(),
                t.dtype,
                t.dims
            ));
        }
    }
    if content.tensor_infos.len() != expected.len() {
        return Err(format!(
            "it has {} tensors, expected {}",
            content.tensor_infos.len(),
            expected.len()
        ));
    }
    let actual = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if let Some(problem) = size_problem(content, actual) {
        return Err(problem);
    }
    // The metadata (100,000 strings of vocabulary for llama.cpp) is not needed any more.
    file.content.metadata = Default::default();
    let (model, kept_f32) = std::thread::scope(|scope| {
        scope.spawn(meanwhile);
        read_weights(&mut file, &expected, config, kind, tied, crc)
    })?;
    Ok((model, parameter_count, kept_f32))
}

/// Reads the `expected` tensors from `file` (checked to be there) and builds the model;
/// also returns how many matrices are f32. Fails when the bytes do not match `crc`.
fn read_weights(
    file: &mut GgufFile,
    expected: &[Expected],
    config: &Gpt2Config,
    kind: QuantType,
    tied: bool,
    crc: u64,
) -> Result<(Gpt2, usize), String> {
    let device = Device::Cpu;
    let candle = |e: candle_core::Error| e.to_string();
    file.start_checksum();
    let mut dense = HashMap::new();
    let mut quantized = QuantizedWeights::new();
    let mut kept_f32 = 0;
    for t in expected {
        let matrix = is_projection(&t.ours) || t.ours == "lm_head.weight";
        if t.dtype == GgmlDType::F32 {
            kept_f32 += usize::from(matrix);
            let w = file
                .dense(&t.stored, &device, DType::F32)
                .map_err(message)?;
            let w = match is_projection(&t.ours) {
                true => w.t().and_then(|w| w.contiguous()).map_err(candle)?,
                false => w,
            };
            dense.insert(t.ours.clone(), w);
            continue;
        }
        let q = file.quantized(&t.stored, &device).map_err(message)?;
        if t.ours == "lm_head.weight" && !tied {
            // A head of its own keeps dense rows too, as when it was loaded.
            dense.insert(t.ours.clone(), q.dequantize(&device).map_err(candle)?);
        }
        // A tied head's blocks, stored as the token embeddings, are the head's product.
        let name = match t.ours.as_str() {
            "wte.weight" => "lm_head.weight".to_string(),
            _ => t.ours.clone(),
        };
        quantized.insert(name, QMatMul::from_qtensor(q).map_err(candle)?);
    }
    // A tied head too narrow for the blocks is the f32 embeddings themselves.
    if tied && !config.n_embd.is_multiple_of(kind.block()) {
        kept_f32 += 1;
    }
    if file.checksum().map(u64::from) != Some(crc) {
        return Err("its tensor data does not match its checksum (damaged)".into());
    }
    let vb = VarBuilder::from_tensors(dense, DType::F32, &device);
    let model = Gpt2::load_with_quantized(vb, config, quantized).map_err(candle)?;
    Ok((model, kept_f32))
}

/// What `gpt2-tui models` shows of a cache file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Described {
    pub quant_type: Option<String>,
    pub source: Option<String>,
    /// Why the next load will rebuild it rather than read it, when that is already clear from
    /// the file alone (the fingerprint is checked at load).
    pub problem: Option<String>,
}

/// The header of the cache file at `path`, checked as far as the file alone allows.
pub fn describe(path: &Path) -> Described {
    let (quant_type, source, problem) = match GgufFile::open(path) {
        Err(e) => (None, None, Some(e.to_string())),
        Ok(file) => {
            let content = &file.content;
            let text = |key| recorded_text(content, key).ok().map(String::from);
            let actual = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let format = recorded_number(content, keys::CACHE_FORMAT).ok();
            let problem = match format {
                Some(f) if f == u64::from(FORMAT) => size_problem(content, actual),
                Some(f) => Some(format!("layout version {f}, this build reads {FORMAT}")),
                None => Some("not a gpt2-tui cache file".into()),
            };
            (
                text(keys::CACHE_QUANT_TYPE),
                text(keys::CACHE_SOURCE),
                problem,
            )
        }
    };
    Described {
        quant_type,
        source,
        problem,
    }
}
