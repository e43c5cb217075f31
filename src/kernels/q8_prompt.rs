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
//!
//! **With AVX-512 VNNI** one `vpdpbusd` does 64 such multiply-adds straight into 32 bits: a
//! register holds 4 bytes of all 16 panel rows, and the input's 4 bytes come as its broadcast
//! operand, read from memory. It multiplies unsigned by signed bytes, and VNNI has no `sign`
//! for 512-bit registers, so the panel keeps the weights offset by 128 (`w + 128`, flipping the
//! top bit) and each block's sums start at `-128 * sum(x)` of the input block, which cancels the
//! offset exactly. A tile is 7 input rows against two panels (32 weight rows) at once.
//!
//! **Formats stored unsigned** (q4_0 and q5_0, their values offset by 8 and 16; the K formats)
//! fill the panels with their stored values, which both kernels take as they are, sums
//! starting at `-offset * sum(x)`. With AVX2 those values are under 64, so `maddubs` needs no
//! `sign` and two groups' pairs add in 16 bits before widening.

use rayon::prelude::*;

use super::k_formats::{KFormat, SUPER};
use super::prompt_panel::{Kernel, Panel, GROUPS, PANEL, PANELS, PANEL_BLOCK_BYTES};
use super::q8_format::{Q8Matrix, BLOCK, BLOCK_BYTES};
use super::q8_inputs::QuantizedRows;
use super::SyncPtr;

/// Bytes of the panels one task lays out and keeps in cache: half the L2 cache of a core (256
/// KB of Zen 3's 512, 1 MB of this Xeon's 2 MB, where 256 KB made the medium shape's prompts
/// a fifth slower: more tasks, each reading every input row again), 256 KB where the size is
/// not known.
fn group_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: sysconf only reads a system setting.
        let l2 = unsafe { libc::sysconf(libc::_SC_LEVEL2_CACHE_SIZE) };
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let l2 = 0;
        match l2 {
            l2 if l2 >= 256 << 10 => (l2 as usize / 2).min(4 << 20),
            _ => 256 << 10,
        }
    })
}

/// Input rows per tile: with two registers of sums per row, for the block and for the whole
/// row, 4 rows fill the 16 registers of AVX2 with what the compiler keeps beside them.
const TILE_ROWS: usize = 4;

/// Input rows per tile of the VNNI kernel, which meets two panels at once: 7 rows of sums for
/// 32 weight rows, per block and in all, take 28 of AVX-512's 32 registers (6 measured 3% slower).
const VNNI_TILE_ROWS: usize = 7;

