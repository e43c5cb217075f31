//! GGML's "K" block formats, as the integer kernels read them: super-blocks of 256 values,
//! each with an f16 scale (and for q4_K and q5_K an f16 scale of minimums) over small
//! integer scales per group of values. llama.cpp's `Q4_K_M` mix of GPT-2 small is made of
//! these: q5_K for the attention's fused projection, q4_K and q6_K for the rest, q6_K for the
//! tied head.
//!
//! - q4_K (144 bytes): `d`, `dmin`, 12 bytes of 6-bit scales and minimums for 8 groups of 32,
//!   then 128 bytes of 4-bit values: bytes 32j..32j+32 hold group 2j in their low halves and
//!   group 2j + 1 in their high halves. Value = `d * sc * q - dmin * m`.
//! - q5_K (176 bytes): the same with a fifth bit per value (32 bytes; bit g of byte l is the
//!   fifth bit of value l of group g) before the 4-bit values.
//! - q6_K (210 bytes): 128 bytes of low 4 bits, 64 of high 2 bits, 16 signed 8-bit scales (one
//!   per 16 values), then `d`. Value = `d * sc * (q - 32)`.
//!
//! Every value is then `scales[e / 16] * (q - CENTRE) + offsets[e / 32]` with q an unsigned
//! byte: [`Unpacked`]. The kernels multiply the unsigned q by the signed 8-bit inputs with
//! `vpdpbusd` as they are, take `CENTRE` times the inputs' sums back out in integers, and add
//! the offsets times each input block's sum once per block.

use candle_core::quantized::GgmlDType;

/// Values per super-block.
pub(crate) const SUPER: usize = 256;

/// A super-block's values in the form every K format shares: value `e` is
/// `scales[e / 16] * (values[e] - CENTRE) + offsets[e / 32]`.
pub(crate) struct Unpacked {
    pub(crate) values: [u8; SUPER],
    pub(crate) scales: [f32; 16],
    pub(crate) offsets: [f32; 8],
}

/// One K format: where its bits are, as a type so each gets its own compiled loops.
pub(crate) trait KFormat: Sync {
    const DTYPE: GgmlDType;
    /// Bytes per super-block.
    const BYTES: usize;
    /// What is taken off the stored values before scaling: 0 or 32.
    const CENTRE: i32;
    /// Values per scale: 32 (q4_K, q5_K) or 16 (q6_K).
    const GROUP: usize;
    /// Whether the format has minimums (`offsets` not all zero).
    const MINS: bool;

    /// The scales (one per 16 values) and offsets (one per 32) of a super-block; by default
    /// q4_K's and q5_K's packed 6-bit scales and minimums.
    fn scales(block: &[u8]) -> ([f32; 16], [f32; 8]) {
        scales_with_mins(block)
    }

    /// Stored value `e` of a super-block (plain code: the reference and the fallback).
    fn value(block: &[u8], e: usize) -> u8;

    /// The 32 stored values of group `g` (values 32g..32g+32) in a register.
    ///
    /// # Safety
    /// The CPU has AVX2; `block` points at a whole super-block.
    #[cfg(target_arch = "x86_64")]
    unsafe fn group_values(block: *const u8, g: usize) -> std::arch::x86_64::__m256i;

    /// The 64 stored values of chunk `c` (values 64c..64c+64) in a register.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, BW); `block` points at a whole super-block.
    #[cfg(target_arch = "x86_64")]
    unsafe fn chunk_values(block: *const u8, c: usize) -> std::arch::x86_64::__m512i;

    /// For each chunk of 64 values, the scale of each of a register's 16 lanes of 4 values
    /// times the scale of the input block those values meet (`dx`, the super-block's 8 input
    /// block scales); and the 8 offsets per 32 values (zero without minimums). By default
    /// q4_K's and q5_K's.
    ///
    /// # Safety
    /// The CPU has AVX-512 (F, BW, VL) and F16C; `block` points at a whole super-block.
    #[cfg(target_arch = "x86_64")]
    unsafe fn chunk_scales(
        block: *const u8,
        dx: std::arch::x86_64::__m256,
    ) -> ([std::arch::x86_64::__m512; 4], std::arch::x86_64::__m256) {
        chunk_scales_with_mins(block, dx)
    }

