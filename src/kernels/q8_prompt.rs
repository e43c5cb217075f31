//! Products of many input rows (a prompt) with q8_0 weights in 8-bit integer arithmetic.
//!
//! **Layout.** The weights stay the q8_0 blocks they are stored as (the decode kernel and the
//! library read them so; a second, re-tiled copy would double the 8-bit model's memory). Each
//! product copies 16 weight rows at a time, a *panel*, into a scratch layout made for the
//! registers: per 32-value block and group of 4 values, the 4 bytes of 8 weight rows side by
//! side (one 256-bit register for 8 rows, two for the panel), their magnitudes likewise, and
//! the 16 scales in f32. The panel (100 KB at most for 3072 inputs) stays in cache while every
//! input row passes over it, so the copy costs about one part in a hundred of the product.
//!
//! **Arithmetic.** The inputs are rounded to 8 bits per block as for decoding (`q8_inputs`).
//! A tile of input rows meets the panel: 4 bytes of one row, broadcast to every lane, against
//! a register of 8 weight rows. `maddubs` multiplies unsigned by signed bytes and adds pairs
//! with saturation to 16 bits: with the weights' magnitudes on the unsigned side and the input
//! carrying the weights' signs (`sign`), every pair sums to at most 2 * 127 * 127 = 32258, so
//! nothing saturates; `madd` with ones adds those pairs to 32 bits. After each block the sums
//! are turned to f32 and added times the two scales. That is 4 vector instructions per 32
//! multiply-adds (without the sign, the unsigned side would need an offset of 128, and then
//! pairs can saturate: AVX2 has no exact 3-instruction form); an f32 FMA does 8.

use std::cell::RefCell;

use rayon::prelude::*;

use super::q8_format::{Q8Matrix, BLOCK, BLOCK_BYTES};
use super::q8_inputs::QuantizedRows;
use super::SyncPtr;

/// Weight rows (outputs) per panel: two registers of 8.
const PANEL: usize = 16;

/// Groups of 4 values per block.
const GROUPS: usize = BLOCK / 4;

/// Bytes of one block of a panel: 4 bytes of every panel row for each group.
const PANEL_BLOCK_BYTES: usize = GROUPS * PANEL * 4;

/// Bytes of the panels one task lays out and keeps in cache: half the L2 cache of a core.
const GROUP_BYTES: usize = 256 << 10;

/// Input rows per tile: with two registers of sums per row, for the block and for the whole
/// row, 4 rows fill the 16 registers of AVX2 with what the compiler keeps beside them.
const TILE_ROWS: usize = 4;

/// Whether this CPU runs the kernel (AVX2 with its integer multiplies, and FMA).
pub fn available() -> bool {
    super::has_avx2_fma()
}

/// 16 weight rows laid out for the kernel: for block b, group g and half h (rows 8h..8h+8),
/// `values[b * 512 + g * 64 + h * 32..]` holds 4 bytes of each of the 8 rows, `magnitudes`
/// the same bytes' absolute values, and `scales[b * 16..]` the 16 rows' scales. Rows past the
/// matrix are zero.
#[derive(Default)]
struct Panel {
    values: Vec<i8>,
    magnitudes: Vec<u8>,
    scales: Vec<f32>,
}

thread_local! {
    /// Each thread's panels, kept from product to product: allocating them per task cost
    /// more than laying them out.
    static PANELS: RefCell<Vec<Panel>> = const { RefCell::new(Vec::new()) };
}

