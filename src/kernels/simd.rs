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

/// `sums` one weight row after another, so that the weights are read as one sequential stream.
///
/// Sharing each input load among four rows (below) reads four interleaved streams instead, and
/// on a Zen 4 that halved what one core got from memory: 124M Q8_0 decoded at 89 tok/s with
/// 2 threads against 131 one row at a time (Q4_0 159 -> 187, Q4_K_M 148 -> 165 on VNNI; one
/// thread: Q8_0 55 -> 86). Each kernel takes its row count as a constant, so the grouping
/// can be measured again on another CPU by changing only the call.
pub(crate) fn each_row(sums: &mut [f32], one: impl Fn(usize) -> f32) {
    sums.iter_mut()
        .enumerate()
        .for_each(|(r, sum)| *sum = one(r));
}

/// `sums` from a kernel of a constant row count (so its accumulators stay in registers): all
/// four rows at once when there are four, the usual group, else each row alone. For kernels
/// that spend more on each input than on reading the weights: the q4_0/q5_0 products (AVX2:
/// 136 tok/s on 124M Q4_0 with four rows against 100 with [`each_row`] on a Zen 4; VNNI: see
/// `q4_q5::dot_rows_vnni`).
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
    fn axpy_matches_a_plain_loop_at_every_length() {
        for n in [0, 1, 7, 8, 15, 16, 33, 100, 768] {
            let x = sample(n, 0.05);
            let mut y = sample(n, 0.9);
            let want: Vec<f32> = y.iter().zip(&x).map(|(y, x)| y - 0.75 * x).collect();
            axpy(-0.75, &x, &mut y);
            assert!(
                y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
                "axpy n = {n}"
            );
        }
    }
}