    /// For each of the 8 groups of 32 values, the scale of each of a 256-bit register's 8
    /// lanes of 4 values times the scale of the input block the group meets (`dx`, the
    /// super-block's 8 input block scales); and the 8 offsets per 32 values (zero without
    /// minimums). By default q4_K's and q5_K's.
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C; `block` points at a whole super-block.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn group_scales(
        block: *const u8,
        dx: std::arch::x86_64::__m256,
    ) -> ([std::arch::x86_64::__m256; 8], std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        let (scales, offsets) = group_scales_with_mins(block, dx);
        let lanes =
            std::array::from_fn(|g| _mm256_permutevar8x32_ps(scales, _mm256_set1_epi32(g as i32)));
        (lanes, offsets)
    }

    /// The whole super-block in the shared form.
    fn unpack(block: &[u8]) -> Unpacked {
        let (scales, offsets) = Self::scales(block);
        let mut values = [0u8; SUPER];
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2_fma() {
            for g in 0..SUPER / 32 {
                // SAFETY: AVX2 was just detected; `block` is a whole super-block (the slice
                // below checks its length).
                unsafe {
                    let v = Self::group_values(block[..Self::BYTES].as_ptr(), g);
                    std::arch::x86_64::_mm256_storeu_si256(values[32 * g..].as_mut_ptr().cast(), v);
                }
            }
            return Unpacked {
                values,
                scales,
                offsets,
            };
        }
        for (e, v) in values.iter_mut().enumerate() {
            *v = Self::value(block, e);
        }
        Unpacked {
            values,
            scales,
            offsets,
        }
    }
}

pub(crate) struct Q4K;
pub(crate) struct Q5K;
pub(crate) struct Q6K;

fn f16_at(block: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// Group `g`'s 6-bit scale and minimum from the 12 packed bytes (GGML's `get_scale_min_k4`):
/// groups 0-3 in the low 6 bits of bytes 0-3 and 4-7, groups 4-7 in the halves of bytes 8-11
/// with their top 2 bits in the top bits of bytes 0-7.
fn scale_and_min(packed: &[u8], g: usize) -> (u8, u8) {
    if g < 4 {
        (packed[g] & 63, packed[g + 4] & 63)
    } else {
        (
            (packed[g + 4] & 0xf) | ((packed[g - 4] >> 6) << 4),
            (packed[g + 4] >> 4) | ((packed[g] >> 6) << 4),
        )
    }
}

/// q4_K's and q5_K's scales: `d * sc` per group (twice, per 16 values), `-dmin * m` per group.
fn scales_with_mins(block: &[u8]) -> ([f32; 16], [f32; 8]) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let mut scales = [0f32; 16];
    let mut offsets = [0f32; 8];
    for g in 0..8 {
        let (sc, m) = scale_and_min(&block[4..16], g);
        scales[2 * g] = d * f32::from(sc);
        scales[2 * g + 1] = scales[2 * g];
        offsets[g] = -dmin * f32::from(m);
    }
    (scales, offsets)
}

/// Lane l of chunk c of a super-block with one scale per 32 values meets group 2c + l / 8:
/// each chunk's 16 lane scales from the 8 group scales.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes_of_groups_of_32(
    scales: std::arch::x86_64::__m256,
) -> [std::arch::x86_64::__m512; 4] {
    use std::arch::x86_64::*;
    let all = _mm512_castps256_ps512(scales);
    std::array::from_fn(|c| {
        let (a, b) = (2 * c as i32, 2 * c as i32 + 1);
        let index = _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
        _mm512_permutexvar_ps(index, all)
    })
}

