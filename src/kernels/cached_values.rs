//! The values a CPU key/value cache holds: f32, or f16 beside 8-bit weights.
//!
//! Decoding reads every cached key and value once per token; with f16 they are widened in
//! registers as they are read (F16C), never copied to f32 buffers.

use candle_core::WithDType;
use half::f16;

use super::{self as kernels, has_avx2_fma};

pub trait CachedValue: WithDType {
    /// `query · key`.
    fn dot(query: &[f32], key: &[Self]) -> f32;

    /// `y += a * value`.
    fn axpy(a: f32, value: &[Self], y: &mut [f32]);

    /// `scores[i] = scale * (query · key_i)` over the rows of `keys` (each `query.len()`
    /// long, one per score): the attention's scores of one query.
    fn scores(query: &[f32], keys: &[Self], scale: f32, scores: &mut [f32]) {
        dot_each_row(query, keys, scale, scores)
    }

    /// `y += weights[i] * value_i` over the rows of `values` (each `y.len()` long): the
    /// attention's sum of cached values, which keeps `y` in registers where it can.
    fn add_weighted_rows(weights: &[f32], values: &[Self], y: &mut [f32]) {
        axpy_each_row(weights, values, y)
    }

    /// `values` as f32, for the matrix products of a prompt: the slice itself, or its values
    /// converted into `scratch`.
    fn as_f32<'a>(values: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32];

    /// `values` stored as `Self` into `out` (of the same length).
    fn store(values: &[f32], out: &mut [Self]);
}

/// [`CachedValue::scores`] as one `dot` per row.
fn dot_each_row<K: CachedValue>(query: &[f32], keys: &[K], scale: f32, scores: &mut [f32]) {
    for (score, key) in scores.iter_mut().zip(keys.chunks_exact(query.len())) {
        *score = K::dot(query, key) * scale;
    }
}

/// [`CachedValue::add_weighted_rows`] as one `axpy` per row.
fn axpy_each_row<K: CachedValue>(weights: &[f32], values: &[K], y: &mut [f32]) {
    for (&w, value) in weights.iter().zip(values.chunks_exact(y.len())) {
        K::axpy(w, value, y);
    }
}

impl CachedValue for f32 {
    fn dot(query: &[f32], key: &[f32]) -> f32 {
        kernels::dot(query, key)
    }

    fn axpy(a: f32, value: &[f32], y: &mut [f32]) {
        kernels::axpy(a, value, y)
    }

    fn as_f32<'a>(values: &'a [f32], _: &'a mut Vec<f32>) -> &'a [f32] {
        values
    }

    fn store(values: &[f32], out: &mut [f32]) {
        out.copy_from_slice(values)
    }
}

impl CachedValue for f16 {
    fn dot(query: &[f32], key: &[f16]) -> f32 {
        debug_assert_eq!(query.len(), key.len());
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the features were just detected.
            return unsafe { f16c::dot(query, key) };
        }
        query.iter().zip(key).map(|(q, k)| q * k.to_f32()).sum()
    }

    fn axpy(a: f32, value: &[f16], y: &mut [f32]) {
        debug_assert_eq!(value.len(), y.len());
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the features were just detected.
            return unsafe { f16c::axpy(a, value, y) };
        }
        y.iter_mut()
            .zip(value)
            .for_each(|(y, v)| *y += a * v.to_f32());
    }

    fn scores(query: &[f32], keys: &[f16], scale: f32, scores: &mut [f32]) {
        debug_assert_eq!(scores.len() * query.len(), keys.len());
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() && query.len().is_multiple_of(8) {
            // SAFETY: the features were just detected; `keys` holds a row per score.
            return unsafe { f16c::scores(query, keys, scale, scores) };
        }
        dot_each_row(query, keys, scale, scores)
    }

    fn add_weighted_rows(weights: &[f32], values: &[f16], y: &mut [f32]) {
        debug_assert_eq!(weights.len() * y.len(), values.len());
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the features were just detected; `values` holds a row per weight.
            match y.len() {
                d if d % 64 == 0 => {
                    return unsafe { f16c::add_weighted_rows::<8>(weights, values, y) }
                }
                d if d % 32 == 0 => {
                    return unsafe { f16c::add_weighted_rows::<4>(weights, values, y) }
                }
                _ => {}
            }
        }
        axpy_each_row(weights, values, y)
    }

    fn as_f32<'a>(values: &'a [f16], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        use half::slice::HalfFloatSliceExt;
        scratch.resize(values.len(), 0.0);
        values.convert_to_f32_slice(scratch);
        scratch
    }

    fn store(values: &[f32], out: &mut [f16]) {
        use half::slice::HalfFloatSliceExt;
        out.convert_from_f32_slice(values)
    }
}

#[cfg(target_arch = "x86_64")]
mod f16c {
    use std::arch::x86_64::*;

    use half::f16;

