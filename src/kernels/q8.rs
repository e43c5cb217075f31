//! Products with weights stored in GGML's q8_0 format, on the CPU.
//!
//! q8_0 keeps each run of 32 weights as one f16 scale and 32 signed bytes (34 bytes for 128
//! of f32). The library's own kernels keep a second, re-tiled copy of every matrix on
//! AVX-512 machines, which doubles the memory of the 8-bit model; these work on the one
//! compact copy. A few input rows (decoding, short prompts) are quantized to 8 bits per
//! 32-value block and multiplied with integer dot products, as llama.cpp does; many rows (long
//! prompts) go to the tiled 8-bit kernel of `q8_prompt`, or, on CPUs without AVX2, multiply
//! the weights turned back into f32 a small slice at a time.

use candle_core::quantized::QTensor;
use candle_core::{Result, Tensor};

use rayon::prelude::*;

pub use super::q8_format::Q8Matrix;
use super::q8_format::{BLOCK, BLOCK_BYTES};
#[cfg(target_arch = "x86_64")]
use super::q8_inputs::block_pair_inputs;
use super::q8_inputs::{add_odd_last_block, InputRow, QuantizedRows};
use super::simd::each_row;
#[cfg(target_arch = "x86_64")]
use super::simd::{block_pair_scales, f16_at, lane_sums};
use super::{add_matmul, SyncPtr};

/// `x @ w^T` for `x` (m, k) in f32 and `w` (n, k) in q8_0, both on the CPU; `None` when the
/// weights are of another format or elsewhere, so the caller can use the library's product.
pub fn matmul_t(x: &Tensor, w: &QTensor) -> Result<Option<Tensor>> {
    let (m, _) = x.dims2()?;
    let n = w.shape().dims2()?.0;
    let Some(y) = rows_times_t(&x.flatten_all()?.to_vec1::<f32>()?, w)? else {
        return Ok(None);
    };
    Tensor::from_vec(y, (m, n), x.device()).map(Some)
}

/// [`matmul_t`] on the rows of `xs` (m x k values, row after row), giving m x n values.
pub fn rows_times_t(xs: &[f32], w: &QTensor) -> Result<Option<Vec<f32>>> {
    let (n, k) = w.shape().dims2()?;
    let mut y = vec![0f32; xs.len() / k * n];
    Ok(add_rows_times_t(xs, w, &mut y)?.then_some(y))
}

/// `y += xs @ w^T` for q8_0 weights on the CPU, as [`rows_times_t`]; `false` (untouched) when
/// the weights are of another format or elsewhere.
pub fn add_rows_times_t(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    let Some(w) = Q8Matrix::of(w)? else {
        return Ok(false);
    };
    add_rows_times(xs, w, y)?;
    Ok(true)
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and the q8_0 matrix `w` (n, k).
pub fn add_rows_times(xs: &[f32], w: Q8Matrix, y: &mut [f32]) -> Result<()> {
    let Q8Matrix { blocks, n, k } = w;
    if !xs.len().is_multiple_of(k) || y.len() != xs.len() / k * n {
        candle_core::bail!(
            "q8_0 product: {} input and {} output values for weights ({n}, {k})",
            xs.len(),
            y.len()
        );
    }
    if xs.len() / k >= PROMPT_FROM_ROWS {
        match super::q8_prompt::available() {
            true => super::q8_prompt::add_rows_times(xs, w, y),
            false => add_dequantized_product(xs, blocks, n, k, y),
        }
        return Ok(());
    }
    let m = xs.len() / k;
    let blocks_per_row = k / BLOCK;
    matmul_rows(
        &QuantizedRows::new(xs, k, m),
        blocks,
        (n, blocks_per_row * BLOCK_BYTES),
        |x, w, sums| dot_rows(x, w, blocks_per_row, sums),
        y,
    );
    Ok(())
}

/// [`add_rows_times`] into fresh outputs: `xs @ w^T`, m x n values.
pub fn rows_times(xs: &[f32], w: Q8Matrix) -> Result<Vec<f32>> {
    let mut y = vec![0f32; xs.len() / w.k * w.n];
    add_rows_times(xs, w, &mut y)?;
    Ok(y)
}

/// Input rows from which a product takes the prompt kernel (`q8_prompt`: tiles of 4 input
/// rows against panels of 16 weight rows), or without AVX2 turns the weights back into f32 a slice
/// at a time for the f32 matmul. Fewer rows (decoding) take the dot products below, which
/// read each weight row once for all of them. At 16 rows the prompt kernel did about twice
/// their multiply-adds per second on two cores (20 against 7 to 12 billion), at 8 half.
const PROMPT_FROM_ROWS: usize = 16;

/// f32 weights per dequantized slice: small next to the 8-bit weights, large enough for the
/// matmul to run at full speed.
const DEQUANTIZED_SLICE_VALUES: usize = 1 << 18;

/// `y += xs @ w^T` with the (n, k) q8_0 weights `w` dequantized a slice of rows at a time.
fn add_dequantized_product(xs: &[f32], w: &[u8], n: usize, k: usize, y: &mut [f32]) {
    const ROWS_PER_TASK: usize = 16;
    let m = xs.len() / k;
    let row_bytes = k / BLOCK * BLOCK_BYTES;
    let slice_rows = (DEQUANTIZED_SLICE_VALUES / k / ROWS_PER_TASK * ROWS_PER_TASK)
        .max(ROWS_PER_TASK)
        .min(n);
    let mut panel = vec![0f32; slice_rows * k];
    for first in (0..n).step_by(slice_rows) {
        let rows = slice_rows.min(n - first);
        let panel = &mut panel[..rows * k];
        let slice = &w[first * row_bytes..(first + rows) * row_bytes];
        panel
            .par_chunks_mut(ROWS_PER_TASK * k)
            .zip(slice.par_chunks(ROWS_PER_TASK * row_bytes))
            .for_each(|(out, blocks)| dequantize(blocks, out));
        // SAFETY: `y` is (m, n) row-major and borrowed mutably; the panel holds `rows`
        // weight rows of k values, read as the (k, rows) right-hand side, and y's columns
        // `first..first + rows` of every row lie inside it.
        unsafe {
            add_matmul(
                (m, rows, k),
                y.as_mut_ptr().add(first),
                n,
                xs,
                panel.as_ptr(),
                (1, k),
            );
        }
    }
}

/// The f32 values of consecutive q8_0 blocks.
pub(crate) fn dequantize(blocks: &[u8], out: &mut [f32]) {
    for (block, out) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let d = scale(block);
        for (o, &q) in out.iter_mut().zip(&block[2..]) {
            *o = d * f32::from(q as i8);
        }
    }
}

