//! Products of many input rows (a prompt) with q8_0 weights in 8-bit integer arithmetic.
//!
//! The inputs are quantized as for decoding (one scale per row and 32-value block, values
//! rounded to [-127, 127]) and packed in tiles of 8 rows, so that one 256-bit register holds 4
//! bytes of each of the 8 rows. Four bytes of a weight row, broadcast to every lane, then meet
//! all 8 rows in one `maddubs`: 32 multiply-adds per instruction on AVX2, where an f32 FMA
//! does 8. The weights stay the compact q8_0 blocks they are (no second, re-tiled copy), read
//! four rows at a time; each block's partial sums are scaled by the two block scales and
//! added up in f32.
//!
//! `maddubs` multiplies unsigned by signed bytes and adds pairs with saturation to 16 bits:
//! with |x| on the unsigned side and the weight carrying x's sign, every pair sums to at most
//! 2 * 127 * 127 = 32258, inside 16 bits, so nothing saturates.

use rayon::prelude::*;

use super::q8_format::{Q8Matrix, BLOCK, BLOCK_BYTES};
use super::SyncPtr;

/// Input rows per tile: one register holds 4 bytes of each.
const TILE_ROWS: usize = 8;

/// Bytes of one tile's block: 8 groups of 4 values for each of the 8 rows.
const TILE_BLOCK_BYTES: usize = TILE_ROWS * BLOCK;

/// Weight rows that pass over a tile together, each with its own accumulator.
const WEIGHT_ROWS: usize = 4;

/// Packed input per chunk of tiles: small enough to stay in the L2 cache while every weight
/// row passes over it.
const CHUNK_BYTES: usize = 192 << 10;

/// Whether this CPU runs the kernel (AVX2 with its integer multiplies, FMA, F16C).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::has_avx2_fma() && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Input rows in 8 bits, packed by tiles: for tile t and block b, `values[(t * blocks + b) *
/// 256..]` holds, for each group g of 4 values, the 4 values of rows 0..8 (32 bytes), and
/// `scales[(t * blocks + b) * 8..]` the 8 rows' scales. Rows past the input are zero.
struct PackedRows {
    tiles: usize,
    blocks: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
}

impl PackedRows {
    /// Quantizes like llama.cpp (scale = max |x| / 127 per block, values rounded to nearest),
    /// so the products equal those of the decode path's 8-bit inputs.
    fn new(xs: &[f32], k: usize) -> Self {
        let m = xs.len() / k;
        let blocks = k / BLOCK;
        let tiles = m.div_ceil(TILE_ROWS);
        let mut values = vec![0i8; tiles * blocks * TILE_BLOCK_BYTES];
        let mut scales = vec![0f32; tiles * blocks * TILE_ROWS];
        values
            .par_chunks_mut(blocks * TILE_BLOCK_BYTES)
            .zip(scales.par_chunks_mut(blocks * TILE_ROWS))
            .enumerate()
            .for_each(|(tile, (values, scales))| {
                let first = tile * TILE_ROWS;
                for r in 0..TILE_ROWS.min(m - first) {
                    let row = &xs[(first + r) * k..(first + r + 1) * k];
                    for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                        let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let d = max / 127.0;
                        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                        scales[b * TILE_ROWS + r] = d;
                        let out = &mut values[b * TILE_BLOCK_BYTES..(b + 1) * TILE_BLOCK_BYTES];
                        for (i, v) in block.iter().enumerate() {
                            out[(i / 4) * TILE_ROWS * 4 + r * 4 + i % 4] = (v * inv).round() as i8;
                        }
                    }
                }
            });
        Self {
            tiles,
            blocks,
            values,
            scales,
        }
    }

    fn tile_values(&self, tile: usize) -> &[i8] {
        let len = self.blocks * TILE_BLOCK_BYTES;
        &self.values[tile * len..(tile + 1) * len]
    }

    fn tile_scales(&self, tile: usize) -> &[f32] {
        let len = self.blocks * TILE_ROWS;
        &self.scales[tile * len..(tile + 1) * len]
    }
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and the q8_0 matrix `w` (n, k), y being
/// m x n. Needs [`available`]; the caller checks the shapes.
pub fn add_rows_times(xs: &[f32], w: Q8Matrix, y: &mut [f32]) {
    let Q8Matrix { blocks, n, k } = w;
    let m = xs.len() / k;
    let packed = PackedRows::new(xs, k);
    let row_bytes = packed.blocks * BLOCK_BYTES;
    let tiles_per_chunk = (CHUNK_BYTES / (packed.blocks * TILE_BLOCK_BYTES)).max(1);
    let out = SyncPtr(y.as_mut_ptr());
    for chunk in (0..packed.tiles).step_by(tiles_per_chunk) {
        let chunk = chunk..(chunk + tiles_per_chunk).min(packed.tiles);
        (0..n.div_ceil(WEIGHT_ROWS))
            .into_par_iter()
            .with_min_len(4)
            .for_each(|group| {
                let first = group * WEIGHT_ROWS;
                let rows = WEIGHT_ROWS.min(n - first);
                let weights = &blocks[first * row_bytes..(first + rows) * row_bytes];
                for tile in chunk.clone() {
                    let mut sums = [[0f32; TILE_ROWS]; WEIGHT_ROWS];
                    tile_product(&packed, tile, weights, rows, &mut sums);
                    let first_row = tile * TILE_ROWS;
                    for r in 0..TILE_ROWS.min(m - first_row) {
                        // SAFETY: each group of weight rows is handed to one task, so these
                        // columns of the output rows are written by it alone; y is m x n.
                        let y = unsafe {
                            std::slice::from_raw_parts_mut(
                                out.get().add((first_row + r) * n + first),
                                rows,
                            )
                        };
                        for (c, y) in y.iter_mut().enumerate() {
                            *y += sums[c][r];
                        }
                    }
                }
            });
    }
}

