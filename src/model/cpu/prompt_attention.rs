//! Causal self-attention of a prompt's queries on the CPU: their keys and values written into
//! the cache, and each block of queries attended over the cached prefix and the prompt.
//!
//! New keys and values go straight into the cache's buffers, head after head on the pool:
//! building a tensor of them and copying it in took a tenth of a 512-token prompt's time with
//! 8-bit weights. The queries then read keys and values from the cache, as decoding does
//! (rounded to f16 beside 8-bit weights), so a prompt and the same tokens decoded one at a
//! time see the same values.

use candle_core::{DType, Device, Result, Tensor};
use gemm::{gemm, Parallelism};
use half::f16;
use rayon::prelude::*;

use super::weights::CpuAttention;
use crate::kernels::activations::softmax_row;
use crate::kernels::cached_values::CachedValue;
use crate::kernels::{with_slice, with_slice_mut, SyncPtr};
use crate::model::kv_cache::KvCache;

/// Queries per attention task: enough rows for the products to run at full speed, few enough
/// that a 512-token prompt makes a hundred tasks to share between threads.
pub(super) const QUERY_BLOCK: usize = 64;

impl CpuAttention {
    /// Stores the new keys and values from `qkv` in the cache at `start`, and writes each new
    /// query's attention over the cache into `out` (tokens x n_embd, heads side by side).
    pub(super) fn prefill(
        &self,
        qkv: &[f32],
        cache: &mut KvCache,
        layer: usize,
        start: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let (heads, d) = (self.n_head, self.head_dim);
        let tokens = qkv.len() / (3 * heads * d);
        let shape = (1, heads, cache.capacity(), d);
        let (keys, values) = cache.reserve(
            layer,
            start..start + tokens,
            shape,
            self.cached_dtype,
            &Device::Cpu,
        )?;
        let layout = CausalLayout {
            heads,
            d,
            positions: keys.dim(2)?,
            start,
            tokens,
        };
        let attended = match keys.dtype() {
            DType::F16 => layout.store_and_attend::<f16>(keys, values, qkv, out)?,
            _ => layout.store_and_attend::<f32>(keys, values, qkv, out)?,
        };
        attended.ok_or_else(|| {
            candle_core::Error::Msg("expected an f32 or f16 key/value cache on the CPU".into())
        })
    }
}

/// Where the new queries sit among the cached positions.
struct CausalLayout {
    heads: usize,
    d: usize,
    /// Positions per head in the cache buffers, (heads, positions, head_dim).
    positions: usize,
    /// Cached positions before the first new query.
    start: usize,
    /// New queries.
    tokens: usize,
}

impl CausalLayout {
    /// Writes the new keys and values into the cache buffers (slices of `K`), then attends;
    /// `None` when the buffers are not such slices.
    fn store_and_attend<K: CachedValue>(
        &self,
        keys: &Tensor,
        values: &Tensor,
        qkv: &[f32],
        out: &mut [f32],
    ) -> Result<Option<()>> {
        for (part, buffer) in [(1, keys), (2, values)] {
            if with_slice_mut::<K, _>(buffer, |cached| self.store(qkv, part, cached))?.is_none() {
                return Ok(None);
            }
        }
        Ok(with_slice::<K, _>(keys, |keys| {
            with_slice::<K, _>(values, |values| self.attend(qkv, keys, values, out))
        })
        .flatten())
    }

    /// Part `part` of every row of `qkv` (1: keys, 2: values) written at its place in
    /// `cached` (heads, positions, head_dim), a task per head.
    fn store<K: CachedValue>(&self, qkv: &[f32], part: usize, cached: &mut [K]) {
        let (d, e) = (self.d, self.heads * self.d);
        cached
            .par_chunks_mut(self.positions * d)
            .take(self.heads)
            .enumerate()
            .for_each(|(head, cached)| {
                let columns = part * e + head * d;
                for (t, row) in qkv.chunks_exact(3 * e).enumerate() {
                    let at = (self.start + t) * d;
                    K::store(&row[columns..columns + d], &mut cached[at..at + d]);
                }
            });
    }

