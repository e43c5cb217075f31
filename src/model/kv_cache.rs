//! Key/value cache for incremental decoding.
//!
//! Buffers are filled in place and grow in steps of `GROWTH` positions up to the window, so a
//! decode step copies the cache only when it crosses a step (four times over GPT-2's window),
//! and a short chat does not hold memory for the whole window. The cache also remembers which
//! tokens it holds: that is what lets a new request reuse the longest shared prefix.

use candle_core::{Result, Tensor};

/// Positions the buffers grow by.
const GROWTH: usize = 256;

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
        if start + new > self.capacity {
            candle_core::bail!(
                "kv cache overflow: {} + {} tokens exceed the window of {}",
                start,
                new,
                self.capacity
            );
        }
        let needed = start + new;
        let slot = &mut self.layers[layer];
        let held = match slot {
            Some((k_buf, _)) => k_buf.dim(2)?,
            None => 0,
        };
        if held < needed {
            let positions = needed.next_multiple_of(GROWTH).min(self.capacity);
            let shape = (b, heads, positions, head_dim);
            let (k_new, v_new) = (
                Tensor::zeros(shape, k.dtype(), k.device())?,
                Tensor::zeros(shape, v.dtype(), v.device())?,
            );
            if let Some((k_old, v_old)) = slot.take() {
                k_new.slice_set(&k_old, 2, 0)?;
                v_new.slice_set(&v_old, 2, 0)?;
            }
            *slot = Some((k_new, v_new));
        }
        let (k_buf, v_buf) = slot.as_ref().expect("allocated above");
        k_buf.slice_set(&k.contiguous()?, 2, start)?;
        v_buf.slice_set(&v.contiguous()?, 2, start)?;
        Ok((
            k_buf.narrow(2, 0, start + new)?,
            v_buf.narrow(2, 0, start + new)?,
        ))
    }

    /// The key and value buffers of `layer`, (1, heads, positions, head_dim), once allocated;
    /// `positions` (at least the tokens held, at most the window) is the step between heads.
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

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::{KvCache, GROWTH};

    /// Keys numbered by position, (1, heads, new, head_dim).
    fn numbered(heads: usize, from: usize, new: usize) -> Tensor {
        let values: Vec<f32> = (0..heads)
            .flat_map(|h| (from..from + new).flat_map(move |p| [(h * 10_000 + p) as f32; 2]))
            .collect();
        Tensor::from_vec(values, (1, heads, new, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn buffers_grow_in_steps_up_to_the_window_and_keep_what_they_hold() {
        let window = 2 * GROWTH + 10;
        let mut cache = KvCache::new(1, window);
        let first = numbered(3, 0, 5);
        cache.append(0, 0, &first, &first).unwrap();
        assert_eq!(cache.buffers(0).unwrap().0.dim(2).unwrap(), GROWTH);
        let second = numbered(3, 5, GROWTH);
        let (keys, values) = cache.append(0, 5, &second, &second).unwrap();
        assert_eq!(cache.buffers(0).unwrap().0.dim(2).unwrap(), 2 * GROWTH);
        let all = Tensor::cat(&[&first, &second], 2).unwrap();
        for held in [keys, values] {
            let diff = (held - &all).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        }
        let third = numbered(3, 5 + GROWTH, GROWTH);
        cache.append(0, 5 + GROWTH, &third, &third).unwrap();
        assert_eq!(cache.buffers(0).unwrap().0.dim(2).unwrap(), window);
        assert!(cache.append(0, window - 2, &first, &first).is_err());
    }
}