/// q4_K's and q5_K's scales and minimums, the 12 packed bytes unpacked in integer registers
/// (as llama.cpp does): `d * sc * dx` per group of 32 and `-dmin * m` per group.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_scales_with_mins(
    block: *const u8,
    dx: std::arch::x86_64::__m256,
) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let d = _mm_cvtph_ps(_mm_cvtsi32_si128(block.cast::<i32>().read_unaligned()));
    let packed = block.add(4).cast::<u32>();
    let (p0, p1, p2) = (
        packed.read_unaligned(),
        packed.add(1).read_unaligned(),
        packed.add(2).read_unaligned(),
    );
    // Groups 0-3: low 6 bits of bytes 0-3 (scales) and 4-7 (minimums); groups 4-7: the halves
    // of bytes 8-11 with the top 2 bits of bytes 0-3 (scales) and 4-7 (minimums) above.
    let scales_low = p0 & 0x3f3f_3f3f;
    let scales_high = (p2 & 0x0f0f_0f0f) | (((p0 >> 6) & 0x0303_0303) << 4);
    let mins_low = p1 & 0x3f3f_3f3f;
    let mins_high = ((p2 >> 4) & 0x0f0f_0f0f) | (((p1 >> 6) & 0x0303_0303) << 4);
    let bytes = |low: u32, high: u32| {
        let eight = _mm_cvtsi64_si128((u64::from(high) << 32 | u64::from(low)) as i64);
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(eight))
    };
    let scale = _mm256_set1_ps(_mm_cvtss_f32(d));
    let min = _mm256_set1_ps(-_mm_cvtss_f32(_mm_movehdup_ps(d)));
    (
        _mm256_mul_ps(_mm256_mul_ps(bytes(scales_low, scales_high), scale), dx),
        _mm256_mul_ps(bytes(mins_low, mins_high), min),
    )
}

/// [`group_scales_with_mins`] with each group's scale spread over the lanes of the 512-bit
/// kernels' chunks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl")]
unsafe fn chunk_scales_with_mins(
    block: *const u8,
    dx: std::arch::x86_64::__m256,
) -> ([std::arch::x86_64::__m512; 4], std::arch::x86_64::__m256) {
    let (scales, offsets) = group_scales_with_mins(block, dx);
    (lanes_of_groups_of_32(scales), offsets)
}

/// The 4-bit halves of 32 bytes as 64 values: the low halves first, then the high.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn nibbles(bytes: *const u8) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let b = _mm256_loadu_si256(bytes.cast());
    let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(b), _mm256_srli_epi16::<4>(b));
    _mm512_and_si512(both, _mm512_set1_epi8(0xf))
}

/// `bits` shifted right by `low` in the low 256 bits of the result and by `high` in the high.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn two_shifts(
    bits: std::arch::x86_64::__m256i,
    low: i32,
    high: i32,
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    let low = _mm256_srl_epi16(bits, _mm_cvtsi32_si128(low));
    let high = _mm256_srl_epi16(bits, _mm_cvtsi32_si128(high));
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
}

impl KFormat for Q4K {
    const DTYPE: GgmlDType = GgmlDType::Q4K;
    const BYTES: usize = 144;
    const CENTRE: i32 = 0;
    const GROUP: usize = 32;
    const MINS: bool = true;

