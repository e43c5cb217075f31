//! Prompts with weights in GGML's q4_0 format, on the CPU.
//!
//! q4_0 keeps each run of 32 weights as one f16 scale and 32 four-bit values offset by 8, in
//! 16 bytes: byte j holds value j in its low half and value j + 16 in its high half. A value
//! of -8..7 times the block's scale is also a q8_0 block (the same scale, the value as a signed
//! byte), so a product over many input rows widens a slice of weight rows to q8_0, exactly,
//! and hands it to the 8-bit prompt kernel (`q8_prompt`). The library's own q4_0 product ran
//! a 512-token prompt of GPT-2 small at about 130 tokens/s on two cores here, against about
//! 950 for llama.cpp. The slices keep the widened copy small (1 MB), so the 4-bit model's
//! memory stays what its file holds. Few rows (decoding) stay with the library's product, which
//! reads the 4-bit blocks once.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result};
use rayon::prelude::*;

use super::q8::{add_rows_times, Q8Matrix};
use super::q8_format::{BLOCK, BLOCK_BYTES as Q8_BLOCK_BYTES};

/// Bytes per block: the f16 scale and 16 bytes of two values each.
const BLOCK_BYTES: usize = 18;

/// Input rows from which widening pays: as for q8_0's prompt kernel.
const PROMPT_FROM_ROWS: usize = 16;

/// Widened bytes per slice of weight rows.
const SLICE_BYTES: usize = 1 << 20;

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and a q4_0 matrix `w` (n, k) on the
/// CPU with at least [`PROMPT_FROM_ROWS`] input rows; `false` (untouched) otherwise, for
/// the library's product.
pub fn add_rows_times_t(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    let (n, k) = w.shape().dims2()?;
    if w.dtype() != GgmlDType::Q4_0
        || !matches!(w.device(), Device::Cpu)
        || k % BLOCK != 0
        || xs.len() % k != 0
        || xs.len() / k < PROMPT_FROM_ROWS
    {
        return Ok(false);
    }
    let m = xs.len() / k;
    if y.len() != m * n {
        candle_core::bail!("q4_0 product: {} outputs for ({m}, {n})", y.len());
    }
    let data = w.data()?;
    let blocks_per_row = k / BLOCK;
    let (q4_row, q8_row) = (
        blocks_per_row * BLOCK_BYTES,
        blocks_per_row * Q8_BLOCK_BYTES,
    );
    if data.len() != n * q4_row {
        return Ok(false);
    }
    // Whole panels of the prompt kernel (16 rows) per slice.
    let slice_rows = (SLICE_BYTES / q8_row / 16 * 16).max(16).min(n);
    let mut widened = vec![0u8; slice_rows * q8_row];
    let mut part = vec![0f32; m * slice_rows];
    for first in (0..n).step_by(slice_rows) {
        let rows = slice_rows.min(n - first);
        let widened = &mut widened[..rows * q8_row];
        widened
            .par_chunks_mut(16 * q8_row)
            .zip(data[first * q4_row..(first + rows) * q4_row].par_chunks(16 * q4_row))
            .for_each(|(out, blocks)| widen(blocks, out));
        let part = &mut part[..m * rows];
        part.fill(0.0);
        let slice = Q8Matrix {
            blocks: widened,
            n: rows,
            k,
        };
        add_rows_times(xs, slice, part)?;
        for (y, part) in y.chunks_exact_mut(n).zip(part.chunks_exact(rows)) {
            y[first..first + rows]
                .iter_mut()
                .zip(part)
                .for_each(|(y, p)| *y += p);
        }
    }
    Ok(true)
}

/// q4_0 blocks to the q8_0 blocks of the same values.
fn widen(q4: &[u8], q8: &mut [u8]) {
    for (from, to) in q4
        .chunks_exact(BLOCK_BYTES)
        .zip(q8.chunks_exact_mut(Q8_BLOCK_BYTES))
    {
        to[..2].copy_from_slice(&from[..2]);
        let (low, high) = to[2..].split_at_mut(16);
        for ((&byte, low), high) in from[2..].iter().zip(low).zip(high) {
            *low = ((byte & 0x0f) as i8 - 8) as u8;
            *high = ((byte >> 4) as i8 - 8) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::max_abs_diff;
    use candle_core::Tensor;

    fn matrix(n: usize, k: usize, seed: usize) -> Tensor {
        let values: Vec<f32> = (0..n * k)
            .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(values, (n, k), &Device::Cpu).unwrap()
    }

    /// Widening keeps every value: the q8_0 blocks dequantize to the q4_0 ones.
    #[test]
    fn widened_blocks_hold_the_same_values() {
        let (n, k) = (3, 96);
        let q4 = QTensor::quantize(&matrix(n, k, 1), GgmlDType::Q4_0).unwrap();
        let data = q4.data().unwrap();
        let mut q8 = vec![0u8; n * k / BLOCK * Q8_BLOCK_BYTES];
        widen(&data, &mut q8);
        let q8 = QTensor::new(
            candle_core::quantized::QStorage::from_data(
                std::borrow::Cow::Owned(q8),
                &Device::Cpu,
                GgmlDType::Q8_0,
            )
            .unwrap(),
            (n, k),
        )
        .unwrap();
        let a = q4.dequantize(&Device::Cpu).unwrap();
        let b = q8.dequantize(&Device::Cpu).unwrap();
        assert_eq!(max_abs_diff(&a, &b), 0.0);
    }

    /// Many rows against the dequantized weights, over several slices (the last partial), added
    /// to what `y` holds; few rows are left to the library.
    #[test]
    fn products_match_the_dequantized_weights() {
        let (m, k) = (PROMPT_FROM_ROWS + 3, 256);
        let n = 2 * SLICE_BYTES / (k / BLOCK * Q8_BLOCK_BYTES) + 40;
        let w = QTensor::quantize(&matrix(n, k, 2), GgmlDType::Q4_0).unwrap();
        let dense = w.dequantize(&Device::Cpu).unwrap();
        let x = (matrix(m, k, 3) * 0.5).unwrap();
        let want = (x.matmul(&dense.t().unwrap()).unwrap() + 1.0).unwrap();
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut y = vec![1f32; m * n];
        assert!(add_rows_times_t(&xs, &w, &mut y).unwrap());
        let got = Tensor::from_vec(y, (m, n), &Device::Cpu).unwrap();
        // The inputs are rounded to 8 bits per block, as in the q8_0 products.
        let tolerance = k as f32 * 0.5 / 127.0 / 2.0;
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= tolerance, "{diff} > {tolerance}");
        let mut few = vec![0f32; 2 * n];
        assert!(!add_rows_times_t(&xs[..2 * k], &w, &mut few).unwrap());
    }
}