/// `sums[c][r] = dot(input row r of the tile, weight row c)` for the first `rows` weight rows
/// of `weights` (q8_0 rows, one after another).
fn tile_product(
    packed: &PackedRows,
    tile: usize,
    weights: &[u8],
    rows: usize,
    sums: &mut [[f32; TILE_ROWS]; WEIGHT_ROWS],
) {
    let (values, scales) = (packed.tile_values(tile), packed.tile_scales(tile));
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features were just detected; the slices have the packed shapes.
        unsafe {
            match rows {
                4 => tile_product_avx2::<4>(values, scales, weights, packed.blocks, sums),
                3 => tile_product_avx2::<3>(values, scales, weights, packed.blocks, sums),
                2 => tile_product_avx2::<2>(values, scales, weights, packed.blocks, sums),
                _ => tile_product_avx2::<1>(values, scales, weights, packed.blocks, sums),
            }
        }
        return;
    }
    tile_product_portable(values, scales, weights, rows, packed.blocks, sums);
}

/// The same sums in plain loops: the reference the SIMD kernel is tested against.
fn tile_product_portable(
    values: &[i8],
    scales: &[f32],
    weights: &[u8],
    rows: usize,
    blocks: usize,
    sums: &mut [[f32; TILE_ROWS]; WEIGHT_ROWS],
) {
    for (c, sums) in sums.iter_mut().enumerate().take(rows) {
        let row = &weights[c * blocks * BLOCK_BYTES..(c + 1) * blocks * BLOCK_BYTES];
        for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
            let dw = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            let x = &values[b * TILE_BLOCK_BYTES..(b + 1) * TILE_BLOCK_BYTES];
            for (r, sum) in sums.iter_mut().enumerate() {
                let dot: i32 = (0..BLOCK)
                    .map(|i| block[2 + i] as i8 as i32 * x[(i / 4) * 32 + r * 4 + i % 4] as i32)
                    .sum();
                *sum += dot as f32 * dw * scales[b * TILE_ROWS + r];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_product_avx2<const ROWS: usize>(
    values: &[i8],
    scales: &[f32],
    weights: &[u8],
    blocks: usize,
    sums: &mut [[f32; TILE_ROWS]; WEIGHT_ROWS],
) {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let row_bytes = blocks * BLOCK_BYTES;
    let w = weights.as_ptr();
    let mut acc = [_mm256_setzero_ps(); ROWS];
    for b in 0..blocks {
        let mut dots = [_mm256_setzero_si256(); ROWS];
        let x = values.as_ptr().add(b * TILE_BLOCK_BYTES);
        for g in 0..BLOCK / 4 {
            let xv = _mm256_loadu_si256(x.add(g * 32).cast());
            let magnitudes = _mm256_abs_epi8(xv);
            for (c, dot) in dots.iter_mut().enumerate() {
                let four = w.add(c * row_bytes + b * BLOCK_BYTES + 2 + g * 4);
                let wv = _mm256_set1_epi32(four.cast::<i32>().read_unaligned());
                // The weight with x's sign, against |x|: see the module doc.
                let pairs = _mm256_maddubs_epi16(magnitudes, _mm256_sign_epi8(wv, xv));
                *dot = _mm256_add_epi32(*dot, _mm256_madd_epi16(pairs, ones));
            }
        }
        let dx = _mm256_loadu_ps(scales.as_ptr().add(b * TILE_ROWS));
        for (c, acc) in acc.iter_mut().enumerate() {
            let bits = w
                .add(c * row_bytes + b * BLOCK_BYTES)
                .cast::<u16>()
                .read_unaligned();
            let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)));
            let scale = _mm256_mul_ps(dx, _mm256_set1_ps(dw));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[c]), scale, *acc);
        }
    }
    for (c, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(sums[c].as_mut_ptr(), *acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 2654435761) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn q8(n: usize, k: usize) -> QTensor {
        let w = Tensor::from_vec(values(n * k, 7), (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()
    }

    /// The packed inputs against a direct computation of every product, and the SIMD kernel
    /// against the plain loops, for every count of weight rows and a partial last tile.
    #[test]
    fn tiles_match_the_plain_product_of_the_8_bit_values() {
        let (m, n, k) = (13, 7, 96);
        let q = q8(n, k);
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        let xs: Vec<f32> = values(m * k, 3).iter().map(|v| v * 3.0).collect();
        let packed = PackedRows::new(&xs, k);
        assert_eq!((packed.tiles, packed.blocks), (2, 3));
        let dense = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for tile in 0..packed.tiles {
            for first in [0, 4] {
                let rows = WEIGHT_ROWS.min(n - first);
                let weights = &w.blocks[first * 3 * BLOCK_BYTES..(first + rows) * 3 * BLOCK_BYTES];
                let mut fast = [[0f32; TILE_ROWS]; WEIGHT_ROWS];
                tile_product(&packed, tile, weights, rows, &mut fast);
                let mut plain = [[0f32; TILE_ROWS]; WEIGHT_ROWS];
                let (v, s) = (packed.tile_values(tile), packed.tile_scales(tile));
                tile_product_portable(v, s, weights, rows, 3, &mut plain);
                for c in 0..rows {
                    for r in 0..TILE_ROWS {
                        let row = tile * TILE_ROWS + r;
                        // Direct: each input value rounded to its block's 8-bit step.
                        let want: f32 = if row < m {
                            (0..k)
                                .map(|i| {
                                    let block = &xs[row * k + i / 32 * 32..][..32];
                                    let d = block.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                                    (xs[row * k + i] / d).round() * d * dense[first + c][i]
                                })
                                .sum()
                        } else {
                            0.0
                        };
                        assert!((plain[c][r] - want).abs() < 1e-4, "plain {c} {r}");
                        assert!((fast[c][r] - plain[c][r]).abs() < 1e-4, "fast {c} {r}");
                    }
                }
            }
        }
    }

    /// The whole product, over several chunks of tiles and a weight-row count that is not a
    /// multiple of four, adds to y and equals the decode path's 8-bit product.
    #[test]
    fn products_over_chunks_equal_the_decode_path() {
        let (n, k) = (10, 4096);
        let m = CHUNK_BYTES / (k / BLOCK * TILE_BLOCK_BYTES) * TILE_ROWS * 2 + 5;
        let q = q8(n, k);
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        let xs: Vec<f32> = values(m * k, 11).iter().map(|v| v * 0.5).collect();
        let mut got = vec![1f32; m * n];
        add_rows_times(&xs, w, &mut got);
        // One row at a time takes the decode path (8-bit inputs, dot products per row).
        for (row, got) in xs.chunks_exact(k).zip(got.chunks_exact(n)) {
            let want = crate::kernels::q8::rows_times(row, w).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 1.0 - w).abs() < 1e-3, "{g} - 1 vs {w}");
            }
        }
    }
}
