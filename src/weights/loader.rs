//! Finds and loads the files of a Hugging Face GPT-2 checkpoint: `config.json`, the weights
//! (`model.safetensors`, sharded safetensors with an index, or `pytorch_model.bin`) and the
//! tokenizer (`tokenizer.json`, else `vocab.json` + `merges.txt`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub(crate) use super::layout::is_projection;
pub use super::layout::{expected_shapes, LoadedModel};
use super::safetensors_file;
use crate::error::{Error, Result};
use crate::model::q8::{quantize_weight, QuantType, QuantizedWeights};
use crate::model::Gpt2;
use crate::model::Gpt2Config;
use crate::tokenizer::Tokenizer;

/// Where a model's bytes come from.
#[derive(Debug, Clone)]
pub enum Bytes {
    File(PathBuf),
    Static(&'static [u8]),
}

impl Bytes {
    fn origin(&self, fallback: &str) -> String {
        match self {
            Bytes::File(p) => p.display().to_string(),
            Bytes::Static(_) => format!("bundled {fallback}"),
        }
    }

    fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            Bytes::File(p) => std::fs::read(p)
                .map(Into::into)
                .map_err(|e| Error::io(p, e)),
            Bytes::Static(b) => Ok((*b).into()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum WeightFiles {
    /// One or more safetensors files (several when sharded).
    Safetensors(Vec<Bytes>),
    PytorchBin(PathBuf),
    /// A GGUF file, which holds the config and the tokenizer too.
    Gguf(PathBuf),
}

#[derive(Debug, Clone)]
pub enum TokenizerFiles {
    Json(Bytes),
    VocabMerges {
        vocab: PathBuf,
        merges: PathBuf,
    },
    /// The vocabulary stored in a GGUF file.
    Gguf(PathBuf),
}

/// The files that make up one checkpoint.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// A short name for display (folder or repository name).
    pub name: String,
    pub config: Bytes,
    pub weights: WeightFiles,
    pub tokenizer: TokenizerFiles,
}

impl ModelFiles {
    /// A GGUF file (config, tokenizer and weights in one), or a folder (see
    /// [`ModelFiles::from_folder`]).
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.is_file() {
            true => Self::from_gguf(path),
            false => Self::from_folder(path),
        }
    }

    /// One GGUF file; it is checked to start like one.
    pub fn from_gguf(path: &Path) -> Result<Self> {
        if !super::gguf::is_gguf(path) {
            return Err(Error::Weights {
                file: path.display().to_string(),
                message: "not a GGUF file (it does not start with the magic `GGUF`); --model takes a .gguf file or a model folder".into(),
            });
        }
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            name,
            config: Bytes::File(path.to_path_buf()),
            weights: WeightFiles::Gguf(path.to_path_buf()),
            tokenizer: TokenizerFiles::Gguf(path.to_path_buf()),
        })
    }

    /// Finds the checkpoint files in a folder in Hugging Face layout, or the GGUF file in a
    /// folder that has no `config.json`.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "model folder {} does not exist (or is not a folder)",
                dir.display()
            )));
        }
        let config = dir.join("config.json");
        if !config.is_file() {
            if let Some(gguf) = first_gguf(dir) {
                return Self::from_gguf(&gguf);
            }
            return Err(Error::Config {
                file: config.display().to_string(),
                message: "missing: a model folder needs config.json (or a .gguf file)".into(),
            });
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            config: Bytes::File(config),
            weights: find_weights(dir)?,
            tokenizer: find_tokenizer(dir)?,
        })
    }
}

/// The first `.gguf` file of a folder, by name.
pub(crate) fn first_gguf(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn find_weights(dir: &Path) -> Result<WeightFiles> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(WeightFiles::Safetensors(vec![Bytes::File(single)]));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(WeightFiles::Safetensors(
            shard_files(&index)?
                .into_iter()
                .map(|f| Bytes::File(dir.join(f)))
                .collect(),
        ));
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(WeightFiles::PytorchBin(bin));
    }
    Err(Error::Weights {
        file: dir.display().to_string(),
        message: "no weights: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin".into(),
    })
}

/// The distinct shard file names listed in a safetensors index, in first-seen order.
pub fn shard_files(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| Error::Weights {
        file: index.display().to_string(),
        message: format!("not a valid safetensors index: {e}"),
    })?;
    let mut files: Vec<String> = parsed.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    Ok(files)
}

fn find_tokenizer(dir: &Path) -> Result<TokenizerFiles> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Ok(TokenizerFiles::Json(Bytes::File(json)));
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if vocab.is_file() && merges.is_file() {
        return Ok(TokenizerFiles::VocabMerges { vocab, merges });
    }
    Err(Error::Tokenizer {
        file: dir.display().to_string(),
        message: "no tokenizer: expected tokenizer.json, or vocab.json and merges.txt".into(),
    })
}

