//! Writes a GGUF file as llama.cpp does (version 3, little-endian, tensor data aligned to 32):
//! the metadata, the tensor table, then each tensor's bytes straight from memory. candle has a
//! writer too, but it takes every tensor as a `QTensor` (an extra copy of the f32 embeddings,
//! a fifth of an 8-bit GPT-2) and writes version 2.

use std::io::{self, Write};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use crate::kernels::with_slice;

/// GGUF's default alignment, which llama.cpp and candle assume when the file names none.
pub const ALIGNMENT: u64 = 32;

/// One tensor's data as it sits in memory.
#[derive(Clone, Copy)]
pub enum TensorData<'a> {
    /// A contiguous f32 or f16 tensor in host memory.
    Dense(&'a Tensor),
    Quantized(&'a QTensor),
}

impl TensorData<'_> {
    pub fn ggml_dtype(&self) -> io::Result<GgmlDType> {
        match self {
            TensorData::Quantized(q) => Ok(q.dtype()),
            TensorData::Dense(t) => match t.dtype() {
                DType::F32 => Ok(GgmlDType::F32),
                DType::F16 => Ok(GgmlDType::F16),
                other => Err(invalid(format!("cannot write a {other:?} tensor to GGUF"))),
            },
        }
    }

    /// The shape, outermost dimension first (candle's order; GGUF stores it reversed).
    pub fn dims(&self) -> &[usize] {
        match self {
            TensorData::Dense(t) => t.dims(),
            TensorData::Quantized(q) => q.shape().dims(),
        }
    }

    /// Calls `f` with the tensor's bytes, as GGUF stores them (the host is little-endian).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        match self {
            TensorData::Quantized(q) => {
                let data = q.data().map_err(|e| invalid(e.to_string()))?;
                Ok(f(&data))
            }
            TensorData::Dense(t) => {
                let as_bytes = |data: &[u8]| f(data);
                let found = match t.dtype() {
                    DType::F32 => with_slice::<f32, _>(t, |s| as_bytes(bytes_of(s))),
                    DType::F16 => with_slice::<half::f16, _>(t, |s| as_bytes(bytes_of(s))),
                    _ => None,
                };
                found.ok_or_else(|| {
                    invalid(
                        "a dense tensor to write must be contiguous f32 or f16 on the CPU".into(),
                    )
                })
            }
        }
    }

    /// Bytes the tensor takes in the file (before padding).
    pub fn byte_len(&self) -> io::Result<u64> {
        let dtype = self.ggml_dtype()?;
        let elems: usize = self.dims().iter().product();
        Ok((elems / dtype.block_size() * dtype.type_size()) as u64)
    }
}

