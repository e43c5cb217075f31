//! Products with weights in GGML's K formats (q4_K, q5_K, q6_K: `k_formats`) on CPUs with
//! AVX2 or AVX-512 VNNI, reading the blocks as they are stored, so a GGUF file's weights sit in
//! memory once. (The library's kernels for these formats keep a second, re-tiled copy: 309 MB
//! for GPT-2 small's 107 MB `Q4_K_M` file on a Zen 4, 258 MB against 159 for a 91 MB one on
//! a Zen 3.) CPUs without AVX2 keep the library's kernels.
//!
//! As for q8_0, a few input rows (decoding) are rounded to 8 bits per 32-value block and meet
//! each weight row's groups of 32 values: the stored unsigned values against the signed inputs
//! (`vpdpbusd` with VNNI, `maddubs` with AVX2), one scale per group (two halves of a register
//! with q6_K's scales per 16), the minimums once per super-block against the input blocks'
//! sums. Many rows (a prompt) take the 8-bit prompt kernel, whose panels are filled from the
//! super-blocks.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result};

use super::k_formats::{KFormat, Q4K, Q5K, Q6K, SUPER};
use super::prompt_panel::Kernel;
use super::q8::matmul_rows;
use super::q8_format::BLOCK;
use super::q8_inputs::{InputRow, QuantizedRows};

/// Input rows from which the prompt kernel pays: as for q8_0.
const PROMPT_FROM_ROWS: usize = 16;

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and a q4_K, q5_K or q6_K matrix `w`
/// (n, k) on a CPU with AVX2 (or AVX-512 VNNI); `false` (untouched) otherwise, for the
/// library's product.
pub fn add_rows_times_t(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    if !super::has_avx2_fma() {
        return Ok(false);
    }
    match w.dtype() {
        GgmlDType::Q4K => add_rows_times_of::<Q4K>(xs, w, y),
        GgmlDType::Q5K => add_rows_times_of::<Q5K>(xs, w, y),
        GgmlDType::Q6K => add_rows_times_of::<Q6K>(xs, w, y),
        _ => Ok(false),
    }
}

fn add_rows_times_of<F: KFormat>(xs: &[f32], w: &QTensor, y: &mut [f32]) -> Result<bool> {
    let (n, k) = w.shape().dims2()?;
    if !matches!(w.device(), Device::Cpu) || k % SUPER != 0 || !xs.len().is_multiple_of(k) {
        return Ok(false);
    }
    let m = xs.len() / k;
    if y.len() != m * n {
        candle_core::bail!("{:?} product: {} outputs for ({m}, {n})", F::DTYPE, y.len());
    }
    let data = w.data()?;
    let (supers, row_bytes) = (k / SUPER, k / SUPER * F::BYTES);
    if data.len() != n * row_bytes {
        return Ok(false);
    }
    if m < PROMPT_FROM_ROWS {
        let inputs = QuantizedRows::new(xs, k, m);
        matmul_rows(
            &inputs,
            &data,
            (n, row_bytes),
            |x, w, sums| dot_rows::<F>(x, w, supers, sums),
            y,
        );
        return Ok(true);
    }
    #[cfg(target_arch = "x86_64")]
    super::q8_prompt::add_k_rows_times::<F>(Kernel::detected(), xs, &data, n, k, y);
    Ok(true)
}

/// Dot products of the quantized input with `sums.len()` consecutive weight rows of `supers`
/// super-blocks each.
fn dot_rows<F: KFormat>(x: InputRow, w: &[u8], supers: usize, sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512_vnni() {
        let (row_bytes, w) = (supers * F::BYTES, w.as_ptr());
        // SAFETY: the features were just detected; `w` holds `sums.len()` rows.
        return unsafe {
            super::simd::each_row(sums, |r| {
                dot_rows_vnni::<F, 1>(x, w.add(r * row_bytes), row_bytes, supers)[0]
            })
        };
    }
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: as above, for AVX2.
        return unsafe { dot_rows_avx2::<F>(x, w, supers, sums) };
    }
    dot_rows_portable::<F>(x, w, supers, sums)
}

