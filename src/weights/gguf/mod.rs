//! GGUF files as llama.cpp writes GPT-2 (`convert_hf_to_gguf.py`, `llama-quantize`): the
//! header (`header.rs`: metadata keys to a [`Gpt2Config`]), the tokenizer stored in it
//! (`tokenizer.rs`), and the tensors, mapped to our names and layout here.
//!
//! llama.cpp stores every matrix (out, in), the transpose of Hugging Face's "Conv1D" (in, out).
//! Dense matrices (F32, F16, BF16) are transposed back at load, so they take the same CPU paths
//! as a safetensors checkpoint; quantized ones stay (out, in), which is how the quantized
//! kernels read them (q8_0 through `kernels::q8`, the other types through candle's).

pub mod header;
pub mod keys;
pub mod tokenizer;
pub mod write;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::k_quants::{
    BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8_0, GgmlType,
};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::layout::{expected_shapes, is_projection, LoadedModel};
use crate::error::{Error, Result};
use crate::model::q8::QuantizedWeights;
use crate::model::{Gpt2, Gpt2Config};

/// The first four bytes of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// Whether the file at `path` starts with the GGUF magic.
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == MAGIC)
}

/// An open GGUF file: its parsed header and a reader for the tensor data.
pub struct GgufFile {
    pub origin: String,
    pub content: Content,
    reader: BufReader<File>,
    /// The CRC-32 of the tensor bytes read so far, once [`GgufFile::start_checksum`] asked.
    checksum: Option<crc32fast::Hasher>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let mut reader = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
        let content = Content::read(&mut reader).map_err(|e| Error::Weights {
            file: origin.clone(),
            message: header::explain_read_error(path, &e),
        })?;
        Ok(Self {
            origin,
            content,
            reader,
            checksum: None,
        })
    }

    /// From now on, keep a CRC-32 of every tensor's bytes as they are read.
    pub fn start_checksum(&mut self) {
        self.checksum = Some(crc32fast::Hasher::new());
    }

    /// The CRC-32 of the tensor bytes read since [`GgufFile::start_checksum`].
    pub fn checksum(&self) -> Option<u32> {
        self.checksum.clone().map(crc32fast::Hasher::finalize)
    }

    fn error(&self, message: String) -> Error {
        Error::Weights {
            file: self.origin.clone(),
            message,
        }
    }

    /// The tensor called `name` as a dense tensor of `dtype` on `device` (quantized types are
    /// dequantized). f32 data on the CPU is read straight into the tensor's buffer.
    pub fn dense(&mut self, name: &str, device: &Device, dtype: DType) -> Result<Tensor> {
        let shape = self.info(name)?.shape.clone();
        match self.info(name)?.ggml_dtype {
            GgmlDType::F32 if device.is_cpu() => {
                let values = self.read_values::<f32>(name)?;
                Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
            }
            _ => Ok(self
                .quantized(name, device)?
                .dequantize(device)?
                .to_dtype(dtype)?),
        }
    }

    /// The tensor called `name` in its stored type, on `device`. The block types the CPU
    /// kernels read (q8_0, q4_0, q5_0, q4_k, q5_k, q6_k) are read straight into their blocks:
    /// no copy of the file's bytes in between, which for GPT-2 XL would be 1.6 GB.
    pub fn quantized(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.info(name)?;
        let (dtype, shape) = (info.ggml_dtype, info.shape.clone());
        let storage = match dtype {
            _ if !device.is_cpu() => None,
            GgmlDType::Q8_0 => Some(QStorage::Cpu(Box::new(
                self.read_values::<BlockQ8_0>(name)?,
            ))),
            GgmlDType::Q4_0 => Some(QStorage::Cpu(Box::new(
                self.read_values::<BlockQ4_0>(name)?,
            ))),
            GgmlDType::Q5_0 => Some(QStorage::Cpu(Box::new(
                self.read_values::<BlockQ5_0>(name)?,
            ))),
            GgmlDType::Q4K => Some(QStorage::Cpu(Box::new(self.read_values::<BlockQ4K>(name)?))),
            GgmlDType::Q5K => Some(QStorage::Cpu(Box::new(self.read_values::<BlockQ5K>(name)?))),
            GgmlDType::Q6K => Some(QStorage::Cpu(Box::new(self.read_values::<BlockQ6K>(name)?))),
            _ => None,
        };
        let tensor = match storage {
            Some(storage) => QTensor::new(storage, shape)?,
            None => self.read_by_candle(name, device)?,
        };
        Ok(tensor)
    }

    fn info(&self, name: &str) -> Result<&candle_core::quantized::gguf_file::TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.error(format!("missing tensor `{name}`")))
    }

    /// The data of `name`, a tensor of `T`s (f32 values or GGML blocks), read into a buffer of
    /// its own.
    fn read_values<T: GgmlType>(&mut self, name: &str) -> Result<Vec<T>> {
        let info = self.info(name)?;
        let elems = info.shape.elem_count();
        if info.ggml_dtype != T::DTYPE || elems % T::BLCK_SIZE != 0 {
            return Err(self.error(format!(
                "tensor `{name}`: {elems} values of {:?} do not fill whole blocks",
                info.ggml_dtype
            )));
        }
        let start = self.content.tensor_data_offset + info.offset;
        let mut values = zeroed::<T>(elems / T::BLCK_SIZE);
        // SAFETY: `T` is plain data (f32, or a GGML block of f16 and integers) whose every byte
        // pattern is a value; the slice covers exactly the vector's initialised elements.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                values.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(values.as_slice()),
            )
        };
        crate::runtime::huge_pages::advise(bytes);
        let read = self
            .reader
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.reader.read_exact(bytes));
        if let Err(e) = read {
            return Err(self.error(format!(
                "cannot read tensor `{name}` ({} bytes at offset {start}; truncated?): {e}",
                bytes.len()
            )));
        }
        if let Some(checksum) = &mut self.checksum {
            checksum.update(bytes);
        }
        Ok(values)
    }

    /// The tensor called `name` through candle's reader (any type, any device).
    fn read_by_candle(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        let tensor = self
            .content
            .tensor(&mut self.reader, name, device)
            .map_err(|e| Error::Weights {
                file: self.origin.clone(),
                message: format!(
                    "cannot read tensor `{name}` (truncated or corrupt?): {}",
                    first_line(&e)
                ),
            })?;
        if let Some(checksum) = &mut self.checksum {
            checksum.update(&tensor.data()?);
        }
        Ok(tensor)
    }
}