fn scale(block: &[u8]) -> f32 {
    half::f16::from_le_bytes([block[0], block[1]]).to_f32()
}

/// Input rows handled per pass over the weights: their 8-bit copies stay in cache while every
/// group of weight rows is read once per pass.
const INPUT_ROWS_PER_PASS: usize = 64;

/// `y[i][r] += dot(x[i], w[r])` for the quantized input rows and the `n` rows of `w`, each
/// `row_bytes` long in a block format that `dot_rows` reads (`dot_rows(x, w, sums)` writes the
/// dot products of input x with `sums.len()` consecutive rows starting at w); the weight rows
/// are split between threads, four at a time.
pub(crate) fn matmul_rows(
    x: &QuantizedRows,
    w: &[u8],
    (n, row_bytes): (usize, usize),
    dot_rows: impl Fn(InputRow, &[u8], &mut [f32]) + Sync,
    y: &mut [f32],
) {
    let rows = x.values.len() / x.k;
    debug_assert_eq!(w.len(), n * row_bytes);
    let out = SyncPtr(y.as_mut_ptr());
    let groups = n.div_ceil(4);
    for first_input in (0..rows).step_by(INPUT_ROWS_PER_PASS) {
        let inputs = first_input..rows.min(first_input + INPUT_ROWS_PER_PASS);
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for group in range {
                let first = group * 4;
                let rows = 4.min(n - first);
                let w = &w[first * row_bytes..(first + rows) * row_bytes];
                for input in inputs.clone() {
                    let mut sums = [0f32; 4];
                    dot_rows(x.row(input), w, &mut sums[..rows]);
                    // SAFETY: each group of weight rows is handed to exactly one worker, so
                    // these columns of the output row are written by it alone.
                    let y = unsafe {
                        std::slice::from_raw_parts_mut(out.get().add(input * n + first), rows)
                    };
                    y.iter_mut().zip(&sums).for_each(|(y, s)| *y += s);
                }
            }
        });
    }
}

/// Dot products of the quantized input (values, scales, block sums) with `sums.len()` consecutive weight
/// rows.
fn dot_rows(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512_vnni() {
        // SAFETY: the features were just detected.
        return unsafe { dot_rows_vnni(x, w, blocks_per_row, sums) };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { dot_rows_avx2(x, w, blocks_per_row, sums) };
    }
    dot_rows_portable(x, w, blocks_per_row, sums)
}

