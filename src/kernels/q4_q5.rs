//! Products with weights in GGML's 4- and 5-bit formats of 32-value blocks, q4_0 and q5_0, on
//! the CPU.
//!
//! q4_0 keeps each run of 32 weights as one f16 scale and 32 four-bit values offset by 8, in
//! 16 bytes: byte j holds value j in its low half and value j + 16 in its high half. q5_0 adds
//! a fifth bit per value (4 bytes, bit j for value j) and offsets by 16. llama.cpp's Q4_K_M
//! mix of GPT-2 XL is mostly q5_0: its width of 1600 is no multiple of the K types' 256, so its
//! quantizer falls back, and the library multiplies q5_0 in plain loops (2.6 tokens/s).
//!
//! A product over many input rows (a prompt) fills the 8-bit prompt kernel's panels
//! (`q8_prompt`) from the blocks as stored, unsigned, and takes the offset back out. Without
//! AVX2, where that kernel has no form for them: a value of -16..15 times the block's scale is
//! also a q8_0 block (the same scale, the value as a signed byte), so a slice of weight rows is
//! widened to q8_0, exactly, 1 MB at a time, so the model's memory stays what its file holds. Few
//! rows (decoding) read the blocks once, as the q8_0 decode product does: inputs rounded to 8
//! bits per block, each block's bytes split into its 32 values and multiplied, four weight rows
//! per load of the input (VNNI and AVX2 `maddubs` alike).

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::prompt_panel::{Kernel, Panel};
use super::q8::{matmul_rows, Q8Matrix};
use super::q8_format::{BLOCK, BLOCK_BYTES as Q8_BLOCK_BYTES};
#[cfg(target_arch = "x86_64")]
use super::q8_inputs::block_pair_inputs;
use super::q8_inputs::{add_odd_last_block, InputRow, QuantizedRows};
#[cfg(target_arch = "x86_64")]
use super::q8_prompt::add_offset_block_rows_times;
use super::simd::four_or_each;
#[cfg(target_arch = "x86_64")]
use super::simd::{block_pair_scales, f16_at, lane_sums};

/// One of the two formats, as a type so each gets its own compiled loops.
trait Format: Sync {
    /// Bytes per block: the f16 scale, the fifth bits (q5_0), 16 bytes of two values each.
    const BLOCK_BYTES: usize;
    /// Where the 16 bytes of four-bit halves start.
    const LOW_BITS_AT: usize;
    /// What is taken off the stored bits (8 or 16).
    const OFFSET: i8;
    /// Bit j: value j's fifth bit (none in q4_0).
    fn fifth_bits(block: &[u8]) -> u32;

    /// The 32 values of a block.
    fn values(block: &[u8]) -> [i8; BLOCK] {
        let fifth = Self::fifth_bits(block);
        let mut out = [0i8; BLOCK];
        for (j, &byte) in block[Self::LOW_BITS_AT..Self::LOW_BITS_AT + 16]
            .iter()
            .enumerate()
        {
            let (low, high) = (byte & 0x0f, byte >> 4);
            out[j] = (low | ((fifth >> j & 1) as u8) << 4) as i8 - Self::OFFSET;
            out[j + 16] = (high | ((fifth >> (j + 16) & 1) as u8) << 4) as i8 - Self::OFFSET;
        }
        out
    }
}

struct Q4_0;
struct Q5_0;

impl Format for Q4_0 {
    const BLOCK_BYTES: usize = 18;
    const LOW_BITS_AT: usize = 2;
    const OFFSET: i8 = 8;
    fn fifth_bits(_: &[u8]) -> u32 {
        0
    }
}

impl Format for Q5_0 {
    const BLOCK_BYTES: usize = 22;
    const LOW_BITS_AT: usize = 6;
    const OFFSET: i8 = 16;
    fn fifth_bits(block: &[u8]) -> u32 {
        u32::from_le_bytes([block[2], block[3], block[4], block[5]])
    }
}

/// Input rows from which widening pays: as for q8_0's prompt kernel.
const PROMPT_FROM_ROWS: usize = 16;