/// Reads and checks the checkpoint's `config.json`.
pub fn read_config(files: &ModelFiles) -> Result<Gpt2Config> {
    if let WeightFiles::Gguf(path) = &files.weights {
        let file = super::gguf::GgufFile::open(path)?;
        return super::gguf::header::config(&file.content, &file.origin);
    }
    let config_text = files.config.read()?;
    let config_origin = files.config.origin("config.json");
    std::str::from_utf8(&config_text)
        .map_err(|_| Error::Config {
            file: config_origin.clone(),
            message: "not UTF-8 text".into(),
        })
        .and_then(Gpt2Config::from_json)
        .map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                file: config_origin.clone(),
                message,
            },
            other => other,
        })
}

/// Reads the checkpoint's tokenizer and checks that it fits the model's vocabulary.
pub fn read_tokenizer(files: &ModelFiles, config: &Gpt2Config) -> Result<Tokenizer> {
    let tokenizer = match &files.tokenizer {
        TokenizerFiles::Json(bytes) => {
            Tokenizer::from_json_bytes(&bytes.read()?, &bytes.origin("tokenizer.json"))?
        }
        TokenizerFiles::VocabMerges { vocab, merges } => {
            Tokenizer::from_vocab_merges(vocab, merges)?
        }
        TokenizerFiles::Gguf(path) => {
            let file = super::gguf::GgufFile::open(path)?;
            super::gguf::tokenizer::from_metadata(&file.content.metadata, &file.origin)?
        }
    };
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(Error::Tokenizer {
            file: files.config.origin("config.json"),
            message: format!(
                "the tokenizer has {} tokens but `vocab_size` is {}: tokenizer and model do not belong together",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        });
    }
    Ok(tokenizer)
}

pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<LoadedModel> {
    if let WeightFiles::Gguf(path) = &files.weights {
        return super::gguf::load(path, device, dtype);
    }
    load_as(files, device, dtype, None)
}

/// Loads with the projections and the output head in 8-bit blocks (q8_0); embeddings, biases
/// and layer norms stay f32. On the CPU each projection is quantized as soon as it is read, so
/// peak memory stays near the size of the quantized model rather than the f32 one. Returns the
/// model and how many matrices stayed f32 (q8_0 needs input widths that are multiples of 32).
pub fn load_q8_0(files: &ModelFiles, device: &Device) -> Result<(LoadedModel, usize)> {
    load_quantized(files, device, QuantType::Q8_0)
}

/// [`load_q8_0`] in any block format `--dtype` offers (matrices whose input width is not a
/// multiple of the type's block stay f32 and are counted).
pub fn load_quantized(
    files: &ModelFiles,
    device: &Device,
    kind: QuantType,
) -> Result<(LoadedModel, usize)> {
    let mut loaded = match &files.weights {
        // A GGUF file's quantized matrices stay in their type; dense ones are quantized below.
        WeightFiles::Gguf(path) => super::gguf::load(path, device, DType::F32)?,
        _ => load_as(files, device, DType::F32, device.is_cpu().then_some(kind))?,
    };
    let skipped = loaded.model.quantize(kind)?;
    Ok((loaded, skipped))
}

fn load_as(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
    quantize_while_reading: Option<QuantType>,
) -> Result<LoadedModel> {
    let config = read_config(files)?;
    let tokenizer = read_tokenizer(files, &config)?;
    let (tensors, quantized, parameter_count) = read_tensors(
        &files.weights,
        &config,
        device,
        dtype,
        quantize_while_reading,
    )?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let model = Gpt2::load_with_quantized(vb, &config, quantized)?;
    Ok(LoadedModel {
        name: files.name.clone(),
        model,
        tokenizer,
        parameter_count,
    })
}

/// The name a checkpoint key has in our layout, or `None` for buffers that are not weights.
fn normalise_name(name: &str) -> Option<&str> {
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    let is_buffer = name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
    (!is_buffer).then_some(name)
}