/// [`dot_rows`] in plain loops, from the shared form of each super-block: the reference the
/// VNNI kernel is tested against.
fn dot_rows_portable<F: KFormat>(
    (values, scales, block_sums): InputRow,
    w: &[u8],
    supers: usize,
    sums: &mut [f32],
) {
    for (sum, row) in sums.iter_mut().zip(w.chunks_exact(supers * F::BYTES)) {
        *sum = 0.0;
        for (s, block) in row.chunks_exact(F::BYTES).enumerate() {
            let u = F::unpack(block);
            for i in 0..SUPER / 16 {
                let e = s * SUPER + i * 16;
                let dot: i32 = (0..16)
                    .map(|t| {
                        (i32::from(u.values[i * 16 + t]) - F::CENTRE) * i32::from(values[e + t])
                    })
                    .sum();
                *sum += u.scales[i] * scales[e / BLOCK] * dot as f32;
            }
            for b in 0..SUPER / BLOCK {
                let block = s * SUPER / BLOCK + b;
                *sum += u.offsets[b] * scales[block] * block_sums[block] as f32;
            }
        }
    }
}

/// `ROWS` rows at a time share each load of the input. Per chunk of 64 values: the stored
/// values (`chunk_values`), one `vpdpbusd` starting at `-CENTRE` times the input's sums of 4
/// (themselves one `vpdpbusd` with ones, shared by the rows), one FMA with each lane's weight
/// scale times input scale (`chunk_scales`); per super-block, the minimums times the input
/// blocks' sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_rows_vnni<F: KFormat, const ROWS: usize>(
    (values, scales, block_sums): InputRow,
    w: *const u8,
    row_bytes: usize,
    supers: usize,
) -> [f32; ROWS] {
    use std::arch::x86_64::*;
    const CHUNKS: usize = SUPER / 64;
    let ones = _mm512_set1_epi8(1);
    let mut acc = [_mm512_setzero_ps(); ROWS];
    let mut acc_mins = [_mm256_setzero_ps(); ROWS];
    for s in 0..supers {
        let first_block = s * SUPER / BLOCK;
        let dx = _mm256_loadu_ps(scales.as_ptr().add(first_block));
        let xs: [__m512i; CHUNKS] = std::array::from_fn(|c| {
            _mm512_loadu_si512(values.as_ptr().add(s * SUPER + 64 * c).cast())
        });
        let starts: [__m512i; CHUNKS] = match F::CENTRE {
            0 => [_mm512_setzero_si512(); CHUNKS],
            centre => xs.map(|x| {
                let fours = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, x);
                _mm512_mullo_epi32(fours, _mm512_set1_epi32(-centre))
            }),
        };
        let input_sums = match F::MINS {
            true => _mm256_mul_ps(
                dx,
                _mm256_cvtepi32_ps(_mm256_loadu_si256(
                    block_sums.as_ptr().add(first_block).cast(),
                )),
            ),
            false => _mm256_setzero_ps(),
        };
        for r in 0..ROWS {
            let block = w.add(r * row_bytes + s * F::BYTES);
            // The same place of the next group of rows (one row on: `simd::each_row`).
            for line in (0..F::BYTES).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(ROWS * row_bytes + line).cast());
            }
            let (lane_scales, offsets) = F::chunk_scales(block, dx);
            if F::MINS {
                acc_mins[r] = _mm256_fmadd_ps(offsets, input_sums, acc_mins[r]);
            }
            for c in 0..CHUNKS {
                let dot = _mm512_dpbusd_epi32(starts[c], F::chunk_values(block, c), xs[c]);
                acc[r] = _mm512_fmadd_ps(lane_scales[c], _mm512_cvtepi32_ps(dot), acc[r]);
            }
        }
    }
    std::array::from_fn(|r| {
        _mm512_reduce_add_ps(_mm512_add_ps(acc[r], _mm512_zextps256_ps512(acc_mins[r])))
    })
}

