//! The q8_0 format as the kernels read it: blocks of 32 values, each an f16 scale and 32
//! signed bytes, and a matrix of them in host memory.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result};

/// Values per block, and bytes per block: an f16 scale and 32 signed bytes.
pub(crate) const BLOCK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 34;

/// A q8_0 matrix (n, k) as its raw blocks in host memory, row after row; `k` is a multiple
/// of the 32-value block.
#[derive(Debug, Clone, Copy)]
pub struct Q8Matrix<'a> {
    pub blocks: &'a [u8],
    pub n: usize,
    pub k: usize,
}

impl<'a> Q8Matrix<'a> {
    /// The blocks of `w` when it is a q8_0 matrix on the CPU whose rows hold whole blocks.
    pub fn of(w: &'a QTensor) -> Result<Option<Self>> {
        let (n, k) = w.shape().dims2()?;
        if w.dtype() != GgmlDType::Q8_0 || !matches!(w.device(), Device::Cpu) || k % BLOCK != 0 {
            return Ok(None);
        }
        match w.data()? {
            std::borrow::Cow::Borrowed(blocks) if blocks.len() == n * (k / BLOCK) * BLOCK_BYTES => {
                Ok(Some(Self { blocks, n, k }))
            }
            _ => Ok(None),
        }
    }
}
