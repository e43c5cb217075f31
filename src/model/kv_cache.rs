//! Key/value cache for incremental decoding.
//!
//! Buffers are allocated once per layer at the full window size and filled in place, so a
//! decode step never copies or reallocates the cache. On the CPU they are only reserved: the
//! system hands out their pages as positions are written, so a short chat holds the memory of
//! its own tokens, not of the whole window. The cache also remembers which tokens it holds:
//! that is what lets a new request reuse the longest shared prefix.

use candle_core::{DType, Device, Result, Shape, Tensor};
use half::vec::HalfBitsVecExt;

use crate::runtime::allocator::with_fresh_pages;

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
            *slot = Some(with_fresh_pages(|| -> Result<_> {
                Ok((
                    reserved_zeros(shape, dtype, device)?,
                    reserved_zeros(shape, dtype, device)?,
                ))
            })?);
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

/// A zeroed buffer whose memory, on the CPU, is only reserved until it is written (when the
/// allocation gets fresh pages: [`with_fresh_pages`]).
///
/// candle fills an f16 or bf16 buffer value by value (`vec![f16::ZERO; n]`), which makes every
/// page of the window resident at once: 38 MB for GPT-2 124M, 315 MB for XL. A zeroed `u16`
/// allocation is left to the system's zero pages instead, and has the same bits.
fn reserved_zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let count = shape.elem_count();
    match (device, dtype) {
        (Device::Cpu, DType::F16) => Tensor::from_vec(
            vec![0u16; count].reinterpret_into::<half::f16>(),
            shape,
            device,
        ),
        (Device::Cpu, DType::BF16) => Tensor::from_vec(
            vec![0u16; count].reinterpret_into::<half::bf16>(),
            shape,
            device,
        ),
        // f32 zeros are a zeroed allocation already; other devices allocate their own.
        _ => Tensor::zeros(shape, dtype, device),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{CpuStorage, Storage};

    use super::*;
    use crate::runtime::allocator::{keep_freed_buffers, return_free_memory};

    /// How many of the pages under the CPU tensor `t` are resident, and of how many (Linux).
    #[cfg(target_os = "linux")]
    fn resident_pages(t: &Tensor) -> (usize, usize) {
        let (storage, _) = t.storage_and_layout();
        let (ptr, len) = match &*storage {
            Storage::Cpu(CpuStorage::F16(v)) => (v.as_ptr() as usize, v.len() * 2),
            Storage::Cpu(CpuStorage::BF16(v)) => (v.as_ptr() as usize, v.len() * 2),
            _ => panic!("not a 16-bit CPU tensor"),
        };
        let page = 4096;
        let (start, end) = (ptr / page * page, (ptr + len).next_multiple_of(page));
        let mut flags = vec![0u8; (end - start) / page];
        // SAFETY: the range covers the pages of one live allocation; mincore only reports.
        let status = unsafe { libc::mincore(start as *mut _, end - start, flags.as_mut_ptr()) };
        assert_eq!(status, 0, "mincore failed");
        (flags.iter().filter(|&&f| f & 1 == 1).count(), flags.len())
    }

    /// A reserved window holds no memory until positions are written, even where the heap has
    /// a hole that fits it (as the load leaves one after quantizing), and even in the
    /// allocator's keep-everything mode that the program runs in.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_reserved_window_is_not_resident_until_written() {
        keep_freed_buffers();
        let (heads, capacity, head_dim) = (8, 1 << 14, 64); // 16 MB each for K and V
        for dtype in [DType::F16, DType::BF16] {
            // A written 48 MB buffer freed and handed back, with a live one after it: a hole.
            let hole = vec![1u8; 48 << 20];
            let guard = vec![1u8; 1 << 20];
            drop(hole);
            return_free_memory();
            let mut cache = KvCache::new(1, capacity);
            let shape = (1, heads, capacity, head_dim);
            let (k, v) = cache.reserve(0, 0..1, shape, dtype, &Device::Cpu).unwrap();
            for t in [k, v] {
                let (resident, pages) = resident_pages(t);
                assert!(
                    resident * 100 < pages,
                    "{dtype:?}: {resident} of {pages} pages resident before any write"
                );
            }
            // Still zeros, as the tensor path and the prefix reuse expect.
            let corner = k.narrow(2, capacity - 1, 1).unwrap();
            let corner = corner.to_dtype(DType::F32).unwrap().abs().unwrap();
            assert_eq!(corner.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
            drop(guard);
        }
    }
}