/// Widened bytes per slice of weight rows.
const SLICE_BYTES: usize = 1 << 20;

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and a q4_0 or q5_0 matrix `w` (n, k) on
/// the CPU; `false` (untouched) for other weights, for the library's product.
pub fn add_rows_times_t(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    match w.dtype() {
        GgmlDType::Q4_0 => add_rows_times_of::<Q4_0>(xs, w, y),
        GgmlDType::Q5_0 => add_rows_times_of::<Q5_0>(xs, w, y),
        _ => Ok(false),
    }
}

fn add_rows_times_of<F: Format>(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    let (n, k) = w.shape().dims2()?;
    if !matches!(w.device(), Device::Cpu) || k % BLOCK != 0 || !xs.len().is_multiple_of(k) {
        return Ok(false);
    }
    let m = xs.len() / k;
    if y.len() != m * n {
        candle_core::bail!(
            "{:?} product: {} outputs for ({m}, {n})",
            w.dtype(),
            y.len()
        );
    }
    let data = w.data()?;
    let blocks_per_row = k / BLOCK;
    let row = blocks_per_row * F::BLOCK_BYTES;
    if data.len() != n * row {
        return Ok(false);
    }
    if m < PROMPT_FROM_ROWS {
        matmul_rows(
            &QuantizedRows::new(xs, k, m),
            &data,
            (n, row),
            |x, w, sums| dot_rows::<F>(x, w, blocks_per_row, sums),
            y,
        );
        return Ok(true);
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        add_rows_times_from_panels::<F>(Kernel::detected(), xs, &data, (n, k), y);
        return Ok(true);
    }
    add_rows_times_widened::<F>(xs, &data, (n, k), y)?;
    Ok(true)
}

/// Many rows on AVX2 or AVX-512 VNNI (`kernel`): the prompt kernel's panels filled from the
/// blocks as stored (their values are the weights plus the format's offset, which the kernel
/// takes back out), with no widened copy (widening took a q4_0 prompt to 0.6x of a q8_0 one
/// on GPT-2 XL with VNNI).
#[cfg(target_arch = "x86_64")]
fn add_rows_times_from_panels<F: Format>(
    kernel: Kernel,
    xs: &[f32],
    data: &[u8],
    (n, k): (usize, usize),
    y: &mut [f32],
) {
    let (blocks, row_bytes) = (k / BLOCK, k / BLOCK * F::BLOCK_BYTES);
    let fill = |panel: &mut Panel, rows: std::ops::Range<usize>| {
        let rows = &data[rows.start * row_bytes..rows.end * row_bytes];
        // SAFETY: this runs only where the CPU has AVX2; each block is whole.
        panel.fill_blocks(rows, (blocks, F::BLOCK_BYTES), |block| unsafe {
            stored_values::<F>(block)
        })
    };
    let offset = i32::from(F::OFFSET);
    add_offset_block_rows_times(kernel, xs, (n, k), offset, y, fill);
}

/// A block's 32 values as stored (unsigned: the weights plus the offset), in order: q5_0's
/// fifth bits spread to one byte each and compared, as in [`dot_rows_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn stored_values<F: Format>(block: &[u8]) -> [u8; BLOCK] {
    use std::arch::x86_64::*;
    let packed = _mm_loadu_si128(block[F::LOW_BITS_AT..F::LOW_BITS_AT + 16].as_ptr().cast());
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
    let mut stored = _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
    if F::BLOCK_BYTES == Q5_0::BLOCK_BYTES {
        let set = fifth_bit_bytes(F::fifth_bits(block));
        stored = _mm256_or_si256(stored, _mm256_and_si256(set, _mm256_set1_epi8(16)));
    }
    let mut out = [0u8; BLOCK];
    _mm256_storeu_si256(out.as_mut_ptr().cast(), stored);
    out
}

/// Byte j all ones where bit j of `bits` is set, else zero.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn fifth_bit_bytes(bits: u32) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0,
        ),
    );
    let one_bit = _mm256_set1_epi64x(0x8040201008040201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, one_bit), one_bit)
}

