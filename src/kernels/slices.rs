//! The data of a CPU tensor as a slice, for kernels that work on slices.

use candle_core::{Storage, Tensor, WithDType};

/// Runs `f` on the contiguous f32 data of a CPU tensor, or returns `None` when the tensor is
/// elsewhere, of another dtype, or strided.
pub fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    with_slice::<f32, R>(t, f)
}

/// [`with_f32_slice`] for any element type.
pub fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(data) = &*storage else {
        return None;
    };
    let data = data.as_slice::<T>().ok()?;
    let (start, end) = layout.contiguous_offsets()?;
    Some(f(&data[start..end]))
}
