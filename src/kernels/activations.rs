//! Element-wise functions on the CPU: GELU and softmax with a vectorised `exp`.
//!
//! The C library's `tanhf`/`expf` work one value at a time; in a 512-token prefill GELU alone
//! took a fifth of the time. These run eight values per instruction (AVX2/FMA) with the same
//! results to a few units in the last place, and fall back to the scalar library elsewhere.

use candle_core::cpu::erf::erf_f32;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

use super::{has_avx2_fma, with_f32_slice, SyncPtr};

/// sqrt(2 / pi), the scale inside GPT-2's tanh approximation of GELU.
const GELU_SCALE: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// Slices longer than this are split between threads.
const PARALLEL_FROM: usize = 1 << 15;

/// GELU with the tanh approximation ("gelu_new"), written as `x * sigmoid(2u)`, which equals
/// `0.5 x (1 + tanh(u))` for `u = sqrt(2/pi) (x + 0.044715 x^3)` and never divides inf by inf.
fn gelu_scalar(x: f32) -> f32 {
    let u = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
    x / (1.0 + (-2.0 * u).min(88.0).exp())
}

/// GELU (tanh form) of every value, in place.
pub fn gelu_tanh_in_place(xs: &mut [f32]) {
    for_each_chunk(xs, gelu_tanh_on_this_thread);
}

/// [`gelu_tanh_in_place`] without threads, for callers that split the work themselves.
pub fn gelu_tanh_on_this_thread(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { gelu_avx2(xs) };
    }
    xs.iter_mut().for_each(|x| *x = gelu_scalar(*x));
}

/// Exact (erf) GELU of every value, in place, on this thread: as candle's `gelu_erf`, so the
/// slice and tensor paths agree exactly.
pub fn gelu_erf_on_this_thread(xs: &mut [f32]) {
    xs.iter_mut()
        .for_each(|x| *x = (erf_f32(*x * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * *x);
}

/// ReLU of every value, in place, on this thread.
pub fn relu_on_this_thread(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = x.max(0.0));
}

/// Softmax of every row of length `width`, in place. `-inf` entries (masked positions) become
/// exactly zero; a row must hold at least one finite value.
pub fn softmax_rows_in_place(xs: &mut [f32], width: usize) {
    debug_assert!(width > 0 && xs.len().is_multiple_of(width));
    for_each_chunk_of_rows(xs, width, |rows| {
        rows.chunks_exact_mut(width).for_each(softmax_row)
    });
}

/// Softmax of one row, in place, on this thread.
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    #[cfg(target_arch = "x86_64")]
    let sum = if has_avx2_fma() {
        // SAFETY: the features were just detected.
        unsafe { exp_shifted_avx2(row, max) }
    } else {
        exp_shifted_scalar(row, max)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sum = exp_shifted_scalar(row, max);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

/// `ln(sum(exp(x)))` of a row, computed stably, summed in f64.
///
/// Every decode step takes it over the whole vocabulary (50,257 values) for the chosen token's
/// log-probability; one libm `exp` per value cost about 3% of a step of a 4-bit 124M model.
pub fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + sum_exp_shifted(row, max).ln() as f32
}

/// [`log_sum_exp`] with the result in f64, for what adds it up over many rows (a text's
/// perplexity, its tokens' scores). The exponentials are the same f32 ones: one f64 `exp` per
/// value, as it was, made `perplexity` on 124M spend about as long on them as in the model.
pub fn log_sum_exp_f64(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max as f64 + sum_exp_shifted(row, max).ln()
}

/// `sum(exp(x - max))` in f64, vectorised where the CPU can.
fn sum_exp_shifted(row: &[f32], max: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { sum_exp_shifted_avx2(row, max) };
    }
    sum_exp_shifted_scalar(row, max)
}