    fn value(block: &[u8], e: usize) -> u8 {
        let (g, l) = (e / 32, e % 32);
        (block[16 + 32 * (g / 2) + l] >> (4 * (g % 2))) & 0xf
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn group_values(block: *const u8, g: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let bytes = _mm256_loadu_si256(block.add(16 + 32 * (g / 2)).cast());
        let shifted = _mm256_srl_epi16(bytes, _mm_cvtsi32_si128(4 * (g % 2) as i32));
        _mm256_and_si256(shifted, _mm256_set1_epi8(0xf))
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn chunk_values(block: *const u8, c: usize) -> std::arch::x86_64::__m512i {
        nibbles(block.add(16 + 32 * c))
    }
}

impl KFormat for Q5K {
    const DTYPE: GgmlDType = GgmlDType::Q5K;
    const BYTES: usize = 176;
    const CENTRE: i32 = 0;
    const GROUP: usize = 32;
    const MINS: bool = true;

    fn value(block: &[u8], e: usize) -> u8 {
        let (g, l) = (e / 32, e % 32);
        let low = (block[48 + 32 * (g / 2) + l] >> (4 * (g % 2))) & 0xf;
        low | ((block[16 + l] >> g) & 1) << 4
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn group_values(block: *const u8, g: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let bytes = _mm256_loadu_si256(block.add(48 + 32 * (g / 2)).cast());
        let low = _mm256_and_si256(
            _mm256_srl_epi16(bytes, _mm_cvtsi32_si128(4 * (g % 2) as i32)),
            _mm256_set1_epi8(0xf),
        );
        // Bit g of each byte to bit 0; the 16-bit shift brings the next byte's bits in above
        // it, which the mask drops.
        let fifth = _mm256_srl_epi16(
            _mm256_loadu_si256(block.add(16).cast()),
            _mm_cvtsi32_si128(g as i32),
        );
        let fifth = _mm256_slli_epi16::<4>(_mm256_and_si256(fifth, _mm256_set1_epi8(1)));
        _mm256_or_si256(low, fifth)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn chunk_values(block: *const u8, c: usize) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        let fifth = two_shifts(
            _mm256_loadu_si256(block.add(16).cast()),
            2 * c as i32,
            2 * c as i32 + 1,
        );
        let fifth = _mm512_slli_epi16::<4>(_mm512_and_si512(fifth, _mm512_set1_epi8(1)));
        _mm512_or_si512(nibbles(block.add(48 + 32 * c)), fifth)
    }
}

/// q6_K's f16 super-block scale `d`, its last 2 bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "f16c")]
unsafe fn q6k_scale(block: *const u8) -> f32 {
    use std::arch::x86_64::*;
    let bits = i32::from(block.add(208).cast::<u16>().read_unaligned());
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)))
}

impl KFormat for Q6K {
    const DTYPE: GgmlDType = GgmlDType::Q6K;
    const BYTES: usize = 210;
    const CENTRE: i32 = 32;
    const GROUP: usize = 16;
    const MINS: bool = false;

    fn scales(block: &[u8]) -> ([f32; 16], [f32; 8]) {
        let d = f16_at(block, 208);
        (
            std::array::from_fn(|i| d * f32::from(block[192 + i] as i8)),
            [0.0; 8],
        )
    }

    /// Value e sits in half n = e / 128, quarter q of it: its low 4 bits in byte
    /// `64n + 32 (q % 2) + l` (the low half for quarters 0 and 1, the high for 2 and 3), its
    /// high 2 bits in bits 2q.. of byte `128 + 32n + l`.
    fn value(block: &[u8], e: usize) -> u8 {
        let (n, q, l) = (e / 128, e % 128 / 32, e % 32);
        let low = (block[64 * n + 32 * (q % 2) + l] >> (4 * (q / 2))) & 0xf;
        let high = (block[128 + 32 * n + l] >> (2 * q)) & 3;
        low | high << 4
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn group_values(block: *const u8, g: usize) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let (n, q) = (g / 4, g % 4);
        let low_bytes = _mm256_loadu_si256(block.add(64 * n + 32 * (q % 2)).cast());
        let low = _mm256_and_si256(
            _mm256_srl_epi16(low_bytes, _mm_cvtsi32_si128(4 * (q / 2) as i32)),
            _mm256_set1_epi8(0xf),
        );
        let high_bytes = _mm256_loadu_si256(block.add(128 + 32 * n).cast());
        let high = _mm256_and_si256(
            _mm256_srl_epi16(high_bytes, _mm_cvtsi32_si128(2 * q as i32)),
            _mm256_set1_epi8(3),
        );
        _mm256_or_si256(low, _mm256_slli_epi16::<4>(high))
    }

