//! The data of a CPU tensor as a slice, for kernels that work on slices.

use std::marker::PhantomData;
use std::sync::Mutex;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType};

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

/// Runs `f` on the contiguous data of a CPU f32 or f16 tensor, in place (through the
/// library's in-place operation, which holds the storage's write lock meanwhile), or returns
/// `None` for other tensors. The tensor's views and clones see the writes.
pub fn with_slice_mut<T: WithDType, R: Send>(
    t: &Tensor,
    f: impl FnOnce(&mut [T]) -> R + Send,
) -> Result<Option<R>> {
    /// The in-place operation calls its closure through `&self`: the `FnOnce` is taken out
    /// of a mutex, run once, and its result left in another.
    struct Op<T, F, R> {
        f: Mutex<Option<F>>,
        result: Mutex<Option<R>>,
        values: PhantomData<fn(&mut [T])>,
    }
    impl<T: WithDType, R: Send, F: FnOnce(&mut [T]) -> R + Send> candle_core::InplaceOp1
        for Op<T, F, R>
    {
        fn name(&self) -> &'static str {
            "in-place slice"
        }
        fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
            let (Some(data), Some((start, end))) =
                (as_mut_slice::<T>(storage), layout.contiguous_offsets())
            else {
                candle_core::bail!("in-place slice needs contiguous f32 or f16 data");
            };
            if let Some(f) = self.f.lock().expect("not poisoned").take() {
                *self.result.lock().expect("not poisoned") = Some(f(&mut data[start..end]));
            }
            Ok(())
        }
    }
    let fits = matches!(T::DTYPE, DType::F32 | DType::F16);
    if !fits || !t.device().is_cpu() || t.dtype() != T::DTYPE || !t.is_contiguous() {
        return Ok(None);
    }
    let op = Op {
        f: Mutex::new(Some(f)),
        result: Mutex::new(None),
        values: PhantomData,
    };
    t.inplace_op1(&op)?;
    let result = op.result.lock().expect("not poisoned").take();
    Ok(result)
}

/// The values of an f32 or f16 storage as `T`, when that is their type.
fn as_mut_slice<T: WithDType>(storage: &mut CpuStorage) -> Option<&mut [T]> {
    let (ptr, len) = match storage {
        CpuStorage::F32(v) if T::DTYPE == DType::F32 => (v.as_mut_ptr().cast::<T>(), v.len()),
        CpuStorage::F16(v) if T::DTYPE == DType::F16 => (v.as_mut_ptr().cast::<T>(), v.len()),
        _ => return None,
    };
    // SAFETY: T is the storage's own element type (checked by its dtype just above), and the
    // slice borrows the storage mutably for as long as the returned one lives.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}