/// `sum(exp(x - max))` in f64.
fn sum_exp_shifted_scalar(row: &[f32], max: f32) -> f64 {
    row.iter().map(|&x| ((x - max) as f64).exp()).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_exp_shifted_avx2(row: &[f32], max: f32) -> f64 {
    use std::arch::x86_64::*;
    let blocks = row.len() / 8;
    let shift = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_pd();
    for i in 0..blocks {
        let e = avx2::exp8(_mm256_sub_ps(
            _mm256_loadu_ps(row.as_ptr().add(i * 8)),
            shift,
        ));
        // Added in f64, as the plain loop does: 50,000 terms in f32 would lose digits.
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(e)));
    }
    let mut lanes = [0f64; 4];
    _mm256_storeu_pd(lanes.as_mut_ptr(), acc);
    lanes.iter().sum::<f64>() + sum_exp_shifted_scalar(&row[blocks * 8..], max)
}

/// `x = exp(x - max)` for every value; returns their sum.
fn exp_shifted_scalar(row: &mut [f32], max: f32) -> f32 {
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    sum
}

/// GELU of a contiguous CPU f32 tensor, in place; `false` (untouched) for anything else. The
/// caller must own `t` alone: every tensor sharing its storage sees the change.
pub fn gelu_tanh_tensor_in_place(t: &Tensor) -> Result<bool> {
    in_place_f32(t, gelu_tanh_in_place)
}

/// Adds `bias` to every row of a contiguous CPU f32 tensor whose last dimension is the bias
/// length, in place; `false` (untouched) when either is of another kind. As above, the caller
/// must own `t` alone.
pub fn add_bias_in_place(t: &Tensor, bias: &Tensor) -> Result<bool> {
    let width = bias.elem_count();
    if t.dims().last() != Some(&width) {
        return Ok(false);
    }
    let Some(bias) = with_f32_slice(bias, |b| b.to_vec()) else {
        return Ok(false);
    };
    in_place_f32(t, |xs| {
        for_each_chunk_of_rows(xs, width, |rows| {
            for row in rows.chunks_exact_mut(width) {
                row.iter_mut().zip(&bias).for_each(|(x, b)| *x += b);
            }
        })
    })
}

/// Runs `f` on the data of a contiguous CPU f32 tensor in place; `false` for other tensors.
fn in_place_f32(t: &Tensor, f: impl Fn(&mut [f32])) -> Result<bool> {
    struct Op<F>(F);
    impl<F: Fn(&mut [f32])> candle_core::InplaceOp1 for Op<F> {
        fn name(&self) -> &'static str {
            "in-place f32 map"
        }
        fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
            let (CpuStorage::F32(data), Some((start, end))) =
                (storage, layout.contiguous_offsets())
            else {
                candle_core::bail!("in-place map needs contiguous f32 data");
            };
            (self.0)(&mut data[start..end]);
            Ok(())
        }
    }
    let fits = t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous();
    if fits {
        t.inplace_op1(&Op(f))?;
    }
    Ok(fits)
}

/// Softmax over the last dimension of a contiguous CPU f32 tensor, in place; `false`
/// (untouched) for anything else. As above, the caller must own `t` alone.
pub fn softmax_last_dim_in_place(t: &Tensor) -> Result<bool> {
    match t.dims().last() {
        Some(&width) if width > 0 => in_place_f32(t, |xs| softmax_rows_in_place(xs, width)),
        _ => Ok(false),
    }
}

/// Runs `f` over `xs`, split between threads when it is long.
fn for_each_chunk(xs: &mut [f32], f: impl Fn(&mut [f32]) + Sync) {
    for_each_chunk_of_rows(xs, 1, f)
}

