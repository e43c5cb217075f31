//! CPU kernels below the model: matrix-vector products, products with q8_0, 4- and 5-bit and
//! K-format blocks, rows of block formats, element-wise functions
//! (exp, GELU, softmax), reads of f16 cached values and SIMD detection. They work on slices
//! and tensors and know nothing about GPT-2.

pub mod activations;
pub mod block_rows;
pub mod cached_values;
pub(crate) mod k_formats;
pub mod k_quants;
pub mod matvec;
mod prompt_panel;
pub mod q4_q5;
pub mod q8;
pub mod q8_format;
pub(crate) mod q8_inputs;
pub mod q8_prompt;
pub mod simd;
pub mod slices;

pub use matvec::{add_matmul, matvec_in_out, matvec_rows, single_row_matmul, single_row_matmul_t};
pub use simd::{axpy, dot, has_avx2_fma, has_avx512_vnni, level, Level, SyncPtr};
pub use slices::{with_f32_slice, with_slice, with_slice_mut};

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::Tensor;

    /// `len` values in [-1, 1) that look random and repeat from one run to the next.
    pub(crate) fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The largest difference between two tensors of the same shape.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .expect("tensors of one shape")
    }
}
