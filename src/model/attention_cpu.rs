//! Self-attention of one new token over the KV cache on the CPU, without score tensors.
//!
//! Per head, the scores over the cached keys, their softmax and the weighted sum of the cached
//! values fit in one short loop. Only the decode step uses it: prompts go through
//! `prefill_cpu.rs`, whose blocks of 64 queries make matrix products; a per-query loop like
//! this one measured slower there (about 380 against 440 tokens/s on 512 tokens, two cores).

use candle_core::Result;

use super::activations::softmax_row;
use super::kernels::{self, with_f32_slice, SyncPtr};
use super::kv_cache::KvCache;

/// Work (heads x cached values x head width) below which one thread does it all.
const PARALLEL_FROM: usize = 1 << 14;

/// The attention output, (heads x head_dim), of the query `q` (heads x head_dim) over the first
/// `len` positions of `layer` in `cache`, whose f32 CPU buffers (heads, positions, head_dim)
/// must already hold the new token's key and value.
pub(super) fn attend_to_cache(
    cache: &KvCache,
    layer: usize,
    q: &[f32],
    heads: usize,
    len: usize,
) -> Result<Vec<f32>> {
    let missing = || candle_core::Error::Msg("expected an f32 key/value cache on the CPU".into());
    let (keys, values) = cache.buffers(layer).ok_or_else(missing)?;
    let positions = keys.dim(2)?;
    with_f32_slice(keys, |keys| {
        with_f32_slice(values, |values| {
            attend(q, keys, values, heads, positions, len)
        })
    })
    .flatten()
    .ok_or_else(missing)
}

fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    heads: usize,
    positions: usize,
    len: usize,
) -> Vec<f32> {
    let d = q.len() / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let head = |h: usize| {
        let base = h * positions * d;
        let query = &q[h * d..(h + 1) * d];
        let mut scores: Vec<f32> = (0..len)
            .map(|j| kernels::dot(query, &keys[base + j * d..base + (j + 1) * d]) * scale)
            .collect();
        softmax_row(&mut scores);
        // SAFETY: each head writes only its own d values of `out`.
        let y = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(h * d), d) };
        for (j, p) in scores.iter().enumerate() {
            kernels::axpy(*p, &values[base + j * d..base + (j + 1) * d], y);
        }
    };
    if heads * len * d >= PARALLEL_FROM {
        candle_core::utils::barrier_pool().execute_chunked(heads, |range| range.for_each(head));
    } else {
        (0..heads).for_each(head);
    }
    out
}
