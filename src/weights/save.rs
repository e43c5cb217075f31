//! Writes a model folder in Hugging Face layout: `config.json`, `model.safetensors` (GPT-2 tensor
//! names, Conv1D orientation, tied head not stored) and `tokenizer.json`, so the folder loads
//! back through [`super::loader`] and with `transformers`' `GPT2LMHeadModel.from_pretrained`.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::loader::expected_shapes;
use crate::error::{Error, Result};
use crate::model::Gpt2Config;

/// How the weights are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    F32,
    F16,
}

impl StorageDtype {
    fn safetensors_name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "F32",
            StorageDtype::F16 => "F16",
        }
    }

    fn torch_name(self) -> &'static str {
        match self {
            StorageDtype::F32 => "float32",
            StorageDtype::F16 => "float16",
        }
    }
}

/// Writes `config.json`, `model.safetensors` and `tokenizer.json` into `dir` (created if needed).
///
/// `tensors` maps our names (`wte.weight`, `h.0.attn.c_attn.weight`, ...) to the weights; every
/// tensor [`expected_shapes`] lists for `config` must be there with its shape. An
/// `lm_head.weight` is written only if present (an untied head); other names are an error, so
/// a typo cannot silently produce a folder that fails to load.
pub fn save_folder(
    dir: &Path,
    config: &Gpt2Config,
    tensors: &BTreeMap<String, Tensor>,
    tokenizer: &tokenizers::Tokenizer,
    storage: StorageDtype,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tied = !tensors.contains_key("lm_head.weight");
    write_config(&dir.join("config.json"), config, storage, tied)?;
    write_safetensors(&dir.join("model.safetensors"), config, tensors, storage)?;
    let tokenizer_path = dir.join("tokenizer.json");
    let json = tokenizer.to_string(false).map_err(|e| Error::Tokenizer {
        file: tokenizer_path.display().to_string(),
        message: format!("cannot serialise the tokenizer: {e}"),
    })?;
    write(&tokenizer_path, json.as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// `config.json`: our config plus the keys transformers expects of a GPT-2 checkpoint;
/// `tie_word_embeddings` says whether the head is the token embeddings (no `lm_head.weight`).
fn write_config(path: &Path, config: &Gpt2Config, storage: StorageDtype, tied: bool) -> Result<()> {
    let mut value = serde_json::to_value(config).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("n_ctx".into(), config.n_positions.into());
        map.insert("torch_dtype".into(), storage.torch_name().into());
        map.insert("tie_word_embeddings".into(), tied.into());
        map.insert("resid_pdrop".into(), 0.0.into());
        map.insert("embd_pdrop".into(), 0.0.into());
        map.insert("attn_pdrop".into(), 0.0.into());
    }
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::Other(e.to_string()))?;
    text.push('\n');
    write(path, text.as_bytes())
}

/// The safetensors format by hand (an 8-byte little-endian header length, a JSON header, the
/// raw little-endian data), with the `{"format": "pt"}` metadata transformers checks for.
/// Tensors are written in name order, so the same weights always give the same bytes.
fn write_safetensors(
    path: &Path,
    config: &Gpt2Config,
    tensors: &BTreeMap<String, Tensor>,
    storage: StorageDtype,
) -> Result<()> {
    let bad = |message: String| Error::Weights {
        file: path.display().to_string(),
        message,
    };
    let expected: BTreeMap<String, Vec<usize>> =
        expected_shapes(config, tensors.contains_key("lm_head.weight"))
            .into_iter()
            .collect();
    for name in tensors.keys() {
        if !expected.contains_key(name) {
            return Err(bad(format!("unexpected tensor `{name}` for a GPT-2")));
        }
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut data: Vec<u8> = Vec::new();
    for (name, shape) in &expected {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| bad(format!("missing tensor `{name}`")))?;
        if tensor.dims() != shape.as_slice() {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, the config needs {shape:?}",
                tensor.dims()
            )));
        }
        let start = data.len();
        let flat = tensor.flatten_all()?;
        match storage {
            StorageDtype::F32 => {
                for x in flat.to_dtype(DType::F32)?.to_vec1::<f32>()? {
                    data.extend_from_slice(&x.to_le_bytes());
                }
            }
            StorageDtype::F16 => {
                for x in flat.to_dtype(DType::F16)?.to_vec1::<half::f16>()? {
                    data.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": storage.safetensors_name(),
                "shape": shape,
                "data_offsets": [start, data.len()],
            }),
        );
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::Other(e.to_string()))?;
    // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&data);
    write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarBuilder;

    use crate::model::{Gpt2, Mode};
    use crate::weights::loader::{self, ModelFiles};

    /// Every tensor `expected_shapes` lists, with distinct values.
    fn tensors(config: &Gpt2Config, untied: bool) -> BTreeMap<String, Tensor> {
        expected_shapes(config, untied)
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n)
                    .map(|j| ((i * 7 + j * 3) % 64) as f32 * 0.01 - 0.3)
                    .collect();
                (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
            })
            .collect()
    }

    /// A model with a head of its own is saved as untied (`tie_word_embeddings: false`) and
    /// loads back with that head; a tied one says `true`.
    #[test]
    fn an_untied_head_is_saved_as_untied_and_loads_back_as_its_own() {
        let tokenizer =
            tokenizers::Tokenizer::from_bytes(include_bytes!("../../assets/model/tokenizer.json"))
                .unwrap();
        let config = Gpt2Config {
            vocab_size: tokenizer.get_vocab_size(true),
            n_positions: 4,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            ..Gpt2Config::gpt2_small()
        };
        let dir = std::env::temp_dir().join(format!("gpt2-save-untied-{}", std::process::id()));
        for untied in [true, false] {
            let tensors = tensors(&config, untied);
            save_folder(&dir, &config, &tensors, &tokenizer, StorageDtype::F32).unwrap();
            let written: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                    .unwrap();
            assert_eq!(written["tie_word_embeddings"], serde_json::json!(!untied));
            let loaded = loader::load(
                &ModelFiles::from_folder(&dir).unwrap(),
                &Device::Cpu,
                DType::F32,
            )
            .unwrap();
            assert_eq!(loaded.model.has_tied_head(), !untied);
            let vb =
                VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &Device::Cpu);
            let original = Gpt2::load(vb, &config).unwrap();
            let ids = Tensor::new(&[[1u32, 5, 2]], &Device::Cpu).unwrap();
            let (want, got) = (
                original.forward_all(&ids, Mode::Inference).unwrap(),
                loaded.model.forward_all(&ids, Mode::Inference).unwrap(),
            );
            let diff = (want - got)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0, "untied {untied}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn safetensors_round_trip_through_candle() {
        let config = Gpt2Config {
            vocab_size: 5,
            n_positions: 4,
            n_embd: 4,
            n_layer: 1,
            n_head: 2,
            ..Gpt2Config::gpt2_small()
        };
        let tensors: BTreeMap<String, Tensor> = expected_shapes(&config, false)
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n)
                    .map(|j| ((i * 7 + j) % 64) as f32 * 0.25 - 8.0)
                    .collect();
                (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("gpt2-save-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        for storage in [StorageDtype::F32, StorageDtype::F16] {
            write_safetensors(&path, &config, &tensors, storage).unwrap();
            let loaded = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
            assert_eq!(loaded.len(), tensors.len());
            for (name, tensor) in &tensors {
                let back = loaded[name].to_dtype(DType::F32).unwrap();
                let diff = (back - tensor)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert_eq!(diff, 0.0, "{name} ({storage:?})");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