impl Panel {
    /// Copies the q8_0 rows `rows` (at most 16 of them, `blocks` blocks each) in.
    fn fill(&mut self, rows: &[u8], blocks: usize) {
        self.values.resize(blocks * PANEL_BLOCK_BYTES, 0);
        self.magnitudes.resize(blocks * PANEL_BLOCK_BYTES, 0);
        self.scales.resize(blocks * PANEL, 0.0);
        let row_bytes = blocks * BLOCK_BYTES;
        let count = rows.len() / row_bytes;
        if count < PANEL {
            self.values.fill(0);
            self.scales.fill(0.0);
        }
        for (j, row) in rows.chunks_exact(row_bytes).enumerate() {
            let (h, lane) = (j / 8, j % 8);
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                self.scales[b * PANEL + j] =
                    half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                for g in 0..GROUPS {
                    let at = b * PANEL_BLOCK_BYTES + g * 64 + h * 32 + lane * 4;
                    for (v, &q) in self.values[at..at + 4].iter_mut().zip(&block[2 + 4 * g..]) {
                        *v = q as i8;
                    }
                }
            }
        }
        for (m, v) in self.magnitudes.iter_mut().zip(&self.values) {
            *m = v.unsigned_abs();
        }
    }
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and the q8_0 matrix `w` (n, k), y being
/// m x n. Needs [`available`]; the caller checks the shapes.
pub fn add_rows_times(xs: &[f32], w: Q8Matrix, y: &mut [f32]) {
    let Q8Matrix { blocks, n, k } = w;
    let m = xs.len() / k;
    let inputs = QuantizedRows::new(xs, k, m.div_ceil(TILE_ROWS) * TILE_ROWS);
    let (blocks_per_row, panels) = (k / BLOCK, n.div_ceil(PANEL));
    let row_bytes = blocks_per_row * BLOCK_BYTES;
    // Panels per task: as many as fill half the L2 cache, leaving tasks for every thread.
    let panel_bytes = blocks_per_row * (2 * PANEL_BLOCK_BYTES + PANEL * 4);
    let per_task = (GROUP_BYTES / panel_bytes)
        .min(panels / (4 * rayon::current_num_threads()))
        .max(1);
    let tiles = m.div_ceil(TILE_ROWS);
    let out = SyncPtr(y.as_mut_ptr());
    (0..panels.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            PANELS.with_borrow_mut(|group| {
                let panels = task * per_task..((task + 1) * per_task).min(panels);
                group.resize_with(panels.len(), Panel::default);
                for (panel, p) in group.iter_mut().zip(panels.clone()) {
                    let rows = p * PANEL..((p + 1) * PANEL).min(n);
                    panel.fill(
                        &blocks[rows.start * row_bytes..rows.end * row_bytes],
                        blocks_per_row,
                    );
                }
                let first = panels.start * PANEL;
                let columns = (panels.end * PANEL).min(n) - first;
                for tile in 0..tiles {
                    // The outputs a task adds to are a few hundred bytes of rows 3 to 12 KB
                    // apart, seldom in cache: asking for the next tile's early saves waiting for
                    // them (an eighth of the time, one panel per task).
                    for row in (tile + 1) * TILE_ROWS..((tile + 2) * TILE_ROWS).min(m) {
                        prefetch(out.get().wrapping_add(row * n + first), columns);
                    }
                    for (i, panel) in group.iter().enumerate() {
                        let sums = tile_product(&inputs, tile * TILE_ROWS, panel);
                        let columns = first + i * PANEL..(first + (i + 1) * PANEL).min(n);
                        for (r, sums) in sums.iter().enumerate().take(m - tile * TILE_ROWS) {
                            // SAFETY: each panel is handed to one task, so these columns of the
                            // output rows are written by it alone; y is m x n.
                            let y = unsafe {
                                std::slice::from_raw_parts_mut(
                                    out.get().add((tile * TILE_ROWS + r) * n + columns.start),
                                    columns.len(),
                                )
                            };
                            y.iter_mut().zip(sums).for_each(|(y, s)| *y += s);
                        }
                    }
                }
            })
        });
}

/// Asks the cache for the `len` values from `p` (a hint: it reads nothing itself).
fn prefetch(p: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len).step_by(16).chain([len - 1]) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                p.wrapping_add(offset).cast(),
            )
        };
    }
}

/// Dot products of input rows `first..first + 4` with the 16 panel rows.
fn tile_product(inputs: &QuantizedRows, first: usize, panel: &Panel) -> [[f32; PANEL]; TILE_ROWS] {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features were just detected; the inputs hold whole tiles of rows and
        // the panel matches their k.
        return unsafe { tile_product_avx2(inputs, first, panel) };
    }
    tile_product_portable(inputs, first, panel)
}