/// The bytes of a slice of plain numbers.
fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: f32 and f16 have no padding and every byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// GGML's number for a tensor type.
pub fn type_code(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

fn align(offset: u64) -> u64 {
    offset.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Writes the whole file: `metadata` in order, then `tensors` in order.
pub fn write(
    w: &mut impl Write,
    metadata: &[(&str, Value)],
    tensors: &[(String, TensorData)],
) -> io::Result<()> {
    let mut out = Counting {
        inner: w,
        written: 0,
    };
    out.write_all(super::MAGIC)?;
    out.write_all(&3u32.to_le_bytes())?;
    out.write_all(&(tensors.len() as u64).to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (key, value) in metadata {
        write_string(&mut out, key)?;
        out.write_all(&value_type(value).to_le_bytes())?;
        write_value(&mut out, value)?;
    }
    let mut offset = 0u64;
    for (name, data) in tensors {
        write_string(&mut out, name)?;
        let dims = data.dims();
        out.write_all(&(dims.len() as u32).to_le_bytes())?;
        for &dim in dims.iter().rev() {
            out.write_all(&(dim as u64).to_le_bytes())?;
        }
        out.write_all(&type_code(data.ggml_dtype()?).to_le_bytes())?;
        out.write_all(&offset.to_le_bytes())?;
        offset = align(offset + data.byte_len()?);
    }
    pad(&mut out)?;
    for (_, data) in tensors {
        data.with_bytes(|bytes| out.write_all(bytes))??;
        pad(&mut out)?;
    }
    out.flush()
}

/// Zeros up to the next multiple of [`ALIGNMENT`].
fn pad(out: &mut Counting<impl Write>) -> io::Result<()> {
    let padding = align(out.written) - out.written;
    out.write_all(&[0u8; ALIGNMENT as usize][..padding as usize])
}

/// A writer that knows how many bytes went through it (the data must start aligned).
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())
}

/// GGUF's number for a metadata value's type.
fn value_type(value: &Value) -> u32 {
    match value {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn write_value(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => out.write_all(&v.to_le_bytes()),
        Value::I8(v) => out.write_all(&v.to_le_bytes()),
        Value::U16(v) => out.write_all(&v.to_le_bytes()),
        Value::I16(v) => out.write_all(&v.to_le_bytes()),
        Value::U32(v) => out.write_all(&v.to_le_bytes()),
        Value::I32(v) => out.write_all(&v.to_le_bytes()),
        Value::F32(v) => out.write_all(&v.to_le_bytes()),
        Value::Bool(v) => out.write_all(&[u8::from(*v)]),
        Value::String(v) => write_string(out, v),
        Value::U64(v) => out.write_all(&v.to_le_bytes()),
        Value::I64(v) => out.write_all(&v.to_le_bytes()),
        Value::F64(v) => out.write_all(&v.to_le_bytes()),
        Value::Array(items) => {
            let kind = items.first().map_or(4, value_type);
            if items.iter().any(|item| value_type(item) != kind) {
                return Err(invalid("a GGUF array holds values of one type".into()));
            }
            out.write_all(&kind.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|item| write_value(out, item))
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::gguf_file::{Content, Value};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::{write, TensorData};

    /// What is written reads back through candle's reader: metadata of every kind, tensor
    /// shapes, types and bytes.
    #[test]
    fn candle_reads_back_what_is_written() {
        let dense = Tensor::arange(0f32, 96., &Device::Cpu)
            .unwrap()
            .reshape((3, 32))
            .unwrap();
        let q = QTensor::quantize(&dense, GgmlDType::Q8_0).unwrap();
        let metadata = [
            ("a.count", Value::U32(7)),
            ("a.big", Value::U64(1 << 40)),
            ("a.eps", Value::F32(1e-5)),
            ("a.flag", Value::Bool(true)),
            ("a.name", Value::String("gpt2".into())),
            (
                "a.list",
                Value::Array(vec![Value::String("x".into()), Value::String("y z".into())]),
            ),
            ("a.ints", Value::Array(vec![Value::I32(1), Value::I32(3)])),
        ];
        let tensors = vec![
            ("dense".to_string(), TensorData::Dense(&dense)),
            ("blocks".to_string(), TensorData::Quantized(&q)),
        ];
        let mut bytes = Vec::new();
        write(&mut bytes, &metadata, &tensors).unwrap();
        let mut reader = std::io::Cursor::new(bytes);
        let content = Content::read(&mut reader).unwrap();
        assert_eq!(content.metadata["a.count"].to_u32().unwrap(), 7);
        assert_eq!(content.metadata["a.big"].to_u64().unwrap(), 1 << 40);
        assert_eq!(content.metadata["a.name"].to_string().unwrap(), "gpt2");
        assert!(content.metadata["a.flag"].to_bool().unwrap());
        assert_eq!(content.metadata["a.list"].to_vec().unwrap().len(), 2);
        let back = content.tensor(&mut reader, "dense", &Device::Cpu).unwrap();
        assert_eq!(back.shape().dims(), &[3, 32]);
        let back = back.dequantize(&Device::Cpu).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            dense.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let blocks = content.tensor(&mut reader, "blocks", &Device::Cpu).unwrap();
        assert_eq!(blocks.dtype(), GgmlDType::Q8_0);
        assert_eq!(blocks.data().unwrap(), q.data().unwrap());
    }
}