/// `n` values whose bytes are all zero, in fresh pages from the system: a buffer the file is
/// then read into, without writing it twice (cloning a zero block into each element would).
fn zeroed<T: GgmlType>(n: usize) -> Vec<T> {
    let layout = std::alloc::Layout::array::<T>(n).expect("a tensor that fits in memory");
    if layout.size() == 0 {
        return Vec::new();
    }
    // SAFETY: the buffer is allocated with `T`'s layout for `n` elements, as `Vec` requires,
    // and all-zero bytes are a valid `T` (candle's `GgmlType::zeros` relies on the same).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(ptr, n, n)
    }
}

/// The first line of a candle error (the rest is context or a backtrace).
fn first_line(e: &candle_core::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or(&text).to_string()
}

/// llama.cpp's name for one of our tensor names (`h.0.attn.c_attn.weight` ->
/// `blk.0.attn_qkv.weight`).
pub fn gguf_name(name: &str) -> String {
    let fixed = match name {
        "wte.weight" => Some("token_embd.weight"),
        "wpe.weight" => Some("position_embd.weight"),
        "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return fixed.to_string();
    }
    let Some((layer, rest)) = name
        .strip_prefix("h.")
        .and_then(|rest| rest.split_once('.'))
    else {
        return name.to_string();
    };
    let (part, kind) = rest.rsplit_once('.').unwrap_or((rest, ""));
    let part = match part {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        other => other,
    };
    format!("blk.{layer}.{part}.{kind}")
}