/// Many rows elsewhere: slices of weight rows widened exactly to q8_0 for the 8-bit prompt
/// kernel (1 MB at a time, so the model's memory stays what its file holds).
fn add_rows_times_widened<F: Format>(
    xs: &[f32],
    data: &[u8],
    (n, k): (usize, usize),
    y: &mut [f32],
) -> Result<()> {
    let m = xs.len() / k;
    let (row, q8_row) = (k / BLOCK * F::BLOCK_BYTES, k / BLOCK * Q8_BLOCK_BYTES);
    // Whole panels of the prompt kernel (16 rows) per slice.
    let slice_rows = (SLICE_BYTES / q8_row / 16 * 16).max(16).min(n);
    let mut widened = vec![0u8; slice_rows * q8_row];
    let mut part = vec![0f32; m * slice_rows];
    for first in (0..n).step_by(slice_rows) {
        let rows = slice_rows.min(n - first);
        let widened = &mut widened[..rows * q8_row];
        widened
            .par_chunks_mut(16 * q8_row)
            .zip(data[first * row..(first + rows) * row].par_chunks(16 * row))
            .for_each(|(out, blocks)| widen::<F>(blocks, out));
        let part = &mut part[..m * rows];
        part.fill(0.0);
        let slice = Q8Matrix {
            blocks: widened,
            n: rows,
            k,
        };
        super::q8::add_rows_times(xs, slice, part)?;
        for (y, part) in y.chunks_exact_mut(n).zip(part.chunks_exact(rows)) {
            y[first..first + rows]
                .iter_mut()
                .zip(part)
                .for_each(|(y, p)| *y += p);
        }
    }
    Ok(())
}

/// Blocks of format `F` to the q8_0 blocks of the same values.
fn widen<F: Format>(from: &[u8], q8: &mut [u8]) {
    for (from, to) in from
        .chunks_exact(F::BLOCK_BYTES)
        .zip(q8.chunks_exact_mut(Q8_BLOCK_BYTES))
    {
        to[..2].copy_from_slice(&from[..2]);
        for (to, value) in to[2..].iter_mut().zip(F::values(from)) {
            *to = value as u8;
        }
    }
}

fn scale(block: &[u8]) -> f32 {
    half::f16::from_le_bytes([block[0], block[1]]).to_f32()
}

/// Dot products of the quantized input (values, scales, block sums) with `sums.len()` consecutive weight
/// rows of format `F`.
fn dot_rows<F: Format>(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    let row_bytes = blocks_per_row * F::BLOCK_BYTES;
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512_vnni() {
        // SAFETY: the features were just detected; `w` holds `sums.len()` rows.
        let w = w.as_ptr();
        return four_or_each(
            sums,
            || unsafe { dot_rows_vnni::<F, 4>(x, w, row_bytes, blocks_per_row) },
            |r| unsafe {
                dot_rows_vnni::<F, 1>(x, w.add(r * row_bytes), row_bytes, blocks_per_row)[0]
            },
        );
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the features were just detected; `w` holds `sums.len()` rows.
        let w = w.as_ptr();
        return four_or_each(
            sums,
            || unsafe { dot_rows_avx2::<F, 4>(x, w, row_bytes, blocks_per_row) },
            |r| unsafe {
                dot_rows_avx2::<F, 1>(x, w.add(r * row_bytes), row_bytes, blocks_per_row)[0]
            },
        );
    }
    dot_rows_portable::<F>(x, w, blocks_per_row, sums)
}

/// [`dot_rows`] in plain loops.
fn dot_rows_portable<F: Format>(x: InputRow, w: &[u8], blocks_per_row: usize, sums: &mut [f32]) {
    let row_bytes = blocks_per_row * F::BLOCK_BYTES;
    for (r, sum) in sums.iter_mut().enumerate() {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        *sum = row
            .chunks_exact(F::BLOCK_BYTES)
            .enumerate()
            .map(|(b, block)| {
                let xs = &x.0[b * BLOCK..(b + 1) * BLOCK];
                let dot: i32 = F::values(block)
                    .iter()
                    .zip(xs)
                    .map(|(&w, &x)| w as i32 * x as i32)
                    .sum();
                scale(block) * x.1[b] * dot as f32
            })
            .sum();
    }
}

