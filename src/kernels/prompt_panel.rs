//! The panels of the 8-bit prompt kernel (`q8_prompt`): 16 weight rows at a time copied out of
//! their block format into the layout the registers want, from q8_0 blocks or from the K
//! formats' super-blocks.

use std::cell::RefCell;

use super::k_formats::{KFormat, SUPER};
use super::q8_format::{BLOCK, BLOCK_BYTES};

/// Weight rows (outputs) per panel: two registers of 8.
pub(super) const PANEL: usize = 16;

/// Bytes ahead in each of a panel's rows that the VNNI fill asks the cache for: it reads 16
/// rows at once, more streams than the hardware prefetcher follows, and waited on memory
/// (GPT-2 XL q8_0 prompts, with the gathers it had then: the fill took half as long as the
/// products it feeds; a quarter with this). 256 to 4096 bytes measured alike.
const PREFETCH_AHEAD: usize = 512;

/// Groups of 4 values per block.
pub(super) const GROUPS: usize = BLOCK / 4;

/// Bytes of one block of a panel: 4 bytes of every panel row for each group.
pub(super) const PANEL_BLOCK_BYTES: usize = GROUPS * PANEL * 4;

/// The kernels a tile can take: the dispatch of [`super::level`] for this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    Vnni,
    Avx2,
    Portable,
}

impl Kernel {
    pub(super) fn detected() -> Self {
        match super::level() {
            super::Level::Avx512Vnni => Self::Vnni,
            super::Level::Avx2 => Self::Avx2,
            super::Level::Portable => Self::Portable,
        }
    }

    /// Every kernel this CPU can run, the detected one first, so that tests on a CPU with the
    /// newest features check the older kernels too.
    #[cfg(test)]
    pub(super) fn all_this_cpu_runs() -> Vec<Self> {
        [Self::Vnni, Self::Avx2, Self::Portable]
            .into_iter()
            .filter(|&kernel| kernel as u8 >= Self::detected() as u8)
            .collect()
    }
}

/// 16 weight rows laid out for the kernel: for block b, group g and half h (rows 8h..8h+8),
/// `values[b * 512 + g * 64 + h * 32..]` holds 4 signed bytes of each of the 8 rows (so
/// `values[b * 512 + g * 64..]` holds 4 bytes of all 16 rows in order), and `scales[b * 16..]`
/// the 16 rows' scales. `unsigned` holds the same bytes as the kernel multiplies them: their
/// absolute values for AVX2, the values plus 128 for VNNI (see the module doc). Rows past the
/// matrix are zero.
#[derive(Default)]
pub(super) struct Panel {
    pub(super) values: Vec<u8>,
    pub(super) unsigned: Vec<u8>,
    pub(super) scales: Vec<f32>,
    /// Formats with minimums (q4_K, q5_K): per block and row, what each weight of the block
    /// adds beyond its scaled value (`offsets[b * 16 + j]`); empty for the others.
    pub(super) offsets: Vec<f32>,
}

thread_local! {
    /// Each thread's panels, kept from product to product: allocating them per task cost
    /// more than laying them out.
    pub(super) static PANELS: RefCell<Vec<Panel>> = const { RefCell::new(Vec::new()) };
}