/// Whether candle can compute with tensors of this type (GGUF files name others too).
fn is_dense(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// Reads a GPT-2 GGUF file: config from its metadata, tokenizer from its vocabulary, and the
/// weights; quantized matrices stay in their type, everything else becomes `dtype`.
pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<LoadedModel> {
    let mut file = GgufFile::open(path)?;
    let config = header::config(&file.content, &file.origin)?;
    let tokenizer = tokenizer::from_metadata(&file.content.metadata, &file.origin)?;
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(file.error(format!(
            "the tokenizer has {} tokens but token_embd.weight has {} rows",
            tokenizer.vocab_size(),
            config.vocab_size
        )));
    }
    let (tensors, quantized, parameter_count) = read_tensors(&mut file, &config, device, dtype)?;
    let vb = VarBuilder::from_tensors(tensors, dtype, device);
    let model = Gpt2::load_with_quantized(vb, &config, quantized)
        .map_err(|e| file.error(first_line(&e)))?;
    let name = path
        .file_name()
        .map_or_else(|| file.origin.clone(), |n| n.to_string_lossy().into_owned());
    Ok(LoadedModel {
        name,
        model,
        tokenizer,
        parameter_count,
    })
}

/// Every tensor the model needs, dense by our name, quantized ones (out, in) apart; and the
/// number of parameters.
fn read_tensors(
    file: &mut GgufFile,
    config: &Gpt2Config,
    device: &Device,
    dtype: DType,
) -> Result<(HashMap<String, Tensor>, QuantizedWeights, usize)> {
    let untied = file.content.tensor_infos.contains_key("output.weight");
    let mut dense = HashMap::new();
    let mut quantized = QuantizedWeights::new();
    let mut count = 0;
    for (name, shape) in expected_shapes(config, untied) {
        let stored_name = gguf_name(&name);
        // Matrices are stored (out, in): the reverse of our (in, out).
        let stored_shape: Vec<usize> = match is_projection(&name) {
            true => shape.iter().rev().copied().collect(),
            false => shape.clone(),
        };
        let Some(info) = file.content.tensor_infos.get(&stored_name) else {
            return Err(file.error(format!(
                "missing tensor `{stored_name}` (block_count {}, output.weight {})",
                config.n_layer,
                if untied { "present" } else { "absent: tied" }
            )));
        };
        if info.shape.dims() != stored_shape.as_slice() {
            return Err(file.error(format!(
                "tensor `{stored_name}` has shape {:?} but the metadata (embedding_length {}, feed_forward_length {}, context_length {}) needs {:?}",
                info.shape.dims(),
                config.n_embd,
                config.mlp_width(),
                config.n_positions,
                stored_shape
            )));
        }
        let stored_dtype = info.ggml_dtype;
        count += shape.iter().product::<usize>();
        let quantized_head = !is_dense(stored_dtype)
            && (name == "lm_head.weight" || (name == "wte.weight" && !untied));
        if is_projection(&name) {
            if is_dense(stored_dtype) {
                let w = file.dense(&stored_name, device, dtype)?;
                dense.insert(name, w.t()?.contiguous()?);
            } else {
                quantized.insert(
                    name,
                    QMatMul::from_qtensor(file.quantized(&stored_name, device)?)?,
                );
            }
        } else if quantized_head {
            // The head's product reads the stored blocks. A tied head's blocks in host memory
            // serve the lookups too (model/head.rs); a head of its own keeps its dense rows.
            let q = file.quantized(&stored_name, device)?;
            if !(name == "wte.weight" && device.is_cpu()) {
                dense.insert(name.clone(), q.dequantize(device)?.to_dtype(dtype)?);
            }
            quantized.insert("lm_head.weight".into(), QMatMul::from_qtensor(q)?);
        } else {
            dense.insert(name, file.dense(&stored_name, device, dtype)?);
        }
    }
    Ok((dense, quantized, count))
}

#[cfg(test)]
mod tests {
    use super::gguf_name;

    #[test]
    fn names_follow_llama_cpp() {
        for (ours, theirs) in [
            ("wte.weight", "token_embd.weight"),
            ("wpe.weight", "position_embd.weight"),
            ("h.0.ln_1.weight", "blk.0.attn_norm.weight"),
            ("h.11.attn.c_attn.bias", "blk.11.attn_qkv.bias"),
            ("h.3.attn.c_proj.weight", "blk.3.attn_output.weight"),
            ("h.3.ln_2.bias", "blk.3.ffn_norm.bias"),
            ("h.3.mlp.c_fc.weight", "blk.3.ffn_up.weight"),
            ("h.3.mlp.c_proj.bias", "blk.3.ffn_down.bias"),
            ("ln_f.bias", "output_norm.bias"),
            ("lm_head.weight", "output.weight"),
        ] {
            assert_eq!(gguf_name(ours), theirs);
        }
    }
}
