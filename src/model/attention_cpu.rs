//! Causal self-attention over the KV cache on the CPU, without materialising the score matrix.
//!
//! Each (head, query) pair is independent: its scores over the cached keys, their softmax and
//! the weighted sum of the cached values fit in one short loop. The decode step uses it (one
//! query); prompts keep the batched matmuls in `gpt2.rs`, which measured faster on 512 tokens
//! (about 440 against 380 tokens/s on two cores) than running this for every query.

use candle_core::Result;

use super::activations::softmax_row;
use super::kernels::{self, with_f32_slice, SyncPtr};
use super::kv_cache::KvCache;

/// Work (heads x queries x cached values x head width) below which one thread does it all.
const PARALLEL_FROM: usize = 1 << 14;

/// [`causal_attention`] over the f32 CPU buffers of `layer` in `cache`, which must already hold
/// the new keys and values.
pub(super) fn attend_to_cache(
    cache: &KvCache,
    layer: usize,
    q: &[f32],
    heads: usize,
    start: usize,
    t: usize,
) -> Result<Vec<f32>> {
    let missing = || candle_core::Error::Msg("expected an f32 key/value cache on the CPU".into());
    let (keys, values) = cache.buffers(layer).ok_or_else(missing)?;
    let shape = CacheShape {
        heads,
        capacity: cache.capacity(),
        head_dim: q.len() / heads / t,
    };
    with_f32_slice(keys, |keys| {
        with_f32_slice(values, |values| {
            causal_attention(q, keys, values, shape, start, t)
        })
    })
    .flatten()
    .ok_or_else(missing)
}

/// The layout of one layer's cache buffers: (heads, capacity, head_dim), row-major.
#[derive(Debug, Clone, Copy)]
pub(super) struct CacheShape {
    pub heads: usize,
    pub capacity: usize,
    pub head_dim: usize,
}

/// Attention of `t` new queries at positions `start..start + t` over a cache that already holds
/// their keys and values. `q` is laid out (heads, t, head_dim); the result is (t, heads x
/// head_dim), the layout the output projection takes.
pub(super) fn causal_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: CacheShape,
    start: usize,
    t: usize,
) -> Vec<f32> {
    let CacheShape {
        heads,
        capacity,
        head_dim: d,
    } = shape;
    debug_assert_eq!(q.len(), heads * t * d);
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; t * heads * d];
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let run = |items: std::ops::Range<usize>| {
        let mut scores = Vec::with_capacity(start + t);
        for item in items {
            let (h, i) = (item / t, item % t);
            let base = h * capacity * d;
            let query = &q[(h * t + i) * d..(h * t + i + 1) * d];
            // The query at position start + i sees keys 0..=start + i.
            scores.clear();
            scores.extend(
                (0..=start + i)
                    .map(|j| kernels::dot(query, &keys[base + j * d..base + (j + 1) * d]) * scale),
            );
            softmax_row(&mut scores);
            // SAFETY: each (head, query) pair writes only its own d values of `out`.
            let y = unsafe {
                std::slice::from_raw_parts_mut(out_ptr.get().add((i * heads + h) * d), d)
            };
            for (j, p) in scores.iter().enumerate() {
                kernels::axpy(*p, &values[base + j * d..base + (j + 1) * d], y);
            }
        }
    };
    let items = heads * t;
    if items * (start + t) * d >= PARALLEL_FROM {
        candle_core::utils::barrier_pool().execute_chunked(items, run);
    } else {
        run(0..items);
    }
    out
}