/// [`dot_rows`] in plain loops: the reference the SIMD kernels are tested against.
fn dot_rows_portable(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    for (r, sum) in sums.iter_mut().enumerate() {
        let row = &w[r * blocks_per_row * BLOCK_BYTES..(r + 1) * blocks_per_row * BLOCK_BYTES];
        *sum = row
            .chunks_exact(BLOCK_BYTES)
            .enumerate()
            .map(|(b, block)| {
                let xs = &x.0[b * BLOCK..(b + 1) * BLOCK];
                let dot: i32 = block[2..]
                    .iter()
                    .zip(xs)
                    .map(|(&w, &x)| w as i8 as i32 * x as i32)
                    .sum();
                scale(block) * x.1[b] * dot as f32
            })
            .sum();
    }
}

/// [`dot_rows`] with VNNI's `vpdpbusd`, which multiplies unsigned by signed bytes and adds
/// each 4 products into 32 bits in one instruction: the weights are offset by 128 (their top
/// bit flipped) to make them unsigned, and each block's sums start at `-128 * sum(x)` (the
/// input's block sums, computed once when it was quantized), which cancels the offset exactly.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn dot_rows_vnni(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    let (row_bytes, w) = (blocks_per_row * BLOCK_BYTES, w.as_ptr());
    each_row(sums, |r| {
        dot_rows_fixed_vnni::<1>(x, w.add(r * row_bytes), row_bytes, blocks_per_row)[0]
    })
}

/// Two blocks per 512-bit register (one per 256-bit register spent as many instructions on
/// each block's scale as on its values); an odd row's last block in the plain loops.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn dot_rows_fixed_vnni<const ROWS: usize>(
    x: InputRow,
    w: *const u8,
    row_bytes: usize,
    blocks_per_row: usize,
) -> [f32; ROWS] {
    use std::arch::x86_64::*;
    let values = x.0;
    let offset = _mm512_set1_epi8(-128);
    // 32-bit lane i holds sums of block b + i / 8.
    let block_of_lane = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let mut acc = [_mm512_setzero_ps(); ROWS];
    for b in (0..blocks_per_row - blocks_per_row % 2).step_by(2) {
        let xv = _mm512_loadu_si512(values.as_ptr().add(b * BLOCK).cast());
        let (dx, start) = block_pair_inputs(x, b, block_of_lane, 0x0101, 128);
        for (r, acc) in acc.iter_mut().enumerate() {
            let first = w.add(r * row_bytes + b * BLOCK_BYTES);
            let second = first.add(BLOCK_BYTES);
            // As in the AVX2 kernel: the same place of the next group of rows.
            _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(ROWS * row_bytes).cast());
            _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(ROWS * row_bytes + 64).cast());
            let stored = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(first.add(2).cast())),
                _mm256_loadu_si256(second.add(2).cast()),
            );
            let wv = _mm512_xor_si512(stored, offset);
            let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, wv, xv));
            let dw = block_pair_scales(first, second, block_of_lane);
            *acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), dot, *acc);
        }
    }
    let mut sums = acc.map(|a| _mm512_reduce_add_ps(a));
    let layout = (row_bytes, BLOCK_BYTES, blocks_per_row);
    add_odd_last_block(x, w, layout, &mut sums, |x, block, sum| {
        dot_rows_portable(x, block, 1, sum)
    });
    sums
}