    /// Chunk c is half c / 2's first 64 values (the low halves of its 64 bytes of low bits,
    /// high bits 0-1 and 2-3) or its last 64 (the high halves, high bits 4-5 and 6-7).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn chunk_values(block: *const u8, c: usize) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        let (n, second) = (c / 2, (c % 2) as i32);
        let low_bytes = _mm512_loadu_si512(block.add(64 * n).cast());
        let low = _mm512_srl_epi16(low_bytes, _mm_cvtsi32_si128(4 * second));
        let low = _mm512_and_si512(low, _mm512_set1_epi8(0xf));
        let high_bits = _mm256_loadu_si256(block.add(128 + 32 * n).cast());
        let high = two_shifts(high_bits, 4 * second, 4 * second + 2);
        let high = _mm512_slli_epi16::<4>(_mm512_and_si512(high, _mm512_set1_epi8(3)));
        _mm512_or_si512(low, high)
    }

    /// Lane l of chunk c holds values 4l.. of it: scale 4c + l / 4, input block 2c + l / 8.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c,avx512f,avx512vl")]
    unsafe fn chunk_scales(
        block: *const u8,
        dx: std::arch::x86_64::__m256,
    ) -> ([std::arch::x86_64::__m512; 4], std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        let d = q6k_scale(block);
        let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(block.add(192).cast())));
        let pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        let dx16 = _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(dx));
        let scales = _mm512_mul_ps(_mm512_mul_ps(sc, _mm512_set1_ps(d)), dx16);
        let lanes = std::array::from_fn(|c| {
            let [a, b, e, f] = [0, 1, 2, 3].map(|i| 4 * c as i32 + i);
            let index = _mm512_setr_epi32(a, a, a, a, b, b, b, b, e, e, e, e, f, f, f, f);
            _mm512_permutexvar_ps(index, scales)
        });
        (lanes, _mm256_setzero_ps())
    }

    /// Group g's lanes 0-3 (its first 16 values) take scale 2g, lanes 4-7 scale 2g + 1.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn group_scales(
        block: *const u8,
        dx: std::arch::x86_64::__m256,
    ) -> ([std::arch::x86_64::__m256; 8], std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        let d = q6k_scale(block);
        let eight = |at: usize| {
            let sc = _mm_loadl_epi64(block.add(192 + at).cast());
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)),
                _mm256_set1_ps(d),
            )
        };
        let halves = [eight(0), eight(8)];
        let lanes = std::array::from_fn(|g| {
            let (a, b) = (2 * (g % 4) as i32, 2 * (g % 4) as i32 + 1);
            let index = _mm256_setr_epi32(a, a, a, a, b, b, b, b);
            let scales = _mm256_permutevar8x32_ps(halves[g / 4], index);
            let dx = _mm256_permutevar8x32_ps(dx, _mm256_set1_epi32(g as i32));
            _mm256_mul_ps(scales, dx)
        });
        (lanes, _mm256_setzero_ps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    /// Every format's shared form gives the values the library dequantizes the same blocks to,
    /// in the plain code and the SIMD one.
    #[test]
    fn unpacked_values_equal_the_librarys_dequantized_ones() {
        fn check<F: KFormat>() {
            let (n, k) = (3, 512);
            let xs: Vec<f32> = (0..n * k)
                .map(|i| ((i * 2654435761) % 1000) as f32 / 300.0 - 1.5 + (i / 200) as f32 * 0.1)
                .collect();
            let w = Tensor::from_vec(xs, (n, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, F::DTYPE).unwrap();
            let dense = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let dense = dense.to_vec1::<f32>().unwrap();
            let data = q.data().unwrap();
            for (s, block) in data.chunks_exact(F::BYTES).enumerate() {
                let u = F::unpack(block);
                for e in 0..SUPER {
                    assert_eq!(u.values[e], F::value(block, e), "{:?} value {e}", F::DTYPE);
                    let v = u.scales[e / 16] * (i32::from(u.values[e]) - F::CENTRE) as f32
                        + u.offsets[e / 32];
                    let want = dense[s * SUPER + e];
                    assert!(
                        (v - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "{:?} super-block {s} value {e}: {v} vs {want}",
                        F::DTYPE
                    );
                }
            }
        }
        check::<Q4K>();
        check::<Q5K>();
        check::<Q6K>();
    }
}