impl Panel {
    /// Copies the q8_0 rows `rows` (at most 16 of them, `blocks` blocks each) in, in the forms
    /// `kernel` reads: the signed values for the plain loops and AVX2, their magnitudes for
    /// AVX2, the values plus 128 alone for VNNI.
    pub(super) fn fill(&mut self, rows: &[u8], blocks: usize, kernel: Kernel) {
        let len = blocks * PANEL_BLOCK_BYTES;
        self.scales.resize(blocks * PANEL, 0.0);
        self.offsets.clear();
        let row_bytes = blocks * BLOCK_BYTES;
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Vnni {
            self.unsigned.resize(len, 0);
            // SAFETY: `Kernel::Vnni` is only chosen where the CPU has the features; the
            // buffers were just sized for `blocks` blocks.
            return unsafe { self.fill_vnni(rows, blocks) };
        }
        let (bytes, flip) = match kernel {
            Kernel::Vnni => (&mut self.unsigned, 0x8080_8080),
            _ => (&mut self.values, 0),
        };
        bytes.resize(len, 0);
        if rows.len() / row_bytes < PANEL {
            // Rows past the matrix: their scales of 0 make their sums 0.
            bytes.fill(0);
            self.scales.fill(0.0);
        }
        for (j, row) in rows.chunks_exact(row_bytes).enumerate() {
            for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
                self.scales[b * PANEL + j] =
                    half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                // Row j's 4 bytes of group g sit at g * 64 + j * 4 of the block (h * 32 + lane * 4).
                let out = &mut bytes[b * PANEL_BLOCK_BYTES + j * 4..];
                for (g, four) in block[2..].chunks_exact(4).enumerate() {
                    let word = u32::from_le_bytes([four[0], four[1], four[2], four[3]]) ^ flip;
                    out[g * 64..g * 64 + 4].copy_from_slice(&word.to_le_bytes());
                }
            }
        }
        if kernel == Kernel::Avx2 {
            self.unsigned.resize(len, 0);
            for (m, v) in self.unsigned.iter_mut().zip(&self.values) {
                *m = (*v as i8).unsigned_abs();
            }
        }
    }

    /// [`Panel::fill`] for VNNI: each block's values in a transpose in registers
    /// ([`transpose_values`]), its scales in one gather. The copy was a twentieth of an 8-bit
    /// prompt in plain loops.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn fill_vnni(&mut self, rows: &[u8], blocks: usize) {
        use std::arch::x86_64::*;
        let row_bytes = blocks * BLOCK_BYTES;
        let count = rows.len() / row_bytes;
        let valid: __mmask16 = ((1u32 << count) - 1) as __mmask16;
        let row_starts = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let flip = _mm512_set1_epi32(0x8080_8080u32 as i32);
        for b in 0..blocks {
            let block = rows.as_ptr().add(b * BLOCK_BYTES);
            // Two blocks are about one cache line of each row.
            if b % 2 == 0 {
                for j in 0..count {
                    let ahead = block.wrapping_add(j * row_bytes + PREFETCH_AHEAD);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                }
            }
            // The f16 scale in the low half of each row's first 4 bytes.
            let heads = _mm512_mask_i32gather_epi32::<1>(
                _mm512_setzero_si512(),
                valid,
                row_starts,
                block.cast(),
            );
            let scales = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(heads));
            _mm512_storeu_ps(self.scales.as_mut_ptr().add(b * PANEL), scales);
            let out = self.unsigned.as_mut_ptr().add(b * PANEL_BLOCK_BYTES);
            transpose_values(block.add(2), (row_bytes, count), out, flip);
        }
    }

    /// Copies the rows `rows` (at most 16 of them, `blocks` blocks of `block_bytes` each) of a
    /// format of 32-value blocks that start with an f16 scale (q4_0, q5_0) in, for the VNNI
    /// and AVX2 kernels: `values(block)` gives the block's values as stored, unsigned (the
    /// kernel takes the format's offset back out).
    pub(super) fn fill_blocks(
        &mut self,
        rows: &[u8],
        (blocks, block_bytes): (usize, usize),
        values: impl Fn(&[u8]) -> [u8; BLOCK],
    ) {
        let row_bytes = blocks * block_bytes;
        self.unsigned.resize(blocks * PANEL_BLOCK_BYTES, 0);
        self.scales.resize(blocks * PANEL, 0.0);
        self.offsets.clear();
        if rows.len() / row_bytes < PANEL {
            // Rows past the matrix: their scales of 0 make their sums 0.
            self.unsigned.fill(0);
            self.scales.fill(0.0);
        }
        for (j, row) in rows.chunks_exact(row_bytes).enumerate() {
            for (b, block) in row.chunks_exact(block_bytes).enumerate() {
                self.scales[b * PANEL + j] =
                    half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                place_block(&mut self.unsigned, b, j, &values(block));
            }
        }
    }

    /// Copies the rows `rows` of a K format (at most 16 of them, `supers` super-blocks each) in,
    /// for the VNNI and AVX2 kernels: the stored unsigned values as they are (the kernel takes
    /// the format's centre back out), one scale per group of `F::GROUP` values and row
    /// (`scales[group * 16 + j]`), and the minimums' offsets per block and row.
    pub(super) fn fill_k<F: KFormat>(&mut self, rows: &[u8], supers: usize) {
        let blocks = supers * SUPER / BLOCK;
        let row_bytes = supers * F::BYTES;
        let count = rows.len() / row_bytes;
        self.unsigned.resize(blocks * PANEL_BLOCK_BYTES, 0);
        self.scales.resize(supers * SUPER / F::GROUP * PANEL, 0.0);
        self.offsets
            .resize(if F::MINS { blocks * PANEL } else { 0 }, 0.0);
        if count < PANEL {
            // Rows past the matrix: zero values, scales and offsets make their sums 0.
            self.unsigned.fill(0);
            self.scales.fill(0.0);
            self.offsets.fill(0.0);
        }
        let groups_per_super = SUPER / F::GROUP;
        for (j, row) in rows.chunks_exact(row_bytes).enumerate() {
            for (s, block) in row.chunks_exact(F::BYTES).enumerate() {
                let u = unpack::<F>(block);
                for b in 0..SUPER / BLOCK {
                    let values = &u.values[b * BLOCK..(b + 1) * BLOCK];
                    place_block(&mut self.unsigned, s * 8 + b, j, values);
                    if F::MINS {
                        self.offsets[(s * 8 + b) * PANEL + j] = u.offsets[b];
                    }
                }
                for g in 0..groups_per_super {
                    self.scales[(s * groups_per_super + g) * PANEL + j] =
                        u.scales[g * F::GROUP / 16];
                }
            }
        }
    }
}