/// The same sums in plain loops: the reference the SIMD kernel is tested against.
fn tile_product_portable(
    inputs: &QuantizedRows,
    first: usize,
    panel: &Panel,
) -> [[f32; PANEL]; TILE_ROWS] {
    std::array::from_fn(|r| {
        let (x, dx) = inputs.row(first + r);
        std::array::from_fn(|j| {
            let (h, lane) = (j / 8, j % 8);
            (0..dx.len())
                .map(|b| {
                    let dot: i32 = (0..BLOCK)
                        .map(|i| {
                            let at = b * PANEL_BLOCK_BYTES + i / 4 * 64 + h * 32 + lane * 4 + i % 4;
                            i32::from(panel.values[at]) * i32::from(x[b * BLOCK + i])
                        })
                        .sum();
                    dot as f32 * panel.scales[b * PANEL + j] * dx[b]
                })
                .sum()
        })
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_product_avx2(
    inputs: &QuantizedRows,
    first: usize,
    panel: &Panel,
) -> [[f32; PANEL]; TILE_ROWS] {
    use std::arch::x86_64::*;
    let k = inputs.k;
    let blocks = k / BLOCK;
    let x = inputs.values.as_ptr().add(first * k);
    let dx = inputs.scales.as_ptr().add(first * blocks);
    let (values, magnitudes) = (panel.values.as_ptr(), panel.magnitudes.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; TILE_ROWS];
    for b in 0..blocks {
        let mut dots = [[_mm256_setzero_si256(); 2]; TILE_ROWS];
        for g in 0..GROUPS {
            let at = b * PANEL_BLOCK_BYTES + g * 64;
            let w = [0, 32].map(|h| _mm256_loadu_si256(values.add(at + h).cast()));
            let m = [0, 32].map(|h| _mm256_loadu_si256(magnitudes.add(at + h).cast()));
            for (r, dots) in dots.iter_mut().enumerate() {
                let four = x
                    .add(r * k + b * BLOCK + g * 4)
                    .cast::<i32>()
                    .read_unaligned();
                let xb = _mm256_set1_epi32(four);
                for h in 0..2 {
                    // |w| * (x with w's sign) = w * x: see the module doc.
                    let pairs = _mm256_maddubs_epi16(m[h], _mm256_sign_epi8(xb, w[h]));
                    dots[h] = _mm256_add_epi32(dots[h], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        let dw = [0, 8].map(|h| _mm256_loadu_ps(panel.scales.as_ptr().add(b * PANEL + h)));
        for (r, (acc, dots)) in acc.iter_mut().zip(&dots).enumerate() {
            let dx = _mm256_set1_ps(*dx.add(r * blocks + b));
            for h in 0..2 {
                let scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(dots[h]), dw[h]);
                acc[h] = _mm256_fmadd_ps(scaled, dx, acc[h]);
            }
        }
    }
    let mut sums = [[0f32; PANEL]; TILE_ROWS];
    for (sums, acc) in sums.iter_mut().zip(&acc) {
        _mm256_storeu_ps(sums.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(sums.as_mut_ptr().add(8), acc[1]);
    }
    sums
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

    /// The panel and a tile against a direct computation of every product from the 8-bit
    /// values, and the SIMD kernel against the plain loops, for a full panel and a partial
    /// one (7 rows) and a partial tile.
    #[test]
    fn tiles_match_the_plain_product_of_the_8_bit_values() {
        let (m, n, k) = (6, PANEL + 7, 96);
        let q = q8(n, k);
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        let xs: Vec<f32> = values(m * k, 3).iter().map(|v| v * 3.0).collect();
        let inputs = QuantizedRows::new(&xs, k, 2 * TILE_ROWS);
        let dense = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let row_bytes = k / BLOCK * BLOCK_BYTES;
        let mut panel = Panel::default();
        for first in [0, PANEL] {
            let columns = PANEL.min(n - first);
            panel.fill(
                &w.blocks[first * row_bytes..(first + columns) * row_bytes],
                k / BLOCK,
            );
            for tile in 0..2 {
                let fast = tile_product(&inputs, tile * TILE_ROWS, &panel);
                let plain = tile_product_portable(&inputs, tile * TILE_ROWS, &panel);
                for r in 0..TILE_ROWS {
                    let row = tile * TILE_ROWS + r;
                    for j in 0..PANEL {
                        // Direct: each input value rounded to its block's 8-bit step.
                        let want: f32 = if row < m && j < columns {
                            (0..k)
                                .map(|i| {
                                    let block = &xs[row * k + i / 32 * 32..][..32];
                                    let d = block.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                                    (xs[row * k + i] / d).round() * d * dense[first + j][i]
                                })
                                .sum()
                        } else {
                            0.0
                        };
                        let (p, f) = (plain[r][j], fast[r][j]);
                        assert!((p - want).abs() < 1e-4, "plain {row} {j}: {p} vs {want}");
                        assert!((f - p).abs() < 1e-4, "fast {row} {j}: {f} vs {p}");
                    }
                }
            }
        }
    }

    /// The whole product, over several panels (the last partial) and a partial last tile, adds
    /// to y and equals the decode path's 8-bit product; also with tasks of two panels each and
    /// a last task of one, with the largest inputs (k = 3072, the MLP's) and a single block
    /// (k = 32).
    #[test]
    fn products_equal_the_decode_path() {
        let two_per_task = PANEL * 8 * rayon::current_num_threads() + 5;
        for (m, n, k) in [
            (37, 3 * PANEL + 5, 256),
            (6, two_per_task, 64),
            (9, PANEL + 1, 3072),
            (5, 3, 32),
        ] {
            let q = q8(n, k);
            let w = Q8Matrix::of(&q).unwrap().unwrap();
            let xs: Vec<f32> = values(m * k, 11).iter().map(|v| v * 0.5).collect();
            let mut got = vec![1f32; m * n];
            add_rows_times(&xs, w, &mut got);
            // One row at a time takes the decode path (8-bit inputs, dot products per row).
            for (row, got) in xs.chunks_exact(k).zip(got.chunks_exact(n)) {
                let want = crate::kernels::q8::rows_times(row, w).unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - 1.0 - w).abs() < 1e-3,
                        "({m}, {n}, {k}): {g} - 1 vs {w}"
                    );
                }
            }
        }
    }
}
