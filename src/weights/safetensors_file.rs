//! Reading a safetensors file one tensor at a time.
//!
//! A memory map would keep the whole file resident while the tensors are converted, doubling
//! peak memory at load; plain reads of one tensor at a time keep it near one copy of the weights.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::runtime::huge_pages;

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "U8" => DType::U8,
        "U32" => DType::U32,
        "I64" => DType::I64,
        _ => return None,
    })
}

/// Calls `f` with every tensor of the file, in file order, on the CPU. `wanted` decides by name
/// whether a tensor is read at all.
pub fn for_each_tensor(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
    mut f: impl FnMut(&str, Tensor) -> Result<()>,
) -> Result<()> {
    let corrupt = |message: String| Error::Weights {
        file: path.display().to_string(),
        message,
    };
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes).map_err(|_| {
        corrupt("not a safetensors file (shorter than its 8-byte header length)".into())
    })?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > file_len.saturating_sub(8) || header_len > 100 << 20 {
        return Err(corrupt(format!(
            "not a safetensors file (header length {header_len} does not fit in {file_len} bytes)"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let mut entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| corrupt(format!("corrupt safetensors header: {e}")))?;
    entries.remove("__metadata__");
    let data_start = 8 + header_len;
    let mut entries: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|(name, value)| {
            serde_json::from_value(value)
                .map(|entry| (name.clone(), entry))
                .map_err(|e| corrupt(format!("corrupt safetensors header entry `{name}`: {e}")))
        })
        .collect::<Result<_>>()?;
    entries.sort_by_key(|(_, e)| e.data_offsets.0);
    for (name, entry) in entries {
        if !wanted(&name) {
            continue;
        }
        let dtype = dtype_of(&entry.dtype).ok_or_else(|| {
            corrupt(format!(
                "tensor `{name}` has unsupported dtype {}",
                entry.dtype
            ))
        })?;
        let (begin, end) = entry.data_offsets;
        let expected = entry.shape.iter().product::<usize>() * dtype.size_in_bytes();
        if end < begin || (end - begin) as usize != expected {
            return Err(corrupt(format!(
                "tensor `{name}`: {} bytes stored for shape {:?} of {}",
                end.saturating_sub(begin),
                entry.shape,
                entry.dtype
            )));
        }
        if data_start + end > file_len {
            return Err(corrupt(format!(
                "truncated: tensor `{name}` ends at byte {} but the file has {file_len}",
                data_start + end
            )));
        }
        file.seek(SeekFrom::Start(data_start + begin))
            .map_err(|e| Error::io(path, e))?;
        let tensor = read_tensor(&mut file, path, dtype, &entry.shape)?;
        f(&name, tensor)?;
    }
    Ok(())
}

/// Reads one tensor's bytes from the current position. Floating-point tensors are read straight
/// into the vector the tensor will own: a staging buffer would add the size of the largest
/// tensor (the embeddings: a third of GPT-2 small) to the peak memory of loading.
fn read_tensor(file: &mut File, path: &Path, dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let read =
        |file: &mut File, bytes: &mut [u8]| file.read_exact(bytes).map_err(|e| Error::io(path, e));
    if cfg!(target_endian = "little") {
        match dtype {
            DType::F32 => return read_values(file, shape, 0f32, read),
            DType::F16 => return read_values(file, shape, half::f16::ZERO, read),
            DType::BF16 => return read_values(file, shape, half::bf16::ZERO, read),
            _ => {}
        }
    }
    let mut buffer = vec![0u8; shape.iter().product::<usize>() * dtype.size_in_bytes()];
    read(file, &mut buffer)?;
    Ok(Tensor::from_raw_buffer(
        &buffer,
        dtype,
        shape,
        &Device::Cpu,
    )?)
}

/// Reads little-endian values of a float type straight into the tensor's own vector, asking
/// for huge pages before the first byte lands.
fn read_values<T: candle_core::WithDType>(
    file: &mut File,
    shape: &[usize],
    zero: T,
    read: impl Fn(&mut File, &mut [u8]) -> Result<()>,
) -> Result<Tensor> {
    let mut values = vec![zero; shape.iter().product()];
    // SAFETY: candle's element types are plain numbers, valid for every bit pattern; the byte
    // slice covers exactly the memory of `values` and borrows it mutably.
    let bytes = unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values.as_slice()),
        )
    };
    huge_pages::advise(bytes);
    read(file, bytes)?;
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}