/// [`dot_rows`] in AVX2, one weight row after another. Per group of 32 values: the stored
/// values (`group_values`), `maddubs` of them (unsigned, at most 63) with the signed inputs,
/// which cannot saturate (2 * 63 * 127 < 2^15), less `maddubs` of `CENTRE` with the inputs
/// for q6_K; `madd` with ones to 32 bits, one FMA with each lane's weight scale times input
/// scale (`group_scales`); per super-block, the minimums times the input blocks' sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2<F: KFormat>(
    (values, scales, block_sums): InputRow,
    w: &[u8],
    supers: usize,
    sums: &mut [f32],
) {
    use std::arch::x86_64::*;
    let row_bytes = supers * F::BYTES;
    let ones = _mm256_set1_epi16(1);
    let centre = _mm256_set1_epi8(F::CENTRE as i8);
    super::simd::each_row(sums, |r| {
        let row = w.as_ptr().add(r * row_bytes);
        let mut acc = _mm256_setzero_ps();
        let mut acc_mins = _mm256_setzero_ps();
        for s in 0..supers {
            let first_block = s * SUPER / BLOCK;
            let block = row.add(s * F::BYTES);
            // The same place of the next row, as in the VNNI kernel.
            for line in (0..F::BYTES).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(row_bytes + line).cast());
            }
            let dx = _mm256_loadu_ps(scales.as_ptr().add(first_block));
            let (lane_scales, offsets) = F::group_scales(block, dx);
            if F::MINS {
                let block_sums = block_sums.as_ptr().add(first_block).cast();
                let input_sums =
                    _mm256_mul_ps(dx, _mm256_cvtepi32_ps(_mm256_loadu_si256(block_sums)));
                acc_mins = _mm256_fmadd_ps(offsets, input_sums, acc_mins);
            }
            for (g, lane_scales) in lane_scales.iter().enumerate() {
                let x = _mm256_loadu_si256(values.as_ptr().add(s * SUPER + 32 * g).cast());
                let mut pairs = _mm256_maddubs_epi16(F::group_values(block, g), x);
                if F::CENTRE != 0 {
                    pairs = _mm256_sub_epi16(pairs, _mm256_maddubs_epi16(centre, x));
                }
                let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                acc = _mm256_fmadd_ps(*lane_scales, dot, acc);
            }
        }
        super::simd::lane_sums([_mm256_add_ps(acc, acc_mins)])[0]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::values;
    use candle_core::Tensor;

    fn quantized(n: usize, k: usize, dtype: GgmlDType) -> QTensor {
        // Rows of different ranges, so scales and minimums differ between super-blocks.
        let xs: Vec<f32> = values(n * k, 7)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + (i / 64 % 5) as f32) + (i / 256 % 3) as f32 * 0.3)
            .collect();
        QTensor::quantize(&Tensor::from_vec(xs, (n, k), &Device::Cpu).unwrap(), dtype).unwrap()
    }

    /// The products the plain loops give for every row of `xs`, one row at a time.
    fn plain<F: KFormat>(xs: &[f32], w: &QTensor) -> Vec<f32> {
        let (n, k) = w.shape().dims2().unwrap();
        let data = w.data().unwrap();
        let inputs = QuantizedRows::new(xs, k, xs.len() / k);
        let mut y = vec![0f32; xs.len() / k * n];
        for (r, y) in y.chunks_exact_mut(n).enumerate() {
            dot_rows_portable::<F>(inputs.row(r), &data, k / SUPER, y);
        }
        y
    }

    /// The plain loops equal the weights dequantized by the library times the inputs rounded
    /// to 8 bits per block.
    #[test]
    fn plain_loops_equal_the_dequantized_product() {
        fn check<F: KFormat>() {
            let (m, n, k) = (2, 5, 512);
            let w = quantized(n, k, F::DTYPE);
            let dense = w
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let xs = values(m * k, 3);
            let got = plain::<F>(&xs, &w);
            for r in 0..m {
                let x = &xs[r * k..(r + 1) * k];
                for j in 0..n {
                    let want: f32 = (0..k)
                        .map(|i| {
                            let block = &x[i / 32 * 32..][..32];
                            let d = block.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                            (x[i] / d).round() * d * dense[j][i]
                        })
                        .sum();
                    let g = got[r * n + j];
                    assert!(
                        (g - want).abs() < 1e-3,
                        "{:?} ({r}, {j}): {g} vs {want}",
                        F::DTYPE
                    );
                }
            }
        }
        check::<Q4K>();
        check::<Q5K>();
        check::<Q6K>();
    }

    /// `y += xs @ w^T` in `kernel`'s decode loops (fewer than 16 rows) or its prompt tiles.
    #[cfg(target_arch = "x86_64")]
    fn product_in<F: KFormat>(kernel: Kernel, xs: &[f32], w: &QTensor, y: &mut [f32]) {
        let (n, k) = w.shape().dims2().unwrap();
        let data = w.data().unwrap();
        let m = xs.len() / k;
        if m >= PROMPT_FROM_ROWS {
            return super::super::q8_prompt::add_k_rows_times::<F>(kernel, xs, &data, n, k, y);
        }
        let inputs = QuantizedRows::new(xs, k, m);
        for (r, y) in y.chunks_exact_mut(n).enumerate() {
            let mut sums = vec![0f32; n];
            // SAFETY: `kernel` is one this CPU runs; `data` holds n rows of k / 256 blocks.
            unsafe {
                match kernel {
                    Kernel::Vnni => {
                        let row_bytes = k / SUPER * F::BYTES;
                        for (j, sum) in sums.iter_mut().enumerate() {
                            let row = data.as_ptr().add(j * row_bytes);
                            *sum =
                                dot_rows_vnni::<F, 1>(inputs.row(r), row, row_bytes, k / SUPER)[0];
                        }
                    }
                    _ => dot_rows_avx2::<F>(inputs.row(r), &data, k / SUPER, &mut sums),
                }
            }
            y.iter_mut().zip(&sums).for_each(|(y, s)| *y += s);
        }
    }

    /// Every kernel this CPU runs, decode (few rows) and prompt (many: panels, partial last
    /// panel and tile), equals the plain loops, for every K format, inputs with the largest
    /// magnitudes and all-zero blocks included; both add to y. On CPUs without AVX2 the
    /// product is left to the library.
    #[test]
    fn every_kernel_equals_the_plain_loops() {
        fn check<F: KFormat>() {
            for (m, n, k) in [
                (1, 7, 256),
                (3, 9, 512),
                (20, 2 * 16 + 5, 768),
                (16, 3, 256),
            ] {
                let w = quantized(n, k, F::DTYPE);
                let mut xs: Vec<f32> = values(m * k, 5).iter().map(|v| v * 4.0).collect();
                xs[..BLOCK].fill(0.0);
                if m > 2 {
                    xs[2 * k..3 * k]
                        .iter_mut()
                        .for_each(|v| *v = v.signum() * 8.0);
                }
                let want = plain::<F>(&xs, &w);
                let mut dispatched = vec![0.5f32; m * n];
                let done = add_rows_times_t(&xs, &w, &mut dispatched).unwrap();
                assert_eq!(done, crate::kernels::has_avx2_fma());
                if !done {
                    continue;
                }
                let mut results = vec![("dispatched", dispatched)];
                #[cfg(target_arch = "x86_64")]
                for kernel in Kernel::all_this_cpu_runs() {
                    if kernel != Kernel::Portable {
                        let mut got = vec![0.5f32; m * n];
                        product_in::<F>(kernel, &xs, &w, &mut got);
                        results.push((
                            if kernel == Kernel::Vnni {
                                "vnni"
                            } else {
                                "avx2"
                            },
                            got,
                        ));
                    }
                }
                for (name, got) in results {
                    for (i, (g, p)) in got.iter().zip(&want).enumerate() {
                        let tolerance = 1e-4 * p.abs().max(10.0);
                        assert!(
                            (g - 0.5 - p).abs() < tolerance,
                            "{:?} {name} ({m}, {n}, {k}) at {i}: {g} - 0.5 vs {p}",
                            F::DTYPE
                        );
                    }
                }
            }
        }
        check::<Q4K>();
        check::<Q5K>();
        check::<Q6K>();
    }

    #[test]
    fn other_formats_are_left_to_the_caller() {
        let w = quantized(4, 256, GgmlDType::Q8_0);
        let mut y = vec![0f32; 4];
        assert!(!add_rows_times_t(&[0.5; 256], &w, &mut y).unwrap());
    }
}