/// `ROWS` weight rows share each load of the input; the row count is a constant so the
/// accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2<F: Format, const ROWS: usize>(
    (values, scales, _): InputRow,
    w: *const u8,
    row_bytes: usize,
    blocks_per_row: usize,
) -> [f32; ROWS] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let low_half = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); ROWS];
    for b in 0..blocks_per_row {
        let xv = _mm256_loadu_si256(values.as_ptr().add(b * BLOCK).cast());
        let dx = *scales.get_unchecked(b);
        for (r, acc) in acc.iter_mut().enumerate() {
            let block = w.add(r * row_bytes + b * F::BLOCK_BYTES);
            // As in the q8_0 product: the same place of the next group of rows.
            _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(ROWS * row_bytes).cast());
            let packed = _mm_loadu_si128(block.add(F::LOW_BITS_AT).cast());
            // Values 0..15 in the low halves of the bytes, 16..31 in the high halves.
            let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
            let halves = _mm256_and_si256(both, low_half);
            let wv = if F::BLOCK_BYTES == Q5_0::BLOCK_BYTES {
                // Byte j all ones where value j has its fifth bit; where it has not, the value
                // is its four bits minus 16, which as a signed byte is those bits | 0xf0.
                let set = fifth_bit_bytes(block.add(2).cast::<u32>().read_unaligned());
                _mm256_or_si256(halves, _mm256_andnot_si256(set, _mm256_set1_epi8(-16)))
            } else {
                _mm256_sub_epi8(halves, _mm256_set1_epi8(8))
            };
            // maddubs multiplies unsigned by signed bytes: move w's sign onto x.
            let products = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_at(block) * dx), dot, *acc);
        }
    }
    lane_sums(acc)
}

