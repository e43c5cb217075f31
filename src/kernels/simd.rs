//! SIMD detection and the small vector primitives the kernels are built from: dot products and
//! `y += a x` with AVX2/FMA where the CPU has it, portable loops elsewhere, and the pointer
//! that lets threads write disjoint parts of one buffer.

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

/// The instruction sets this crate's kernels use, from least to most: detected once, and the
/// one place that decides which kernel runs.
///
/// - `Avx512Vnni`: AVX-512 (F, BW, VL) with VNNI's 8-bit dot products, for the 8-bit
///   products (`q8_prompt`, `q8`, `q4_q5`, `k_quants`); every other kernel takes its AVX2 form.
/// - `Avx2`: AVX2, FMA and F16C, for every kernel.
/// - `Portable`: plain loops.
///
/// Two variables lower the level, as on an older CPU, so that a machine with the newest
/// features can run and test the others: `GPT2_TUI_PORTABLE_KERNELS=1` forces `Portable`, and
/// `GPT2_TUI_KERNELS=avx2` caps at `Avx2`. (The matmul library's f32 kernels choose their own.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Portable,
    Avx2,
    Avx512Vnni,
}

impl Level {
    /// The name `gpt2-tui info` reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// This CPU's [`Level`], lowered by the variables above.
pub fn level() -> Level {
    static DETECTED: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        let set = |name: &str, value: &str| std::env::var_os(name).is_some_and(|v| v == value);
        let cap = match (
            set("GPT2_TUI_PORTABLE_KERNELS", "1"),
            set("GPT2_TUI_KERNELS", "avx2"),
        ) {
            (true, _) => Level::Portable,
            (false, true) => Level::Avx2,
            (false, false) => Level::Avx512Vnni,
        };
        detected().min(cap)
    })
}

/// What the CPU itself offers.
fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma") && has!("f16c")) {
            Level::Portable
        } else if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
            Level::Avx512Vnni
        } else {
            Level::Avx2
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Portable
    }
}

/// Whether the AVX2 kernels run (AVX2, FMA and F16C, not forced portable): see [`level`].
pub fn has_avx2_fma() -> bool {
    level() >= Level::Avx2
}

/// Whether the AVX-512 VNNI kernels of the 8-bit products run: see [`level`].
pub fn has_avx512_vnni() -> bool {
    level() >= Level::Avx512Vnni
}

/// `sums` from a kernel of a constant row count (so its accumulators stay in registers): all
/// four rows at once when there are four, the usual group, else each row alone.
pub(crate) fn four_or_each(
    sums: &mut [f32],
    four: impl FnOnce() -> [f32; 4],
    one: impl Fn(usize) -> f32,
) {
    match sums.len() {
        4 => sums.copy_from_slice(&four()),
        _ => sums
            .iter_mut()
            .enumerate()
            .for_each(|(r, sum)| *sum = one(r)),
    }
}

/// The sum of each register's 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn lane_sums<const R: usize>(acc: [std::arch::x86_64::__m256; R]) -> [f32; R] {
    acc.map(|a| {
        let mut lanes = [0f32; 8];
        std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), a);
        lanes.iter().sum()
    })
}

/// The f16 at `p` (a GGML block's scale), as f32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    use std::arch::x86_64::*;
    let bits = p.cast::<u16>().read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The f16 scales of two GGML blocks at `first` and `second`, in the 32-bit lanes of a
/// 512-bit register that `block_of_lane` (0 or 1 per lane) gives each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub(crate) unsafe fn block_pair_scales(
    first: *const u8,
    second: *const u8,
    block_of_lane: std::arch::x86_64::__m512i,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let bits = u32::from(first.cast::<u16>().read_unaligned())
        | u32::from(second.cast::<u16>().read_unaligned()) << 16;
    let two = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    _mm512_permutexvar_ps(block_of_lane, _mm512_castps128_ps512(two))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
