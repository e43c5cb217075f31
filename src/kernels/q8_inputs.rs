//! Input rows rounded to 8 bits per 32-value block, as llama.cpp rounds the activations that
//! meet q8_0 weights: per block one f32 scale, max |x| / 127, and the values divided by it and
//! rounded to the nearest integer (halves away from zero), so in [-127, 127]. The decode
//! path and the prompt kernel both read rows made here, so the two give the same products.

use rayon::prelude::*;

use super::q8_format::BLOCK;

/// Rows from which quantizing is shared between threads.
const PARALLEL_FROM_ROWS: usize = 16;

/// One quantized input row: its values, block scales and block sums.
pub(crate) type InputRow<'a> = (&'a [i8], &'a [f32], &'a [i32]);

/// Adds to each of `sums.len()` weight rows' sum its last block's product with `x`, for rows
/// of an odd number of blocks, which the kernels that take blocks in pairs leave out (no GPT-2
/// width has one): `one` is the plain product of a row of one block.
///
/// # Safety
/// `w` holds `sums.len()` rows of `row_bytes`, each `blocks` blocks of `block_bytes`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) unsafe fn add_odd_last_block(
    (values, scales, block_sums): InputRow,
    w: *const u8,
    (row_bytes, block_bytes, blocks): (usize, usize, usize),
    sums: &mut [f32],
    one: impl Fn(InputRow, &[u8], &mut [f32]),
) {
    if blocks % 2 == 0 {
        return;
    }
    let b = blocks - 1;
    let x = (&values[b * BLOCK..], &scales[b..], &block_sums[b..]);
    for (r, sum) in sums.iter_mut().enumerate() {
        let block = std::slice::from_raw_parts(w.add(r * row_bytes + b * block_bytes), block_bytes);
        let mut last = [0f32];
        one(x, block, &mut last);
        *sum += last[0];
    }
}

/// What blocks `b` and `b + 1` of an input row give every weight row of a kernel that takes
/// blocks in pairs: their scales in the 32-bit lanes `block_of_lane` (0 or 1 per lane) gives
/// each, and each block's start, `-offset` times its sum, in the one lane of `start_lanes`
/// that is its own (the lanes are added at the end).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,avx512f")]
pub(crate) unsafe fn block_pair_inputs(
    (_, scales, block_sums): InputRow,
    b: usize,
    block_of_lane: std::arch::x86_64::__m512i,
    start_lanes: std::arch::x86_64::__mmask16,
    offset: i32,
) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512i) {
    use std::arch::x86_64::*;
    let two_scales = _mm_castpd_ps(_mm_load_sd(scales[b..b + 2].as_ptr().cast()));
    let dx = _mm512_permutexvar_ps(block_of_lane, _mm512_castps128_ps512(two_scales));
    let two_sums = _mm_loadl_epi64(block_sums[b..b + 2].as_ptr().cast());
    let starts = _mm_mullo_epi32(two_sums, _mm_set1_epi32(-offset));
    let start =
        _mm512_maskz_permutexvar_epi32(start_lanes, block_of_lane, _mm512_castsi128_si512(starts));
    (dx, start)
}

/// Input rows in 8 bits, row after row, and their block scales.
pub(crate) struct QuantizedRows {
    /// k values per row.
    pub(crate) values: Vec<i8>,
    /// k / 32 scales per row.
    pub(crate) scales: Vec<f32>,
    /// The sum of each block's 8-bit values, k / 32 per row: the VNNI kernels multiply
    /// unsigned by signed bytes and take an offset of the weights back out with them.
    pub(crate) sums: Vec<i32>,
    pub(crate) k: usize,
}

impl QuantizedRows {
    /// The rows of `xs` (k values each), followed by zero rows up to `rows` in all (the prompt
    /// kernel reads whole tiles of rows).
    pub(crate) fn new(xs: &[f32], k: usize, rows: usize) -> Self {
        debug_assert!(k.is_multiple_of(BLOCK) && xs.len() <= rows * k);
        let mut values = vec![0i8; rows * k];
        let mut scales = vec![0f32; rows * (k / BLOCK)];
        let quantize = |(x, (values, scales)): (&[f32], (&mut [i8], &mut [f32]))| {
            quantize_row(x, values, scales)
        };
        let rows_in = xs.chunks_exact(k);
        let rows_out = values
            .chunks_exact_mut(k)
            .zip(scales.chunks_exact_mut(k / BLOCK));
        if xs.len() / k >= PARALLEL_FROM_ROWS {
            let rows_out = values
                .par_chunks_exact_mut(k)
                .zip(scales.par_chunks_exact_mut(k / BLOCK));
            xs.par_chunks_exact(k).zip(rows_out).for_each(quantize);
        } else {
            rows_in.zip(rows_out).for_each(quantize);
        }
        let sums = values
            .chunks_exact(BLOCK)
            .map(|block| block.iter().map(|&v| i32::from(v)).sum())
            .collect();
        Self {
            values,
            scales,
            sums,
            k,
        }
    }