/// One weight row at a time ([`each_row`]); the kernel takes its row count as a constant, so
/// its accumulators stay in registers whatever the grouping.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    let (row_bytes, w) = (blocks_per_row * BLOCK_BYTES, w.as_ptr());
    each_row(sums, |r| {
        dot_rows_fixed::<1>(x, w.add(r * row_bytes), row_bytes, blocks_per_row)[0]
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_fixed<const ROWS: usize>(
    (values, scales, _): InputRow,
    w: *const u8,
    row_bytes: usize,
    blocks_per_row: usize,
) -> [f32; ROWS] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); ROWS];
    for b in 0..blocks_per_row {
        let xv = _mm256_loadu_si256(values.as_ptr().add(b * BLOCK).cast());
        let dx = *scales.get_unchecked(b);
        for (r, acc) in acc.iter_mut().enumerate() {
            let block = w.add(r * row_bytes + b * BLOCK_BYTES);
            // The same place of the next group of rows (usually this thread's next): the
            // hardware prefetcher did not pick up interleaved rows in time.
            _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(ROWS * row_bytes).cast());
            let wv = _mm256_loadu_si256(block.add(2).cast());
            // maddubs multiplies unsigned by signed bytes: move w's sign onto x.
            let products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(block) * dx), dot, *acc);
        }
    }
    lane_sums(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::max_abs_diff;
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

    fn matrix(n: usize, k: usize) -> Tensor {
        let values: Vec<f32> = (0..n * k)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(values, (n, k), &Device::Cpu).unwrap()
    }

    #[test]
    fn products_match_the_dequantized_weights() {
        for (m, n, k) in [
            (1, 7, 64),
            (1, 50, 96),
            (3, 9, 32),
            (5, 4100, 64),
            (70, 13, 64),
            (PROMPT_FROM_ROWS + 1, 9, 64),
        ] {
            let w = matrix(n, k);
            let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
            let dense = q.dequantize(&Device::Cpu).unwrap();
            let x = (matrix(m, k) * 0.5).unwrap();
            let want = x.matmul(&dense.t().unwrap()).unwrap();
            let got = matmul_t(&x, &q).unwrap().unwrap();
            assert_eq!(got.dims(), &[m, n]);
            // The inputs are rounded to 8 bits: each value is off by at most half a step of
            // its block's scale (|x| <= 0.5 here, so 0.5/127/2), times k weights below 1.
            let tolerance = k as f32 * 0.5 / 127.0 / 2.0;
            let diff = max_abs_diff(&got, &want);
            assert!(diff <= tolerance, "({m}, {n}, {k}): {diff} > {tolerance}");
        }
    }

    /// Without the prompt kernel, many rows take the f32 product with the dequantized weights,
    /// to f32 rounding (the 8-bit inputs of the path above would be off by about 0.05 here),
    /// over several slices of weight rows, and add to what `y` holds.
    #[test]
    fn many_rows_multiply_the_dequantized_weights_in_f32() {
        let (m, n, k) = (PROMPT_FROM_ROWS + 3, 300, 4096);
        assert!(
            n > 2 * DEQUANTIZED_SLICE_VALUES / k,
            "three slices, the last one partial"
        );
        let q = QTensor::quantize(&matrix(n, k), GgmlDType::Q8_0).unwrap();
        let dense = q.dequantize(&Device::Cpu).unwrap();
        let x = (matrix(m, k) * 0.5).unwrap();
        let want = (x.matmul(&dense.t().unwrap()).unwrap() + 1.0).unwrap();
        let mut y = vec![1f32; m * n];
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        add_dequantized_product(&xs, w.blocks, n, k, &mut y);
        let got = Tensor::from_vec(y, (m, n), &Device::Cpu).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-3, "{diff}");
    }

    /// Each SIMD form of the decode dot products this CPU has equals the plain loops, for 4
    /// rows and for fewer, with inputs at the largest magnitudes (where VNNI's offset must
    /// cancel exactly).
    #[test]
    fn every_decode_kernel_equals_the_plain_loops() {
        // Rows of an even number of blocks (the VNNI kernel's pairs) and of an odd one.
        for k in [256, 288] {
            every_decode_kernel_equals_the_plain_loops_for(4, k);
        }
    }

    fn every_decode_kernel_equals_the_plain_loops_for(n: usize, k: usize) {
        let q = QTensor::quantize(&matrix(n, k), GgmlDType::Q8_0).unwrap();
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        let mut xs = (matrix(1, k) * 3.0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
            .remove(0);
        xs[..32].iter_mut().for_each(|v| *v = v.signum() * 3.0);
        let x = QuantizedRows::new(&xs, k, 1);
        let blocks = k / BLOCK;
        for rows in [4, 3] {
            let w = &w.blocks[..rows * blocks * BLOCK_BYTES];
            let mut plain = vec![0f32; rows];
            dot_rows_portable(x.row(0), w, blocks, &mut plain);
            let mut kernels: Vec<(&str, Vec<f32>)> = vec![];
            #[cfg(target_arch = "x86_64")]
            {
                if crate::kernels::has_avx512_vnni() {
                    let mut sums = vec![0f32; rows];
                    unsafe { dot_rows_vnni(x.row(0), w, blocks, &mut sums) };
                    kernels.push(("vnni", sums));
                }
                if crate::kernels::has_avx2_fma() {
                    let mut sums = vec![0f32; rows];
                    unsafe { dot_rows_avx2(x.row(0), w, blocks, &mut sums) };
                    kernels.push(("avx2", sums));
                }
            }
            for (name, sums) in kernels {
                for (s, p) in sums.iter().zip(&plain) {
                    assert!(
                        (s - p).abs() < 1e-3,
                        "{name}, {rows} rows of {k}: {s} vs {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_formats_are_left_to_the_library() {
        let w = QTensor::quantize(&matrix(32, 256), GgmlDType::Q4K).unwrap();
        assert!(matmul_t(&matrix(1, 256), &w).unwrap().is_none());
    }
}
