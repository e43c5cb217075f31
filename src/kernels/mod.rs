//! Matrix-vector products for decoding one token at a time on the CPU.
//!
//! Decoding reads every weight once per token, so it is bound by memory bandwidth: what matters
//! is streaming each weight exactly once, contiguously, on all cores, with wide loads. General
//! matmul kernels are built for many rows and lose most of that speed at a single row.

pub mod activations;
pub mod cached_values;
pub mod q8;

use candle_core::{Result, Storage, Tensor, WithDType};

/// Work items per thread: enough to even out a slow core, few enough to keep partials small.
const PARTS_PER_THREAD: usize = 2;

/// `y = x @ w` for one row `x` (k) and a row-major `w` (k, n): the Conv1D projections.
/// The rows of `w` are split between threads; each streams its rows into a partial sum.
pub fn matvec_in_out(x: &[f32], w: &[f32], y: &mut [f32]) {
    let (k, n) = (x.len(), y.len());
    debug_assert_eq!(w.len(), k * n);
    let pool = candle_core::utils::barrier_pool();
    let parts = ((pool.n_workers() + 1) * PARTS_PER_THREAD).min(k.max(1));
    let mut partials = vec![0f32; parts * n];
    let out = SyncPtr(partials.as_mut_ptr());
    pool.execute_chunked(parts, |range| {
        for part in range {
            let rows = part * k / parts..(part + 1) * k / parts;
            // SAFETY: each part writes only its own n-float slice of `partials`.
            let acc = unsafe { std::slice::from_raw_parts_mut(out.get().add(part * n), n) };
            // Four rows at once: four streams from memory keep more loads in flight.
            let mut i = rows.start;
            while i + 4 <= rows.end {
                let a = [x[i], x[i + 1], x[i + 2], x[i + 3]];
                axpy4(a, &w[i * n..(i + 4) * n], acc);
                i += 4;
            }
            for i in i..rows.end {
                axpy(x[i], &w[i * n..(i + 1) * n], acc);
            }
        }
    });
    y.copy_from_slice(&partials[..n]);
    for partial in partials[n..].chunks_exact(n) {
        y.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }
}