    /// Eight f16 values from `p` as f32 lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot(query: &[f32], key: &[f16]) -> f32 {
        let blocks = query.len() / 8;
        let mut acc = _mm256_setzero_ps();
        for b in 0..blocks {
            let q = _mm256_loadu_ps(query.as_ptr().add(b * 8));
            acc = _mm256_fmadd_ps(q, load8(key.as_ptr().add(b * 8)), acc);
        }
        let tail: f32 = (blocks * 8..query.len())
            .map(|i| query[i] * key[i].to_f32())
            .sum();
        lane_sum(acc) + tail
    }

    /// The sum of the 8 lanes, in registers (a store and a scalar loop cost as much as the
    /// 64-value product itself).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lane_sum(v: __m256) -> f32 {
        let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
    }

    /// [`super::CachedValue::scores`] for queries of a multiple of 8 values, 8 keys at a time.
    ///
    /// One key's dot product is a chain of FMAs into one register and then a sum across its
    /// lanes, each step waiting on the last. Eight keys make eight independent chains, and
    /// their lanes are summed together, a register of 8 scores at a time. The keys come from
    /// memory, so this gains little (124M Q4_0, 512 tokens decoded after 512: the scores took
    /// 9.5% of the time against 10.4% one key at a time, perf).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores(query: &[f32], keys: &[f16], scale: f32, scores: &mut [f32]) {
        let d = query.len();
        let whole = scores.len() / 8 * 8;
        let scale8 = _mm256_set1_ps(scale);
        for first in (0..whole).step_by(8) {
            let rows = keys.as_ptr().add(first * d);
            let mut acc = [_mm256_setzero_ps(); 8];
            for column in (0..d).step_by(8) {
                let q = _mm256_loadu_ps(query.as_ptr().add(column));
                for (k, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(q, load8(rows.add(k * d + column)), *acc);
                }
            }
            let sums = _mm256_mul_ps(lane_sums(acc), scale8);
            _mm256_storeu_ps(scores.as_mut_ptr().add(first), sums);
        }
        for (i, score) in scores.iter_mut().enumerate().skip(whole) {
            *score = dot(query, &keys[i * d..(i + 1) * d]) * scale;
        }
    }

    /// The lane sums of 8 registers as one register, lane k the sum of `v[k]`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn lane_sums(v: [__m256; 8]) -> __m256 {
        // Each 128-bit half of `low` holds, in lane k, the sum of v[k]'s 4 lanes in that
        // half; `high` the same for v[4 + k].
        let low = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
        let high = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(low, high),
            _mm256_permute2f128_ps::<0x31>(low, high),
        )
    }

    /// `y += weights[i] * value_i` for `y` of a multiple of `8 * N` values: `N` registers of
    /// `y` at a time stay in registers over all the rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn add_weighted_rows<const N: usize>(
        weights: &[f32],
        values: &[f16],
        y: &mut [f32],
    ) {
        let d = y.len();
        for column in (0..d).step_by(8 * N) {
            let out = y.as_mut_ptr().add(column);
            let mut acc: [__m256; N] = std::array::from_fn(|j| _mm256_loadu_ps(out.add(8 * j)));
            for (i, &w) in weights.iter().enumerate() {
                let (w, row) = (_mm256_set1_ps(w), values.as_ptr().add(i * d + column));
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(w, load8(row.add(8 * j)), *acc);
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(8 * j), *acc);
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy(a: f32, value: &[f16], y: &mut [f32]) {
        let blocks = y.len() / 8;
        let a8 = _mm256_set1_ps(a);
        for b in 0..blocks {
            let p = y.as_mut_ptr().add(b * 8);
            let sum = _mm256_fmadd_ps(a8, load8(value.as_ptr().add(b * 8)), _mm256_loadu_ps(p));
            _mm256_storeu_ps(p, sum);
        }
        for i in blocks * 8..y.len() {
            y[i] += a * value[i].to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::CachedValue;

    /// The F16C kernels agree with widening each value first, also on lengths that are not a
    /// multiple of eight.
    #[test]
    fn f16_products_match_the_widened_values() {
        for len in [3, 8, 64, 71] {
            let query: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let key: Vec<f16> = (0..len)
                .map(|i| f16::from_f32((i as f32 * 0.11).cos()))
                .collect();
            let widened: Vec<f32> = key.iter().map(|k| k.to_f32()).collect();
            let want = f32::dot(&query, &widened);
            assert!((f16::dot(&query, &key) - want).abs() < 1e-5 * len as f32);
            let (mut got, mut want) = (query.clone(), query.clone());
            f16::axpy(0.5, &key, &mut got);
            f32::axpy(0.5, &widened, &mut want);
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        }
    }

    /// The scores 8 keys at a time equal one `dot` per key: for whole groups of 8, the keys
    /// left over, and query widths the kernel leaves to the loop.
    #[test]
    fn scores_match_one_dot_per_key() {
        for (d, keys) in [(64, 600), (64, 8), (64, 7), (24, 17), (12, 9), (8, 1)] {
            let query: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let cached: Vec<f16> = (0..d * keys)
                .map(|i| f16::from_f32((i as f32 * 0.11).cos()))
                .collect();
            let mut got = vec![0f32; keys];
            f16::scores(&query, &cached, 0.125, &mut got);
            for (i, key) in cached.chunks_exact(d).enumerate() {
                let want = f16::dot(&query, key) * 0.125;
                assert!((got[i] - want).abs() < 1e-5, "d {d}, key {i} of {keys}");
            }
        }
    }

    /// The weighted sum of rows in registers equals one `axpy` per row, for rows of 64 values
    /// (GPT-2's heads), of several registers' widths, and of a length left to the loop.
    #[test]
    fn weighted_rows_match_one_axpy_per_row() {
        for (d, rows) in [(64, 9), (128, 4), (96, 2), (24, 3)] {
            let values: Vec<f16> = (0..d * rows)
                .map(|i| f16::from_f32((i as f32 * 0.13).sin()))
                .collect();
            let weights: Vec<f32> = (0..rows).map(|i| 1.0 / (i + 2) as f32).collect();
            let start: Vec<f32> = (0..d).map(|i| i as f32 * 0.01).collect();
            let (mut got, mut want) = (start.clone(), start);
            f16::add_weighted_rows(&weights, &values, &mut got);
            for (&w, value) in weights.iter().zip(values.chunks_exact(d)) {
                f16::axpy(w, value, &mut want);
            }
            assert!(
                got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
                "rows of {d}"
            );
        }
    }
}
