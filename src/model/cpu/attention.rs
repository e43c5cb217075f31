//! Self-attention of one new token over the KV cache (f32 or f16) on the CPU, without score
//! tensors.
//!
//! Per head, the scores over the cached keys, their softmax and the weighted sum of the cached
//! values fit in one short loop. Only the decode step uses it: prompts go through
//! `prefill.rs`, whose blocks of 64 queries make matrix products; a per-query loop like
//! this one measured slower there (about 380 against 440 tokens/s on 512 tokens, two cores).

use candle_core::{DType, Result, Tensor};
use half::f16;

use crate::kernels::activations::softmax_row;
use crate::kernels::cached_values::CachedValue;
use crate::kernels::{with_slice, SyncPtr};
use crate::model::kv_cache::KvCache;

/// Work (heads x cached values x head width) below which one thread does it all.
const PARALLEL_FROM: usize = 1 << 14;

/// The attention output, (heads x head_dim), of the query `q` (heads x head_dim) over the first
/// `len` positions of `layer` in `cache`, whose CPU buffers (heads, positions, head_dim)
/// must already hold the new token's key and value.
pub(super) fn attend_to_cache(
    cache: &KvCache,
    layer: usize,
    q: &[f32],
    heads: usize,
    len: usize,
) -> Result<Vec<f32>> {
    let missing =
        || candle_core::Error::Msg("expected an f32 or f16 key/value cache on the CPU".into());
    let (keys, values) = cache.buffers(layer).ok_or_else(missing)?;
    let positions = keys.dim(2)?;
    let attended = match keys.dtype() {
        DType::F16 => attend_in::<f16>(keys, values, q, heads, positions, len),
        _ => attend_in::<f32>(keys, values, q, heads, positions, len),
    };
    attended.ok_or_else(missing)
}

/// [`attend`] on the cache buffers as slices of `K`, or `None` when they are not.
fn attend_in<K: CachedValue>(
    keys: &Tensor,
    values: &Tensor,
    q: &[f32],
    heads: usize,
    positions: usize,
    len: usize,
) -> Option<Vec<f32>> {
    with_slice::<K, _>(keys, |keys| {
        with_slice::<K, _>(values, |values| {
            attend(q, keys, values, heads, positions, len)
        })
    })
    .flatten()
}

fn attend<K: CachedValue>(
    q: &[f32],
    keys: &[K],
    values: &[K],
    heads: usize,
    positions: usize,
    len: usize,
) -> Vec<f32> {
    let d = q.len() / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let head = |h: usize| {
        let span = h * positions * d..(h * positions + len) * d;
        let query = &q[h * d..(h + 1) * d];
        let mut scores = vec![0f32; len];
        K::scores(query, &keys[span.clone()], scale, &mut scores);
        softmax_row(&mut scores);
        // SAFETY: each head writes only its own d values of `out`.
        let y = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(h * d), d) };
        K::add_weighted_rows(&scores, &values[span], y);
    };
    if heads * len * d >= PARALLEL_FROM {
        candle_core::utils::barrier_pool().execute_chunked(heads, |range| range.for_each(head));
    } else {
        (0..heads).for_each(head);
    }
    out
}
