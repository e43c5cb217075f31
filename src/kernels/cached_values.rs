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

    /// `values` as f32, for the matrix products of a prompt: the slice itself, or its values
    /// converted into `scratch`.
    fn as_f32<'a>(values: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32];

    /// `values` stored as `Self` into `out` (of the same length).
    fn store(values: &[f32], out: &mut [Self]);
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
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        let tail: f32 = (blocks * 8..query.len())
            .map(|i| query[i] * key[i].to_f32())
            .sum();
        lanes.iter().sum::<f32>() + tail
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
}