/// One block of a panel's values from the `count` rows' 32 bytes at `values` (row j at
/// `values + j * row_bytes`), `flip`ped, to `out` in the panel's layout: 4 bytes of rows 0..15
/// for each group, rows past `count` as zero bytes. A transpose of 16 x 8 four-byte words in
/// registers: each register holds rows j and j + 8, so two 8 x 8 transposes run side by side
/// in its halves, and a last shuffle puts each group's four 128-bit lanes of 4 rows in order.
/// (Gathers, one per group, took a quarter of the products' time in GPT-2 XL q8_0 prompts,
/// this an eighth; warm prompts went from 177-216 to 211-231 tok/s on XL, 2403-2690 to
/// 2538-3088 on 124M.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn transpose_values(
    values: *const u8,
    (row_bytes, count): (usize, usize),
    out: *mut u8,
    flip: std::arch::x86_64::__m512i,
) {
    use std::arch::x86_64::*;
    let row = |j: usize| {
        if j < count {
            _mm256_loadu_si256(values.add(j * row_bytes).cast())
        } else {
            _mm256_setzero_si256()
        }
    };
    let rows: [__m512i; 8] = std::array::from_fn(|j| {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(row(j)), row(j + 8))
    });
    // Per 128-bit lane, words d of rows 2i and 2i + 1 side by side (d = 0, 1 or 2, 3).
    let pairs: [__m512i; 8] = std::array::from_fn(|i| {
        let (a, b) = (rows[i / 2 * 2], rows[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // Quads q (rows 0..3 from pairs 0..3, rows 4..7 from pairs 4..7): per 128-bit lane, word
    // d of 4 rows, for d = q, in lanes 0 and 2 (rows +8), and d = q + 4 in lanes 1 and 3.
    let quads = |first: usize| -> [__m512i; 4] {
        let (t0, t1, t2, t3) = (
            pairs[first],
            pairs[first + 1],
            pairs[first + 2],
            pairs[first + 3],
        );
        [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ]
    };
    let (rows_0_3, rows_4_7) = (quads(0), quads(4));
    // Group d: lanes 0 of both, then lanes 2 (rows 0-3, 4-7, 8-11, 12-15); group d + 4: lanes 1, 3.
    let lanes_0_2 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let lanes_1_3 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    for d in 0..4 {
        let (u, v) = (rows_0_3[d], rows_4_7[d]);
        let (group, later) = (
            _mm512_permutex2var_epi64(u, lanes_0_2, v),
            _mm512_permutex2var_epi64(u, lanes_1_3, v),
        );
        _mm512_storeu_si512(out.add(d * 64).cast(), _mm512_xor_si512(group, flip));
        _mm512_storeu_si512(out.add((d + 4) * 64).cast(), _mm512_xor_si512(later, flip));
    }
}

/// Writes the 32 values of panel row `row`'s block `block` into a panel's bytes: its 4 bytes of
/// group g at `g * 64 + row * 4` of the block.
fn place_block(panel: &mut [u8], block: usize, row: usize, values: &[u8]) {
    let out = &mut panel[block * PANEL_BLOCK_BYTES + row * 4..];
    for (g, four) in values.chunks_exact(4).enumerate() {
        out[g * 64..g * 64 + 4].copy_from_slice(four);
    }
}

/// [`KFormat::unpack`], in 512-bit registers where the CPU has them (AVX2 ones elsewhere).
fn unpack<F: KFormat>(block: &[u8]) -> super::k_formats::Unpacked {
    #[cfg(target_arch = "x86_64")]
    if super::has_avx512_vnni() {
        // SAFETY: the features were just detected; `block` is a whole super-block.
        return unsafe { unpack_avx512::<F>(&block[..F::BYTES]) };
    }
    F::unpack(block)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn unpack_avx512<F: KFormat>(block: &[u8]) -> super::k_formats::Unpacked {
    let (scales, offsets) = F::scales(block);
    let mut values = [0u8; SUPER];
    for c in 0..SUPER / 64 {
        let chunk = F::chunk_values(block.as_ptr(), c);
        std::arch::x86_64::_mm512_storeu_si512(values[64 * c..].as_mut_ptr().cast(), chunk);
    }
    super::k_formats::Unpacked {
        values,
        scales,
        offsets,
    }
}