/// [`dot_rows_avx2`] with VNNI's `vpdpbusd` (unsigned times signed bytes, each 4 products
/// added into 32 bits), two blocks per 512-bit register: the stored values are unsigned
/// already (offset by 8 or 16), so they multiply as they are, and each block's sums start at
/// `-offset * sum(x)` (the input's block sums, computed once when it was quantized). The fifth
/// bits of q5_0 add 16 under a mask. (One block per 256-bit register spent as many
/// instructions per block on its scale as on its values: half the q4_0 file's decode time.)
/// Four rows at a time share the input's loads and scales and prefetch the next group, four
/// rows ahead: on a Zen 5, GPT-2 XL Q4_0 decoded at 23-26 tok/s against 20-23 one row at a
/// time, and 124M Q4_0 at 198-232 against 107-190 (alternating runs of the same files).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_rows_vnni<F: Format, const ROWS: usize>(
    x_row: InputRow,
    w: *const u8,
    row_bytes: usize,
    blocks_per_row: usize,
) -> [f32; ROWS] {
    use std::arch::x86_64::*;
    let values = x_row.0;
    let low_half = _mm512_set1_epi8(0x0f);
    let sixteen = _mm512_set1_epi8(16);
    // A pair of blocks unpacks as block b's values 0..15, block b + 1's 0..15, then both
    // blocks' 16..31: 32-bit lane i holds sums of block b + i / 4 % 2.
    let block_of_lane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    let mut acc = [_mm512_setzero_ps(); ROWS];
    for b in (0..blocks_per_row - blocks_per_row % 2).step_by(2) {
        let x = _mm512_loadu_si512(values.as_ptr().add(b * BLOCK).cast());
        // The input in the weights' order: its 128-bit quarters 0, 2, 1, 3.
        let xv = _mm512_shuffle_i64x2::<0b11_01_10_00>(x, x);
        let (dx, start) = block_pair_inputs(x_row, b, block_of_lane, 0x0011, F::OFFSET.into());
        for (r, acc) in acc.iter_mut().enumerate() {
            let first = w.add(r * row_bytes + b * F::BLOCK_BYTES);
            let second = first.add(F::BLOCK_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(ROWS * row_bytes).cast());
            let packed = _mm256_set_m128i(
                _mm_loadu_si128(second.add(F::LOW_BITS_AT).cast()),
                _mm_loadu_si128(first.add(F::LOW_BITS_AT).cast()),
            );
            let both = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(packed),
                _mm256_srli_epi16::<4>(packed),
            );
            let mut stored = _mm512_and_si512(both, low_half);
            if F::BLOCK_BYTES == Q5_0::BLOCK_BYTES {
                let (a, b) = (
                    u64::from(F::fifth_bits(std::slice::from_raw_parts(first, 6))),
                    u64::from(F::fifth_bits(std::slice::from_raw_parts(second, 6))),
                );
                let mask = (a & 0xffff) | (b & 0xffff) << 16 | (a >> 16) << 32 | (b >> 16) << 48;
                stored = _mm512_mask_add_epi8(stored, mask, stored, sixteen);
            }
            let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, stored, xv));
            let dw = block_pair_scales(first, second, block_of_lane);
            *acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), dot, *acc);
        }
    }
    let mut sums = acc.map(|a| _mm512_reduce_add_ps(a));
    let layout = (row_bytes, F::BLOCK_BYTES, blocks_per_row);
    add_odd_last_block(x_row, w, layout, &mut sums, |x, block, sum| {
        dot_rows_portable::<F>(x, block, 1, sum)
    });
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::max_abs_diff;
    use candle_core::Tensor;

    const TYPES: [GgmlDType; 2] = [GgmlDType::Q4_0, GgmlDType::Q5_0];

    fn matrix(n: usize, k: usize, seed: usize) -> Tensor {
        let values: Vec<f32> = (0..n * k)
            .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_vec(values, (n, k), &Device::Cpu).unwrap()
    }

    /// Widening keeps every value: the q8_0 blocks dequantize to the 4- and 5-bit ones.
    #[test]
    fn widened_blocks_hold_the_same_values() {
        let (n, k) = (3, 96);
        for dtype in TYPES {
            let w = QTensor::quantize(&matrix(n, k, 1), dtype).unwrap();
            let data = w.data().unwrap();
            let mut q8 = vec![0u8; n * k / BLOCK * Q8_BLOCK_BYTES];
            match dtype {
                GgmlDType::Q4_0 => widen::<Q4_0>(&data, &mut q8),
                _ => widen::<Q5_0>(&data, &mut q8),
            }
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
            let a = w.dequantize(&Device::Cpu).unwrap();
            let b = q8.dequantize(&Device::Cpu).unwrap();
            assert_eq!(max_abs_diff(&a, &b), 0.0, "{dtype:?}");
        }
    }

    /// Many rows against the dequantized weights (panels filled from the blocks, or slices
    /// widened to q8_0, the last partial), and few rows (the decode product, in the groups
    /// of rows its kernel takes, and the rest), added to what `y` holds.
    #[test]
    fn products_match_the_dequantized_weights() {
        let (m, k) = (PROMPT_FROM_ROWS + 3, 256);
        let n = 2 * SLICE_BYTES / (k / BLOCK * Q8_BLOCK_BYTES) + 42;
        let x = (matrix(m, k, 3) * 0.5).unwrap();
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // The inputs are rounded to 8 bits per block, as in the q8_0 products.
        let tolerance = k as f32 * 0.5 / 127.0 / 2.0;
        for dtype in TYPES {
            let w = QTensor::quantize(&matrix(n, k, 2), dtype).unwrap();
            let dense = w.dequantize(&Device::Cpu).unwrap();
            let want = (x.matmul(&dense.t().unwrap()).unwrap() + 1.0).unwrap();
            let check = |rows: usize, y: Vec<f32>, path: &str| {
                let want = want.narrow(0, 0, rows).unwrap();
                let got = Tensor::from_vec(y, (rows, n), &Device::Cpu).unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff <= tolerance,
                    "{dtype:?}, {rows} rows ({path}): {diff} > {tolerance}"
                );
            };
            for rows in [m, 1, 2] {
                let mut y = vec![1f32; rows * n];
                assert!(add_rows_times_t(&xs[..rows * k], &w, &mut y).unwrap());
                check(rows, y, "dispatched");
            }
            // The panels in every kernel this CPU runs (the dispatch takes the newest).
            let data = w.data().unwrap();
            #[cfg(target_arch = "x86_64")]
            for kernel in Kernel::all_this_cpu_runs() {
                if kernel == Kernel::Portable {
                    continue;
                }
                let mut y = vec![1f32; m * n];
                match dtype {
                    GgmlDType::Q4_0 => {
                        add_rows_times_from_panels::<Q4_0>(kernel, &xs, &data, (n, k), &mut y)
                    }
                    _ => add_rows_times_from_panels::<Q5_0>(kernel, &xs, &data, (n, k), &mut y),
                }
                check(m, y, &format!("{kernel:?} panels"));
            }
            // The widened slices, which the dispatch takes only without AVX2.
            let mut y = vec![1f32; m * n];
            match dtype {
                GgmlDType::Q4_0 => add_rows_times_widened::<Q4_0>(&xs, &data, (n, k), &mut y),
                _ => add_rows_times_widened::<Q5_0>(&xs, &data, (n, k), &mut y),
            }
            .unwrap();
            check(m, y, "widened");
        }
        let q8 = QTensor::quantize(&matrix(4, k, 2), GgmlDType::Q8_0).unwrap();
        assert!(!add_rows_times_t(&xs[..k], &q8, &mut [0f32; 4]).unwrap());
    }

    /// The portable dot products equal the SIMD ones (to f32 rounding of the block sums), for
    /// rows of an even number of blocks (the VNNI kernel's pairs) and an odd one (its last block
    /// alone).
    #[test]
    fn the_portable_dot_products_match() {
        for (n, k) in [(7, 128), (6, 160)] {
            let xs = matrix(1, k, 5)
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let x = QuantizedRows::new(&xs, k, 1);
            for dtype in TYPES {
                let w = QTensor::quantize(&matrix(n, k, 4), dtype).unwrap();
                let data = w.data().unwrap();
                let (mut simd, mut plain, mut three) = ([0f32; 4], [0f32; 4], [0f32; 3]);
                let block_bytes = match dtype {
                    GgmlDType::Q4_0 => {
                        dot_rows::<Q4_0>(x.row(0), &data, k / BLOCK, &mut simd);
                        dot_rows_portable::<Q4_0>(x.row(0), &data, k / BLOCK, &mut plain);
                        dot_rows::<Q4_0>(x.row(0), &data, k / BLOCK, &mut three);
                        Q4_0::BLOCK_BYTES
                    }
                    _ => {
                        dot_rows::<Q5_0>(x.row(0), &data, k / BLOCK, &mut simd);
                        dot_rows_portable::<Q5_0>(x.row(0), &data, k / BLOCK, &mut plain);
                        dot_rows::<Q5_0>(x.row(0), &data, k / BLOCK, &mut three);
                        Q5_0::BLOCK_BYTES
                    }
                };
                for (got, want) in simd.iter().zip(plain) {
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{dtype:?}, k {k}: {got} {want}"
                    );
                }
                assert_eq!(three, simd[..3], "{dtype:?}, k {k}");
                // The AVX2 form too, which the dispatch skips on a CPU with VNNI.
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::has_avx2_fma() {
                    let (rows, row_bytes) = (data.as_ptr(), k / BLOCK * block_bytes);
                    let avx2 = unsafe {
                        match dtype {
                            GgmlDType::Q4_0 => {
                                dot_rows_avx2::<Q4_0, 4>(x.row(0), rows, row_bytes, k / BLOCK)
                            }
                            _ => dot_rows_avx2::<Q5_0, 4>(x.row(0), rows, row_bytes, k / BLOCK),
                        }
                    };
                    for (got, want) in avx2.iter().zip(plain) {
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "avx2 {dtype:?}, k {k}"
                        );
                    }
                }
            }
        }
    }
}