/// Whether this CPU runs the kernel (AVX2 with its integer multiplies, and FMA).
pub fn available() -> bool {
    super::has_avx2_fma()
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and the q8_0 matrix `w` (n, k), y being
/// m x n. Needs [`available`]; the caller checks the shapes.
pub fn add_rows_times(xs: &[f32], w: Q8Matrix, y: &mut [f32]) {
    add_rows_times_with(Kernel::detected(), xs, w, y)
}

/// [`add_rows_times`] with the given kernel, which the CPU must have.
fn add_rows_times_with(kernel: Kernel, xs: &[f32], w: Q8Matrix, y: &mut [f32]) {
    let m = xs.len() / w.k;
    let (blocks_per_row, row_bytes) = (w.k / BLOCK, w.k / BLOCK * BLOCK_BYTES);
    let fill = |panel: &mut Panel, rows: std::ops::Range<usize>| {
        let rows = &w.blocks[rows.start * row_bytes..rows.end * row_bytes];
        panel.fill(rows, blocks_per_row, kernel)
    };
    match kernel {
        // The panel holds the weights plus 128 (see `Panel::fill`).
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => add_offset_block_rows_times(kernel, xs, (w.n, w.k), 128, y, fill),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => {
            let inputs = QuantizedRows::new(xs, w.k, m.div_ceil(TILE_ROWS) * TILE_ROWS);
            add_tiles::<TILE_ROWS, 1>((w.n, w.k), y, fill, |first, [panel]| {
                // SAFETY: as above, for AVX2 and FMA.
                unsafe { tile_product_avx2(&inputs, first, panel) }.map(|row| [row])
            })
        }
        _ => {
            let inputs = QuantizedRows::new(xs, w.k, m.div_ceil(TILE_ROWS) * TILE_ROWS);
            add_tiles::<TILE_ROWS, 1>((w.n, w.k), y, fill, |first, [panel]| {
                tile_product_portable(&inputs, first, panel).map(|row| [row])
            })
        }
    }
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and a matrix (n, k) of 32-value
/// blocks with one scale each whose panels (`fill`) hold the values `offset` above the
/// weights (q8_0 plus 128, q4_0's stored 4 bits, 8 above; q5_0's 5 bits, 16 above), in the
/// VNNI or (for offsets whose values stay under 64: not q8_0's) the AVX2 kernel, which the CPU
/// must have: each block's sums start at `-offset * sum(x)`.
#[cfg(target_arch = "x86_64")]
pub(super) fn add_offset_block_rows_times(
    kernel: Kernel,
    xs: &[f32],
    (n, k): (usize, usize),
    offset: i32,
    y: &mut [f32],
    fill: impl Fn(&mut Panel, std::ops::Range<usize>) + Sync,
) {
    // AVX2's `maddubs` takes the unsigned values as they are only below 64 (q8_0's offset
    // values go to its signed tiles instead).
    debug_assert!(
        kernel == Kernel::Vnni || offset <= 32,
        "offset {offset} for {kernel:?}"
    );
    let m = xs.len() / k;
    let rows = QuantizedRows::new(xs, k, m.div_ceil(tile_rows(kernel)) * tile_rows(kernel));
    let inputs = TileInputs {
        rows: &rows,
        starts: Some((&rows.sums, -offset)),
        offset_sums: None,
    };
    add_unsigned_tiles::<BLOCK>(kernel, &inputs, (n, k), y, fill)
}

/// `y += xs @ w^T` for the rows of `xs` (m x k values) and the matrix `blocks` (n, k) in the
/// K format `F`, in the VNNI or the AVX2 kernel, which the CPU must have.
#[cfg(target_arch = "x86_64")]
pub(super) fn add_k_rows_times<F: KFormat>(
    kernel: Kernel,
    xs: &[f32],
    blocks: &[u8],
    n: usize,
    k: usize,
    y: &mut [f32],
) {
    let m = xs.len() / k;
    let rows = QuantizedRows::new(xs, k, m.div_ceil(tile_rows(kernel)) * tile_rows(kernel));
    // The stored values are unsigned; a centre of 32 (q6_K, scales per 16 values) comes back
    // out as -32 times each 16 inputs' sum.
    let sums16: Vec<i32> = match F::CENTRE {
        0 => Vec::new(),
        _ => rows
            .values
            .chunks_exact(16)
            .map(|g| g.iter().map(|&v| i32::from(v)).sum())
            .collect(),
    };
    // The minimums add an offset per block and weight row, times the block's input sum.
    let offset_sums: Vec<f32> = match F::MINS {
        true => rows
            .scales
            .iter()
            .zip(&rows.sums)
            .map(|(&d, &s)| d * s as f32)
            .collect(),
        false => Vec::new(),
    };
    let inputs = TileInputs {
        rows: &rows,
        starts: (F::CENTRE != 0).then_some((&sums16[..], -F::CENTRE)),
        offset_sums: F::MINS.then_some(&offset_sums[..]),
    };
    let (supers, row_bytes) = (k / SUPER, k / SUPER * F::BYTES);
    let fill = |panel: &mut Panel, rows: std::ops::Range<usize>| {
        panel.fill_k::<F>(
            &blocks[rows.start * row_bytes..rows.end * row_bytes],
            supers,
        )
    };
    match F::GROUP {
        16 => add_unsigned_tiles::<16>(kernel, &inputs, (n, k), y, fill),
        _ => add_unsigned_tiles::<BLOCK>(kernel, &inputs, (n, k), y, fill),
    }
}

/// Input rows per tile of `kernel` over unsigned panels.
#[cfg(target_arch = "x86_64")]
fn tile_rows(kernel: Kernel) -> usize {
    match kernel {
        Kernel::Vnni => VNNI_TILE_ROWS,
        Kernel::Avx2 | Kernel::Portable => TILE_ROWS,
    }
}

/// The product of `inputs` with panels of unsigned values and one scale per `G` values
/// (`fill`), in `kernel`: VNNI's tiles of two panels, or AVX2's of one. There are no plain
/// tiles for these panels: without AVX2 the callers leave the product to the library or
/// widen the weights to q8_0.
#[cfg(target_arch = "x86_64")]
fn add_unsigned_tiles<const G: usize>(
    kernel: Kernel,
    inputs: &TileInputs,
    (n, k): (usize, usize),
    y: &mut [f32],
    fill: impl Fn(&mut Panel, std::ops::Range<usize>) + Sync,
) {
    match kernel {
        Kernel::Vnni => add_tiles::<VNNI_TILE_ROWS, 2>((n, k), y, fill, |first, panels| {
            // SAFETY: the caller checked the CPU; the inputs hold whole tiles of rows and the
            // panels match their k.
            unsafe { tile_product_vnni::<G>(inputs, first, panels) }
        }),
        Kernel::Avx2 => add_tiles::<TILE_ROWS, 1>((n, k), y, fill, |first, [panel]| {
            // SAFETY: as above, for AVX2 and FMA.
            unsafe { tile_product_avx2_unsigned::<G>(inputs, first, panel) }.map(|row| [row])
        }),
        Kernel::Portable => unreachable!("unsigned panels are only filled for VNNI and AVX2"),
    }
}

/// The product in tiles of `R` input rows against panels of 16 weight rows of the (n, k)
/// matrix, which `fill(panel, rows)` lays out; `tile(first, panels)` gives the sums of input
/// rows `first..first + R`.
fn add_tiles<const R: usize, const P: usize>(
    (n, k): (usize, usize),
    y: &mut [f32],
    fill: impl Fn(&mut Panel, std::ops::Range<usize>) + Sync,
    tile: impl Fn(usize, [&Panel; P]) -> [[[f32; PANEL]; P]; R] + Sync,
) {
    let m = y.len() / n;
    let (blocks_per_row, panels) = (k / BLOCK, n.div_ceil(PANEL));
    // Panels per task: as many as fill half the L2 cache, leaving tasks for every thread.
    let panel_bytes = blocks_per_row * (2 * PANEL_BLOCK_BYTES + PANEL * 4);
    let per_task = (group_bytes() / panel_bytes)
        .min(panels / (4 * rayon::current_num_threads()))
        .max(1);
    let tiles = m.div_ceil(R);
    let out = SyncPtr(y.as_mut_ptr());
    (0..panels.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            PANELS.with_borrow_mut(|group| {
                let panels = task * per_task..((task + 1) * per_task).min(panels);
                group.resize_with(panels.len(), Panel::default);
                for (panel, p) in group.iter_mut().zip(panels.clone()) {
                    let rows = p * PANEL..((p + 1) * PANEL).min(n);
                    fill(panel, rows);
                }
                let first = panels.start * PANEL;
                let columns = (panels.end * PANEL).min(n) - first;
                for t in 0..tiles {
                    // The outputs a task adds to are a few hundred bytes of rows 3 to 12 KB
                    // apart, seldom in cache: asking for the next tile's early saves waiting for
                    // them (an eighth of the time, one panel per task).
                    for row in (t + 1) * R..((t + 2) * R).min(m) {
                        prefetch(out.get().wrapping_add(row * n + first), columns);
                    }
                    for (c, panels) in group.chunks(P).enumerate() {
                        // A last chunk short of P panels repeats its last one; those sums are
                        // dropped below.
                        let sums = tile(
                            t * R,
                            std::array::from_fn(|i| &panels[i.min(panels.len() - 1)]),
                        );
                        for (i, _) in panels.iter().enumerate() {
                            let p = c * P + i;
                            let columns = first + p * PANEL..(first + (p + 1) * PANEL).min(n);
                            for (r, sums) in sums.iter().enumerate().take(m - t * R) {
                                // SAFETY: each panel is handed to one task, so these columns of
                                // the output rows are written by it alone; y is m x n.
                                let y = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        out.get().add((t * R + r) * n + columns.start),
                                        columns.len(),
                                    )
                                };
                                y.iter_mut().zip(&sums[i]).for_each(|(y, s)| *y += s);
                            }
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

/// The same sums in plain loops: the reference the SIMD kernel is tested against.
fn tile_product_portable(
    inputs: &QuantizedRows,
    first: usize,
    panel: &Panel,
) -> [[f32; PANEL]; TILE_ROWS] {
    std::array::from_fn(|r| {
        let (x, dx, _) = inputs.row(first + r);
        std::array::from_fn(|j| {
            let (h, lane) = (j / 8, j % 8);
            (0..dx.len())
                .map(|b| {
                    let dot: i32 = (0..BLOCK)
                        .map(|i| {
                            let at = b * PANEL_BLOCK_BYTES + i / 4 * 64 + h * 32 + lane * 4 + i % 4;
                            i32::from(panel.values[at] as i8) * i32::from(x[b * BLOCK + i])
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
    let (values, magnitudes) = (panel.values.as_ptr(), panel.unsigned.as_ptr());
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

/// [`tile_product_avx2`] for panels of unsigned values under 64 (q4_0 and q5_0 as stored,
/// the K formats' stored values), one scale per `G` values (32, or 16 for q6_K), each group's
/// sums starting at `factor * sum(x)` and then the panels' offsets times the blocks' input
/// sums, as in [`tile_product_vnni`]. `maddubs` takes the unsigned weights as they are (no
/// `sign`: 3 instructions per 32 multiply-adds), and two groups' pairs add in 16 bits before
/// `madd` widens them: each pair is at most 2 * 63 * 127, two of them under 2^15.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_product_avx2_unsigned<const G: usize>(
    inputs: &TileInputs,
    first: usize,
    panel: &Panel,
) -> [[f32; PANEL]; TILE_ROWS] {
    use std::arch::x86_64::*;
    const R: usize = TILE_ROWS;
    let k = inputs.rows.k;
    let (blocks, groups) = (k / BLOCK, k / G);
    let x = inputs.rows.values.as_ptr().add(first * k);
    let dx = inputs.rows.scales.as_ptr().add(first * blocks);
    let unsigned = panel.unsigned.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for b in 0..blocks {
        for half in 0..BLOCK / G {
            let group = b * (BLOCK / G) + half;
            let mut dots: [[__m256i; 2]; R] = std::array::from_fn(|r| {
                let start = match inputs.starts {
                    Some((sums, factor)) => _mm256_set1_epi32(
                        factor * *sums.get_unchecked((first + r) * groups + group),
                    ),
                    None => _mm256_setzero_si256(),
                };
                [start, start]
            });
            for g in (half * (G / 4)..(half + 1) * (G / 4)).step_by(2) {
                let at = b * PANEL_BLOCK_BYTES + g * 64;
                let w = [0, 32, 64, 96].map(|h| _mm256_loadu_si256(unsigned.add(at + h).cast()));
                for (r, dots) in dots.iter_mut().enumerate() {
                    let fours = x.add(r * k + b * BLOCK + g * 4).cast::<i32>();
                    let xb = [0, 1].map(|i| _mm256_set1_epi32(fours.add(i).read_unaligned()));
                    for h in 0..2 {
                        let pairs = _mm256_add_epi16(
                            _mm256_maddubs_epi16(w[h], xb[0]),
                            _mm256_maddubs_epi16(w[2 + h], xb[1]),
                        );
                        dots[h] = _mm256_add_epi32(dots[h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            let dw = [0, 8].map(|h| _mm256_loadu_ps(panel.scales.as_ptr().add(group * PANEL + h)));
            for (r, (acc, dots)) in acc.iter_mut().zip(&dots).enumerate() {
                let dx = _mm256_set1_ps(*dx.add(r * blocks + b));
                for h in 0..2 {
                    let scale = _mm256_mul_ps(dw[h], dx);
                    acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots[h]), scale, acc[h]);
                }
            }
        }
        if let Some(sums) = inputs.offset_sums {
            let offsets =
                [0, 8].map(|h| _mm256_loadu_ps(panel.offsets.as_ptr().add(b * PANEL + h)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let sum = _mm256_set1_ps(*sums.get_unchecked((first + r) * blocks + b));
                for h in 0..2 {
                    acc[h] = _mm256_fmadd_ps(offsets[h], sum, acc[h]);
                }
            }
        }
    }
    let mut sums = [[0f32; PANEL]; R];
    for (sums, acc) in sums.iter_mut().zip(&acc) {
        _mm256_storeu_ps(sums.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(sums.as_mut_ptr().add(8), acc[1]);
    }
    sums
}

/// The quantized input rows as the VNNI kernel reads them, with what takes the panel's
/// offset back out.
struct TileInputs<'a> {
    rows: &'a QuantizedRows,
    /// Per group of `G` inputs (see [`tile_product_vnni`]), a sum of its 8-bit values, and the
    /// factor that makes it the group's start: the panel's values are the weights plus
    /// -factor (128 for q8_0, 32 for q6_K).
    starts: Option<(&'a [i32], i32)>,
    /// Per 32-value block, the sum of the inputs the block's offsets multiply (K formats
    /// with minimums).
    offset_sums: Option<&'a [f32]>,
}

/// The sums of input rows `first..first + 7` with the rows of two panels, in VNNI's dot
/// products, per group of `G` values (32, or 16 for q6_K's scales), each group's sums
/// starting at `factor * sum(x)`; then the panels' offsets times the blocks' input sums. Each
/// broadcast of an input's 4 bytes meets both panels, so 4 values cost 2 loads of weights and
/// 7 of inputs for 14 products.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_product_vnni<const G: usize>(
    inputs: &TileInputs,
    first: usize,
    panels: [&Panel; 2],
) -> [[[f32; PANEL]; 2]; VNNI_TILE_ROWS] {
    use std::arch::x86_64::*;
    const R: usize = VNNI_TILE_ROWS;
    let k = inputs.rows.k;
    let (blocks, groups) = (k / BLOCK, k / G);
    let x = inputs.rows.values.as_ptr().add(first * k);
    let dx = inputs.rows.scales.as_ptr().add(first * blocks);
    let unsigned = panels.map(|p| p.unsigned.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for b in 0..blocks {
        for half in 0..BLOCK / G {
            let group = b * (BLOCK / G) + half;
            let mut dots: [[__m512i; 2]; R] = std::array::from_fn(|r| {
                let start = match inputs.starts {
                    Some((sums, factor)) => _mm512_set1_epi32(
                        factor * *sums.get_unchecked((first + r) * groups + group),
                    ),
                    None => _mm512_setzero_si512(),
                };
                [start, start]
            });
            for g in half * (G / 4)..(half + 1) * (G / 4) {
                let at = b * PANEL_BLOCK_BYTES + g * 64;
                let w = unsigned.map(|u| _mm512_loadu_si512(u.add(at).cast()));
                for (r, dots) in dots.iter_mut().enumerate() {
                    let four = x
                        .add(r * k + b * BLOCK + g * 4)
                        .cast::<i32>()
                        .read_unaligned();
                    let xb = _mm512_set1_epi32(four);
                    dots[0] = _mm512_dpbusd_epi32(dots[0], w[0], xb);
                    dots[1] = _mm512_dpbusd_epi32(dots[1], w[1], xb);
                }
            }
            let dw = panels.map(|p| _mm512_loadu_ps(p.scales.as_ptr().add(group * PANEL)));
            for (r, (acc, dots)) in acc.iter_mut().zip(&dots).enumerate() {
                let dx = _mm512_set1_ps(*dx.add(r * blocks + b));
                for h in 0..2 {
                    let scale = _mm512_mul_ps(dw[h], dx);
                    acc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots[h]), scale, acc[h]);
                }
            }
        }
        if let Some(sums) = inputs.offset_sums {
            let offsets = panels.map(|p| _mm512_loadu_ps(p.offsets.as_ptr().add(b * PANEL)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let sum = _mm512_set1_ps(*sums.get_unchecked((first + r) * blocks + b));
                for h in 0..2 {
                    acc[h] = _mm512_fmadd_ps(offsets[h], sum, acc[h]);
                }
            }
        }
    }
    let mut sums = [[[0f32; PANEL]; 2]; R];
    for (sums, acc) in sums.iter_mut().zip(&acc) {
        for h in 0..2 {
            _mm512_storeu_ps(sums[h].as_mut_ptr(), acc[h]);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::values;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn q8(n: usize, k: usize) -> QTensor {
        let w = Tensor::from_vec(values(n * k, 7), (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()
    }

    /// The kernels this CPU has, the plain loops last.
    fn kernels() -> Vec<Kernel> {
        Kernel::all_this_cpu_runs()
    }

    /// The plain loops' tiles against a direct computation of every product from the 8-bit
    /// values, for a full panel and a partial one (7 rows) and a partial tile.
    #[test]
    fn plain_tiles_match_the_product_of_the_8_bit_values() {
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
            let rows = &w.blocks[first * row_bytes..(first + columns) * row_bytes];
            panel.fill(rows, k / BLOCK, Kernel::Portable);
            for tile in 0..2 {
                let plain = tile_product_portable(&inputs, tile * TILE_ROWS, &panel);
                for (r, plain) in plain.iter().enumerate() {
                    let row = tile * TILE_ROWS + r;
                    for (j, &p) in plain.iter().enumerate() {
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
                        assert!((p - want).abs() < 1e-4, "plain {row} {j}: {p} vs {want}");
                    }
                }
            }
        }
    }

    /// Every kernel this CPU has gives the plain loops' products, over several panels (the last
    /// partial), partial last tiles of each tile size, inputs with the largest magnitudes
    /// (where VNNI's offset of 128 must cancel exactly) and all-zero blocks.
    #[test]
    fn every_kernel_equals_the_plain_loops() {
        let (m, n, k) = (13, 3 * PANEL + 5, 128);
        let q = q8(n, k);
        let w = Q8Matrix::of(&q).unwrap().unwrap();
        let mut xs: Vec<f32> = values(m * k, 5).iter().map(|v| v * 4.0).collect();
        xs[2 * k..2 * k + BLOCK].fill(0.0);
        xs[3 * k..4 * k]
            .iter_mut()
            .for_each(|v| *v = v.signum() * 8.0);
        let mut plain = vec![0.5f32; m * n];
        add_rows_times_with(Kernel::Portable, &xs, w, &mut plain);
        for kernel in kernels() {
            let mut got = vec![0.5f32; m * n];
            add_rows_times_with(kernel, &xs, w, &mut got);
            for (i, (g, p)) in got.iter().zip(&plain).enumerate() {
                assert!((g - p).abs() < 1e-3, "{kernel:?} at {i}: {g} vs {p}");
            }
        }
    }

    /// The whole product, over several panels (the last partial) and a partial last tile, adds
    /// to y and equals the decode path's 8-bit product; also with tasks of two panels each and
    /// a last task of one, with the largest inputs (k = 3072, the MLP's) and a single block
    /// (k = 32); for every kernel this CPU has.
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
            for kernel in kernels() {
                let mut got = vec![1f32; m * n];
                add_rows_times_with(kernel, &xs, w, &mut got);
                // One row at a time takes the decode path (8-bit inputs, dot products per row).
                for (row, got) in xs.chunks_exact(k).zip(got.chunks_exact(n)) {
                    let want = crate::kernels::q8::rows_times(row, w).unwrap();
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - 1.0 - w).abs() < 1e-3,
                            "{kernel:?} ({m}, {n}, {k}): {g} - 1 vs {w}"
                        );
                    }
                }
            }
        }
    }
}