/// `y[r] = dot(x, w[r, :])` for every row `r` of a row-major `w` (rows, k): the tied
/// language-model head, whose rows are the token embeddings.
pub fn matvec_rows(x: &[f32], w: &[f32], y: &mut [f32]) {
    let k = x.len();
    debug_assert_eq!(w.len(), y.len() * k);
    let out = SyncPtr(y.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(y.len(), |rows| {
        let mut r = rows.start;
        while r + 4 <= rows.end {
            let values = dot4(x, &w[r * k..(r + 4) * k]);
            for (j, value) in values.into_iter().enumerate() {
                // SAFETY: each row index is handed to exactly one worker, and `y` outlives the call.
                unsafe { *out.get().add(r + j) = value };
            }
            r += 4;
        }
        for r in r..rows.end {
            let value = dot(x, &w[r * k..(r + 1) * k]);
            // SAFETY: as above.
            unsafe { *out.get().add(r) = value };
        }
    });
}

/// A pointer that workers may share because each writes its own disjoint part.
#[derive(Clone, Copy)]
pub struct SyncPtr(pub *mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

/// `y += x @ w` on every thread of rayon's pool (which the matmul crate runs on), for `x`
/// (m, k) row-major, `y` (m, n) with rows `y_row_stride` values apart, and `w` (k, n) whose
/// element (i, j) sits at `w[i * w_strides.0 + j * w_strides.1]`.
///
/// # Safety
/// `y` and `w` must point to buffers holding every element those strides reach, and nothing
/// else may access `y` meanwhile.
pub unsafe fn add_matmul(
    (m, n, k): (usize, usize, usize),
    y: *mut f32,
    y_row_stride: usize,
    x: &[f32],
    w: *const f32,
    w_strides: (usize, usize),
) {
    debug_assert!(x.len() >= m * k);
    let parallelism = match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        threads => gemm::Parallelism::Rayon(threads),
    };
    // dst = 1 * dst + 1 * lhs @ rhs, each given by its column and row strides.
    gemm::gemm(
        m,
        n,
        k,
        y,
        1,
        y_row_stride as isize,
        true,
        x.as_ptr(),
        1,
        k as isize,
        w,
        w_strides.1 as isize,
        w_strides.0 as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    )
}

pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y += a * x`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { axpy_avx2(a, x, y) };
    }
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// `y += a[0] * w[0] + ... + a[3] * w[3]` for four consecutive rows `w` of y's length.
pub fn axpy4(a: [f32; 4], w: &[f32], y: &mut [f32]) {
    let n = y.len();
    debug_assert_eq!(w.len(), 4 * n);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { axpy4_avx2(a, w, y) };
    }
    for (r, &ar) in a.iter().enumerate() {
        axpy(ar, &w[r * n..(r + 1) * n], y);
    }
}

/// Dot products of `x` with four consecutive rows of `w`.
pub fn dot4(x: &[f32], w: &[f32]) -> [f32; 4] {
    let k = x.len();
    debug_assert_eq!(w.len(), 4 * k);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { dot4_avx2(x, w) };
    }
    std::array::from_fn(|r| dot(x, &w[r * k..(r + 1) * k]))
}

/// Dot product, with AVX2/FMA where the CPU has it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// Eight independent sums so the compiler can vectorise without reassociating.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += a[c * 8 + j] * b[c * 8 + j];
        }
    }
    let tail: f32 = a[chunks * 8..]
        .iter()
        .zip(&b[chunks * 8..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let blocks = n / 32;
    for i in 0..blocks {
        for (j, lane) in acc.iter_mut().enumerate() {
            let off = i * 32 + j * 8;
            *lane = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(off)),
                _mm256_loadu_ps(pb.add(off)),
                *lane,
            );
        }
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    let tail: f32 = (blocks * 32..n).map(|i| a[i] * b[i]).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len();
    let (px, py) = (x.as_ptr(), y.as_mut_ptr());
    let va = _mm256_set1_ps(a);
    let blocks = n / 8;
    for i in 0..blocks {
        let off = i * 8;
        let v = _mm256_fmadd_ps(
            va,
            _mm256_loadu_ps(px.add(off)),
            _mm256_loadu_ps(py.add(off)),
        );
        _mm256_storeu_ps(py.add(off), v);
    }
    for i in blocks * 8..n {
        y[i] += a * x[i];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy4_avx2(a: [f32; 4], w: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = y.len();
    let py = y.as_mut_ptr();
    let rows = [
        w.as_ptr(),
        w.as_ptr().add(n),
        w.as_ptr().add(2 * n),
        w.as_ptr().add(3 * n),
    ];
    let va = a.map(|v| _mm256_set1_ps(v));
    let blocks = n / 8;
    for i in 0..blocks {
        let off = i * 8;
        let mut acc = _mm256_loadu_ps(py.add(off));
        for r in 0..4 {
            // Fetch the same place of the next four rows, which this thread reads next.
            _mm_prefetch::<_MM_HINT_T0>(rows[r].wrapping_add(4 * n + off).cast());
            acc = _mm256_fmadd_ps(va[r], _mm256_loadu_ps(rows[r].add(off)), acc);
        }
        _mm256_storeu_ps(py.add(off), acc);
    }
    for j in blocks * 8..n {
        for r in 0..4 {
            y[j] += a[r] * w[r * n + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot4_avx2(x: &[f32], w: &[f32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let k = x.len();
    let px = x.as_ptr();
    let rows = [
        w.as_ptr(),
        w.as_ptr().add(k),
        w.as_ptr().add(2 * k),
        w.as_ptr().add(3 * k),
    ];
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    let blocks = k / 16;
    for i in 0..blocks {
        let off = i * 16;
        let x0 = _mm256_loadu_ps(px.add(off));
        let x1 = _mm256_loadu_ps(px.add(off + 8));
        for r in 0..4 {
            // Fetch the same place of the next four rows, which this thread reads next.
            _mm_prefetch::<_MM_HINT_T0>(rows[r].wrapping_add(4 * k + off).cast());
            acc[r][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(rows[r].add(off)), acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(rows[r].add(off + 8)), acc[r][1]);
        }
    }
    std::array::from_fn(|r| {
        let sum = _mm256_add_ps(acc[r][0], acc[r][1]);
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        let tail: f32 = (blocks * 16..k).map(|i| x[i] * w[r * k + i]).sum();
        lanes.iter().sum::<f32>() + tail
    })
}

/// Runs `f` on the contiguous f32 data of a CPU tensor, or returns `None` when the tensor is
/// elsewhere, of another dtype, or strided.
pub fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    with_slice::<f32, R>(t, f)
}

/// [`with_f32_slice`] for any element type.
pub fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(data) = &*storage else {
        return None;
    };
    let data = data.as_slice::<T>().ok()?;
    let (start, end) = layout.contiguous_offsets()?;
    Some(f(&data[start..end]))
}

/// The single-row fast path: `kernel(x, w, y)` on CPU f32 data, or `None` when it does not apply
/// (another device or dtype, strided data, or a variable being trained).
fn single_row(
    x: &Tensor,
    w: &Tensor,
    n: usize,
    kernel: fn(&[f32], &[f32], &mut [f32]),
) -> Result<Option<Tensor>> {
    if w.is_variable() {
        return Ok(None);
    }
    let result = with_f32_slice(x, |xs| {
        with_f32_slice(w, |ws| {
            let mut y = vec![0f32; n];
            kernel(xs, ws, &mut y);
            y
        })
    })
    .flatten();
    result
        .map(|y| Tensor::from_vec(y, (1, n), x.device()))
        .transpose()
}

/// `x @ w` for one row `x` (1, k) and `w` (k, n).
pub fn single_row_matmul(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (k, n) = w.dims2()?;
    if x.elem_count() != k {
        return Ok(None);
    }
    single_row(x, w, n, matvec_in_out)
}

/// `x @ w^T` for one row `x` (1, k) and `w` (n, k).
pub fn single_row_matmul_t(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (n, k) = w.dims2()?;
    if x.elem_count() != k {
        return Ok(None);
    }
    single_row(x, w, n, matvec_rows)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest difference between two tensors of the same shape.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .expect("tensors of one shape")
    }

    fn sample(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * seed).sin()).collect()
    }

    #[test]
    fn dot_matches_a_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 31, 32, 33, 100, 768] {
            let (a, b) = (sample(n, 0.37), sample(n, 0.11));
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
            assert!((dot_portable(&a, &b) as f64 - want).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn four_row_kernels_match_one_row_kernels() {
        for n in [1, 8, 15, 16, 33, 100] {
            let w = sample(4 * n, 0.05);
            let x = sample(n, 0.3);
            let four = dot4(&x, &w);
            for r in 0..4 {
                assert!(
                    (four[r] - dot(&x, &w[r * n..(r + 1) * n])).abs() < 1e-4,
                    "dot4 n = {n}"
                );
            }
            let mut y4 = sample(n, 0.9);
            let mut y1 = y4.clone();
            axpy4([0.5, -1.0, 2.0, 0.25], &w, &mut y4);
            for (r, a) in [0.5, -1.0, 2.0, 0.25].into_iter().enumerate() {
                axpy(a, &w[r * n..(r + 1) * n], &mut y1);
            }
            assert!(
                y4.iter().zip(&y1).all(|(a, b)| (a - b).abs() < 1e-4),
                "axpy4 n = {n}"
            );
        }
    }

    #[test]
    fn single_row_kernels_match_candle_matmul() {
        for (k, n) in [(40, 30), (1, 5), (77, 129), (768, 260)] {
            let x = Tensor::from_vec(sample(k, 0.3), (1, k), &Device::Cpu).unwrap();
            let w = Tensor::from_vec(sample(k * n, 0.07), (k, n), &Device::Cpu).unwrap();
            let slow = x.matmul(&w).unwrap();
            let fast = single_row_matmul(&x, &w).unwrap().unwrap();
            let diff = max_abs_diff(&fast, &slow);
            assert!(diff < 1e-4, "in-out {k}x{n}: {diff}");
            let w_t = w.t().unwrap().contiguous().unwrap();
            let fast = single_row_matmul_t(&x, &w_t).unwrap().unwrap();
            let diff = max_abs_diff(&fast, &slow);
            assert!(diff < 1e-4, "rows {k}x{n}: {diff}");
        }
    }
}