fn read_tensors(
    weights: &WeightFiles,
    config: &Gpt2Config,
    device: &Device,
    dtype: DType,
    quantize: Option<QuantType>,
) -> Result<(HashMap<String, Tensor>, QuantizedWeights, usize)> {
    let mut raw: HashMap<String, (Tensor, String)> = HashMap::new();
    let mut quantized = QuantizedWeights::new();
    let mut quantized_count = 0;
    let projection_shapes: HashMap<String, Vec<usize>> = expected_shapes(config, false)
        .into_iter()
        .filter(|(name, _)| is_projection(name))
        .collect();
    let mut keep = |name: &str, tensor: Tensor, origin: &str| -> Result<()> {
        let Some(name) = normalise_name(name) else {
            return Ok(());
        };
        let quantizable = |kind: QuantType| {
            projection_shapes.get(name).is_some_and(|shape| {
                tensor.dims() == shape.as_slice() && shape[0] % kind.block() == 0
            })
        };
        if let Some(kind) = quantize.filter(|&kind| quantizable(kind)) {
            let weight = quantize_weight(&tensor.to_dtype(DType::F32)?, kind)?;
            quantized_count += tensor.elem_count();
            quantized.insert(name.to_string(), weight);
            drop(tensor);
            crate::runtime::allocator::return_free_memory();
        } else {
            // Convert one tensor at a time so peak memory stays near one copy of the weights.
            let tensor = tensor.to_dtype(dtype)?.to_device(device)?;
            raw.insert(name.to_string(), (tensor, origin.to_string()));
        }
        Ok(())
    };
    match weights {
        WeightFiles::Safetensors(files) => {
            for file in files {
                let origin = file.origin("model.safetensors");
                let corrupt = |e: candle_core::Error| Error::Weights {
                    file: origin.clone(),
                    message: format!(
                        "cannot read safetensors (truncated or corrupt?): {}",
                        root_cause(&e)
                    ),
                };
                match file {
                    Bytes::File(path) => {
                        if !path.is_file() {
                            return Err(Error::Weights {
                                file: origin.clone(),
                                message: "missing shard named in the safetensors index".into(),
                            });
                        }
                        safetensors_file::for_each_tensor(
                            path,
                            |name| normalise_name(name).is_some(),
                            |name, tensor| keep(name, tensor, &origin),
                        )?;
                    }
                    Bytes::Static(bytes) => {
                        for (name, tensor) in
                            candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
                                .map_err(corrupt)?
                        {
                            keep(&name, tensor, &origin)?;
                        }
                    }
                }
            }
        }
        WeightFiles::Gguf(path) => {
            return Err(Error::Weights {
                file: path.display().to_string(),
                message: "a GGUF file is read by weights::gguf, not as a checkpoint".into(),
            })
        }
        WeightFiles::PytorchBin(path) => {
            let origin = path.display().to_string();
            let tensors = candle_core::pickle::read_all(path).map_err(|e| Error::Weights {
                file: origin.clone(),
                message: format!("cannot read PyTorch weights: {}", root_cause(&e)),
            })?;
            for (name, tensor) in tensors {
                keep(&name, tensor, &origin)?;
            }
        }
    }
    let mut tensors = HashMap::new();
    let mut count = 0;
    for (name, shape) in expected_shapes(config, raw.contains_key("lm_head.weight")) {
        if quantized.contains_key(&name) {
            continue;
        }
        let Some((tensor, origin)) = raw.remove(&name) else {
            return Err(Error::Weights {
                file: weights_origin(weights),
                message: format!(
                    "missing tensor `{name}` (config.json has n_layer {})",
                    config.n_layer
                ),
            });
        };
        if tensor.dims() != shape.as_slice() {
            return Err(Error::Weights {
                file: origin,
                message: format!(
                    "tensor `{name}` has shape {:?} but config.json (vocab_size {}, n_positions {}, n_embd {}, mlp width {}) needs {:?}",
                    tensor.dims(),
                    config.vocab_size,
                    config.n_positions,
                    config.n_embd,
                    config.mlp_width(),
                    shape
                ),
            });
        }
        count += tensor.elem_count();
        tensors.insert(name, tensor);
    }
    Ok((tensors, quantized, count + quantized_count))
}

fn weights_origin(weights: &WeightFiles) -> String {
    match weights {
        WeightFiles::Safetensors(files) => files
            .iter()
            .map(|f| f.origin("model.safetensors"))
            .collect::<Vec<_>>()
            .join(", "),
        WeightFiles::PytorchBin(path) | WeightFiles::Gguf(path) => path.display().to_string(),
    }
}

/// candle wraps errors in context layers; the innermost message is the useful one.
fn root_cause(e: &candle_core::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::{load, load_q8_0};
    use crate::weights::bundled;

    /// A checkpoint loaded on the CPU, in f32 or q8_0, is laid out for the CPU backend: its
    /// prompts and decode steps do not fall back to the tensor path.
    #[test]
    fn loaded_checkpoints_run_on_the_cpu_backend() {
        let files = bundled::files().unwrap();
        let dense = load(&files, &Device::Cpu, DType::F32).unwrap();
        assert!(dense.model.prefills_on_cpu());
        let (quantized, skipped) = load_q8_0(&files, &Device::Cpu).unwrap();
        assert_eq!(skipped, 0);
        assert!(quantized.model.is_quantized() && quantized.model.prefills_on_cpu());
        let half = load(&files, &Device::Cpu, DType::F16).unwrap();
        assert!(!half.model.prefills_on_cpu());
    }
}