/// Runs `f` over `xs` in pieces made of whole rows of `width`, split between threads when it
/// is long.
fn for_each_chunk_of_rows(xs: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    if xs.len() < PARALLEL_FROM {
        return f(xs);
    }
    let pool = candle_core::utils::barrier_pool();
    let rows = xs.len() / width;
    let parts = ((pool.n_workers() + 1) * 4).min(rows);
    let ptr = SyncPtr(xs.as_mut_ptr());
    pool.execute_chunked(parts, |range| {
        for part in range {
            let span = part * rows / parts * width..(part + 1) * rows / parts * width;
            // SAFETY: the parts are disjoint ranges of `xs`, each handed to one worker.
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(ptr.get().add(span.start), span.len()) };
            f(chunk);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `exp` of eight values (Cephes' single-precision polynomial, within 2 ulp). Inputs below
    /// -87.3 give exactly 0, so masked `-inf` scores vanish; inputs are capped at 88.3.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let underflow = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(-87.3));
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.3)),
            _mm256_set1_ps(88.3),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        // x - n ln2, with ln2 split in two so the subtraction stays exact.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let p = _mm256_fmadd_ps(
            p,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        // Multiply by 2^n by building the exponent bits directly.
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(pow2)), underflow)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(xs: &mut [f32]) {
    use std::arch::x86_64::*;
    let blocks = xs.len() / 8;
    let p = xs.as_mut_ptr();
    for i in 0..blocks {
        let x = _mm256_loadu_ps(p.add(i * 8));
        let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        let u = _mm256_mul_ps(
            _mm256_set1_ps(GELU_SCALE),
            _mm256_fmadd_ps(_mm256_set1_ps(GELU_CUBIC), x3, x),
        );
        let e = avx2::exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0), u));
        let y = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
        _mm256_storeu_ps(p.add(i * 8), y);
    }
    for x in &mut xs[blocks * 8..] {
        *x = gelu_scalar(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_avx2(row: &mut [f32], max: f32) -> f32 {
    use std::arch::x86_64::*;
    let blocks = row.len() / 8;
    let p = row.as_mut_ptr();
    let shift = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    for i in 0..blocks {
        let e = avx2::exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i * 8)), shift));
        _mm256_storeu_ps(p.add(i * 8), e);
        acc = _mm256_add_ps(acc, e);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    lanes.iter().sum::<f32>() + exp_shifted_scalar(&mut row[blocks * 8..], max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_gelu(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + u.tanh())
    }

    #[test]
    fn log_sum_exp_matches_the_f64_formula() {
        let mut row: Vec<f32> = (0..50_257)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.02 - 9.0)
            .collect();
        row[17] = f32::NEG_INFINITY;
        for len in [1, 7, 8, 9, 100, row.len()] {
            let row = &row[..len];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let want = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let got = log_sum_exp(row) as f64;
            assert!((got - want).abs() < 1e-5, "len {len}: {got} against {want}");
            let got = log_sum_exp_f64(row);
            assert!(
                (got - want).abs() < 1e-6,
                "len {len}: {got} against {want} (f64)"
            );
        }
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp_f64(&[f32::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    }

    #[test]
    fn gelu_matches_the_tanh_formula_across_the_range() {
        let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.01).collect();
        xs.extend([-100.0, -30.0, 30.0, 100.0, 0.0, -0.0, 1e-7, -1e-7]);
        let mut ys = xs.clone();
        gelu_tanh_in_place(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            let want = reference_gelu(*x as f64);
            let err = (*y as f64 - want).abs();
            assert!(
                err <= 2e-6 * want.abs().max(1.0),
                "gelu({x}) = {y}, want {want}"
            );
        }
    }

    #[test]
    fn softmax_matches_a_double_precision_softmax_and_zeroes_masked_entries() {
        let width = 37;
        let mut xs: Vec<f32> = (0..width * 3)
            .map(|i| ((i * 7919) % 101) as f32 * 0.37 - 18.0)
            .collect();
        xs[5] = f32::NEG_INFINITY;
        xs[width + 36] = f32::NEG_INFINITY;
        let want: Vec<f64> = xs
            .chunks(width)
            .flat_map(|row| {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
                row.iter()
                    .map(move |&x| (x as f64 - max).exp() / sum)
                    .collect::<Vec<_>>()
            })
            .collect();
        softmax_rows_in_place(&mut xs, width);
        assert_eq!(xs[5], 0.0);
        assert_eq!(xs[width + 36], 0.0);
        for (got, want) in xs.iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() < 1e-6 * want.max(1e-3),
                "{got} vs {want}"
            );
        }
    }

    #[test]
    fn long_slices_split_between_threads_give_the_same_values() {
        let xs: Vec<f32> = (0..PARALLEL_FROM * 3 + 5)
            .map(|i| (i as f32 * 0.001).sin() * 6.0)
            .collect();
        let mut parallel = xs.clone();
        gelu_tanh_in_place(&mut parallel);
        for (x, y) in xs.iter().zip(&parallel) {
            let want = reference_gelu(*x as f64);
            assert!((*y as f64 - want).abs() <= 2e-6 * want.abs().max(1.0));
        }
    }
}