    /// Every (head, block of queries) as one task on the pool, the longest (last) blocks first,
    /// over each head's cached keys and values as f32: the slices themselves, or widened from
    /// f16 once per layer (per task, the widening took as long as the products).
    fn attend<K: CachedValue>(&self, qkv: &[f32], keys: &[K], values: &[K], out: &mut [f32]) {
        let (d, seen) = (self.d, self.start + self.tokens);
        let mut scratch = (vec![Vec::new(); self.heads], vec![Vec::new(); self.heads]);
        let keys = widen(keys, self.positions * d, seen * d, &mut scratch.0);
        let values = widen(values, self.positions * d, seen * d, &mut scratch.1);
        let blocks = self.tokens.div_ceil(QUERY_BLOCK);
        let out = SyncPtr(out.as_mut_ptr());
        (0..self.heads * blocks)
            .into_par_iter()
            .for_each_init(Vec::new, |scores, task| {
                let (block, head) = (blocks - 1 - task / self.heads, task % self.heads);
                self.attend_block(qkv, keys[head], values[head], head, block, out, scores);
            });
    }

    /// Attention of queries `block * QUERY_BLOCK..` of `head` over the cached positions up to
    /// the last of them (`keys`, `values`: the head's positions from 0), written to their rows
    /// of `out` in the head's columns.
    #[allow(clippy::too_many_arguments)]
    fn attend_block(
        &self,
        qkv: &[f32],
        keys: &[f32],
        values: &[f32],
        head: usize,
        block: usize,
        out: SyncPtr,
        scores: &mut Vec<f32>,
    ) {
        let (d, e) = (self.d, self.heads * self.d);
        let first = block * QUERY_BLOCK;
        let rows = QUERY_BLOCK.min(self.tokens - first);
        // Positions the last query of the block sees.
        let seen = self.start + first + rows;
        scores.clear();
        scores.resize(rows * seen, 0.0);
        let scale = 1.0 / (d as f32).sqrt();
        // SAFETY for both products: the strides describe `rows` queries of width d, `seen`
        // cached positions of width d, and the (rows x seen) scores, all inside their slices;
        // this task alone writes its rows x d block of `out`.
        unsafe {
            // scores = scale * Q K^T
            #[rustfmt::skip]
            gemm(
                rows, seen, d,
                scores.as_mut_ptr(), 1, seen as isize, false,
                qkv.as_ptr().add(first * 3 * e + head * d), 1, 3 * e as isize,
                keys.as_ptr(), d as isize, 1,
                0.0, scale, false, false, false, Parallelism::None,
            );
        }
        for (r, row) in scores.chunks_exact_mut(seen).enumerate() {
            // Query `first + r` sees positions up to its own; the rest of the row is masked.
            let visible = self.start + first + r + 1;
            softmax_row(&mut row[..visible]);
            row[visible..].fill(0.0);
        }
        unsafe {
            // out = P V
            #[rustfmt::skip]
            gemm(
                rows, d, seen,
                out.get().add(first * e + head * d), 1, e as isize, false,
                scores.as_ptr(), 1, seen as isize,
                values.as_ptr(), 1, d as isize,
                0.0, 1.0, false, false, false, Parallelism::None,
            );
        }
    }
}

/// The first `len` values of each head (`per_head` apart in `cached`) as f32: the cache
/// itself, or widened into `scratch` (one buffer per head), head by head on the pool.
fn widen<'a, K: CachedValue>(
    cached: &'a [K],
    per_head: usize,
    len: usize,
    scratch: &'a mut [Vec<f32>],
) -> Vec<&'a [f32]> {
    scratch
        .par_iter_mut()
        .zip(cached.par_chunks(per_head))
        .map(|(scratch, head)| K::as_f32(&head[..len], scratch))
        .collect()
}
