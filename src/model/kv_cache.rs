//! Key/value cache for incremental decoding.
//!
//! Buffers are allocated once per layer at the full window size and filled in place, so a
//! decode step never copies or reallocates the cache. The cache also remembers which tokens it
//! holds: that is what lets a new request reuse the longest shared prefix.

use candle_core::{DType, Device, Result, Tensor};

#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    tokens: Vec<u32>,
    capacity: usize,
}

impl KvCache {
    pub fn new(n_layer: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; n_layer],
            tokens: Vec::new(),
            capacity,
        }
    }

    /// Tokens whose keys and values are held, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget everything past the first `len` tokens (the buffers stay allocated).
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }

    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    pub(crate) fn record(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
    }

    /// Writes `k` and `v` of shape (1, heads, new, head_dim) at position `start` of `layer` and
    /// returns views of everything cached so far, (1, heads, start + new, head_dim).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        start: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, heads, new, head_dim) = k.dims4()?;
        let shape = (b, heads, self.capacity, head_dim);
        let (k_buf, v_buf) =
            self.reserve(layer, start..start + new, shape, k.dtype(), k.device())?;
        k_buf.slice_set(&k.contiguous()?, 2, start)?;
        v_buf.slice_set(&v.contiguous()?, 2, start)?;
        Ok((
            k_buf.narrow(2, 0, start + new)?,
            v_buf.narrow(2, 0, start + new)?,
        ))
    }

    /// The key and value buffers of `layer`, allocated first in `shape` (1, heads, capacity,
    /// head_dim) if they are not yet, for writing `positions` into: an error past the window.
    pub(crate) fn reserve(
        &mut self,
        layer: usize,
        positions: std::ops::Range<usize>,
        shape: (usize, usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<(&Tensor, &Tensor)> {
        let (start, new) = (positions.start, positions.len());
        if positions.end > self.capacity {
            candle_core::bail!(
                "kv cache overflow: {} + {} tokens exceed the window of {}",
                start,
                new,
                self.capacity
            );
        }
        let slot = &mut self.layers[layer];
        if slot.is_none() {
            *slot = Some((
                Tensor::zeros(shape, dtype, device)?,
                Tensor::zeros(shape, dtype, device)?,
            ));
        }
        let (k_buf, v_buf) = slot.as_ref().expect("allocated above");
        Ok((k_buf, v_buf))
    }

    /// The key and value buffers of `layer`, (1, heads, capacity, head_dim), once allocated.
    pub(crate) fn buffers(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers[layer].as_ref().map(|(k, v)| (k, v))
    }

    /// Bytes held by the allocated buffers.
    pub fn allocated_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }

    /// Drops the buffers, e.g. before moving to another device or dtype.
    pub fn release(&mut self) {
        self.layers.iter_mut().for_each(|slot| *slot = None);
        self.tokens.clear();
    }
}
