//! One row of a matrix stored in a GGML block format, turned back into f32: how token
//! embeddings are read from the blocks of a quantized tied head.

use std::borrow::Cow;

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, Result};

/// Writes row `row` of the matrix whose blocks are `blocks` (rows of `out.len()` values, each
/// a whole number of blocks of `dtype`) to `out`.
pub fn dequantize_row(dtype: GgmlDType, blocks: &[u8], row: usize, out: &mut [f32]) -> Result<()> {
    let k = out.len();
    if !k.is_multiple_of(dtype.block_size()) {
        candle_core::bail!("rows of {k} values are no whole {dtype:?} blocks");
    }
    let row_bytes = k / dtype.block_size() * dtype.type_size();
    let Some(bytes) = blocks.get(row * row_bytes..(row + 1) * row_bytes) else {
        candle_core::bail!(
            "row {row} is past the {} rows held",
            blocks.len() / row_bytes
        );
    };
    if dtype == GgmlDType::Q8_0 {
        // The common case, without the library's copy of the row.
        super::q8::dequantize(bytes, out);
        return Ok(());
    }
    match dtype.from_data(Cow::Borrowed(bytes)).dequantize(k)? {
        CpuStorage::F32(values) => out.copy_from_slice(&values),
        _ => candle_core::bail!("{dtype:?} blocks did not dequantize to f32"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    /// Every row of every format equals the library's dequantization of the whole matrix.
    #[test]
    fn rows_equal_the_whole_matrix_dequantized() {
        let (n, k) = (5, 512);
        let values: Vec<f32> = (0..n * k)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let w = Tensor::from_vec(values, (n, k), &Device::Cpu).unwrap();
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q5_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let dense = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let blocks = q.data().unwrap();
            for (r, want) in dense.iter().enumerate() {
                let mut got = vec![0f32; k];
                dequantize_row(dtype, &blocks, r, &mut got).unwrap();
                assert_eq!(&got, want, "{dtype:?} row {r}");
            }
            let mut past = vec![0f32; k];
            assert!(dequantize_row(dtype, &blocks, n, &mut past).is_err());
        }
    }
}