    /// The values, scales and block sums of row `r`.
    pub(crate) fn row(&self, r: usize) -> InputRow<'_> {
        let blocks = self.k / BLOCK;
        (
            &self.values[r * self.k..(r + 1) * self.k],
            &self.scales[r * blocks..(r + 1) * blocks],
            &self.sums[r * blocks..(r + 1) * blocks],
        )
    }
}

/// One row: `values` (k) and `scales` (k / 32) written from `x` (k).
fn quantize_row(x: &[f32], values: &mut [i8], scales: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the features were just detected; the slices hold whole blocks.
        return unsafe { quantize_row_avx2(x, values, scales) };
    }
    quantize_row_portable(x, values, scales)
}

/// The reference the SIMD version is tested against, value for value.
fn quantize_row_portable(x: &[f32], values: &mut [i8], scales: &mut [f32]) {
    for ((block, out), scale) in x
        .chunks_exact(BLOCK)
        .zip(values.chunks_exact_mut(BLOCK))
        .zip(scales.iter_mut())
    {
        let (d, inv) = block_scale(block.iter().fold(0f32, |m, v| m.max(v.abs())));
        *scale = d;
        for (o, v) in out.iter_mut().zip(block) {
            *o = (v * inv).round() as i8;
        }
    }
}

/// The scale of a block whose largest magnitude is `max`, and its inverse (0 for a zero block).
fn block_scale(max: f32) -> (f32, f32) {
    let d = max / 127.0;
    (d, if d > 0.0 { 1.0 / d } else { 0.0 })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], values: &mut [i8], scales: &mut [f32]) {
    use std::arch::x86_64::*;
    let sign_bit = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    // The packs below interleave the 4 registers' values by 128-bit lanes: this puts them back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (b, scale) in scales.iter_mut().enumerate() {
        let p = x.as_ptr().add(b * BLOCK);
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
        let a = v.map(|v| _mm256_andnot_ps(sign_bit, v));
        let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
        let (d, inv) = block_scale(_mm_cvtss_f32(m));
        *scale = d;
        let inv = _mm256_set1_ps(inv);
        // Rounding halves away from zero, as f32::round: truncate, then step away from zero
        // where the dropped part is at least one half (exact: q - trunc(q) has no rounding).
        let q = v.map(|v| {
            let q = _mm256_mul_ps(v, inv);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(q);
            let dropped = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(q, t));
            let away = _mm256_or_ps(_mm256_and_ps(q, sign_bit), one);
            let step = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(dropped, half), away);
            _mm256_cvttps_epi32(_mm256_add_ps(t, step))
        });
        let words = (
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let bytes = _mm256_packs_epi16(words.0, words.1);
        let bytes = _mm256_permutevar8x32_epi32(bytes, order);
        _mm256_storeu_si256(values.as_mut_ptr().add(b * BLOCK).cast(), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value and scale of the SIMD rounding equals the plain one, halves and zero blocks
    /// included.
    #[test]
    fn simd_rounding_equals_the_plain_rounding() {
        let k = 4 * BLOCK;
        let mut x: Vec<f32> = (0..k)
            .map(|i| ((i * 2654435761) % 1000) as f32 / 77.0 - 6.5)
            .collect();
        // A block whose values land on halves (max 127 -> scale 1), and an all-zero block.
        for (i, v) in x[BLOCK..2 * BLOCK].iter_mut().enumerate() {
            *v = if i == 0 { 127.0 } else { i as f32 - 15.5 };
        }
        x[2 * BLOCK..3 * BLOCK].fill(0.0);
        let mut plain = (vec![0i8; k], vec![0f32; 4]);
        quantize_row_portable(&x, &mut plain.0, &mut plain.1);
        assert_eq!(plain.0[BLOCK + 1], -15, "-14.5 rounds away from zero");
        assert_eq!(plain.0[BLOCK + 31], 16, "15.5 rounds away from zero");
        let rows = QuantizedRows::new(&x, k, 2);
        let (values, scales, sums) = rows.row(0);
        assert_eq!((values, scales), (&plain.0[..], &plain.1[..]));
        let block_sum: i32 = plain.0[BLOCK..2 * BLOCK]
            .iter()
            .map(|&v| i32::from(v))
            .sum();
        assert_eq!(sums[1], block_sum);
        assert!(rows.row(1).0.iter().all(|&v| v == 0), "the padding row");
    }

    #[test]
    fn an_all_zero_block_quantizes_to_zeros() {
        let rows = QuantizedRows::new(&[0.0; 64], 64, 1);
        assert_eq!(rows.scales, vec![0.0, 0.0]);
        assert!(rows.values.iter().all(|&v| v == 0));
    }
}
