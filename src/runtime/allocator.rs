//! Keeping freed buffers for reuse while the model runs.
//!
//! A forward pass allocates and frees the same large activation buffers layer after layer.
//! By default the C library returns each buffer over a threshold to the system and the next
//! one is faulted in again page by page: on a 512-token prompt that was a fifth of the time.
//! Raising the thresholds once the weights are loaded keeps those buffers in the process. The
//! weights themselves were already allocated (and given huge pages) under the defaults.

/// Training allocates and frees the same large tensors every step; glibc's defaults hand that
/// memory back to the kernel and fault it in again each time, which cost a third of a training
/// run. For a process with no weights to place in huge pages (the trainer): serve even the
/// largest buffers from the heap and never shrink it. Call before other threads start.
pub fn keep_all_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 128 << 20);
    }
}

/// Hands the free pages inside the heap back to the system (glibc only; elsewhere a no-op).
///
/// glibc returns only the top of the heap by itself. Quantizing at load frees an f32 copy of
/// every matrix between the 8-bit ones it keeps, and those holes stayed resident: a tenth of
/// the 8-bit model's peak memory.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages that hold no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The size from which glibc serves an allocation with pages of its own, as it starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DEFAULT_MMAP_THRESHOLD: libc::c_int = 128 << 10;
/// The same size once [`keep_freed_buffers`] has run.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const KEPT_MMAP_THRESHOLD: libc::c_int = 256 << 20;

/// Whether [`keep_freed_buffers`] has raised the threshold.
static KEEPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Large buffers stay in the process heap from now on (glibc only; elsewhere a no-op).
pub fn keep_freed_buffers() {
    return_free_memory();
    KEEPING.store(true, std::sync::atomic::Ordering::Relaxed);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes allocator parameters; it returns 0 when it declines.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT_MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Runs `allocate` with its large allocations given pages of their own by the system, never
/// a hole of the heap (glibc only; elsewhere it just runs `allocate`).
///
/// For zeroed buffers that are filled slowly, like the KV cache's window: fresh pages are zero
/// already and cost no memory until written, while a hole that [`return_free_memory`] handed
/// back is cleared by the C library, which makes all of it resident at once. Other threads'
/// allocations meanwhile may get their own pages too, which changes only where they live.
pub fn with_fresh_pages<T>(allocate: impl FnOnce() -> T) -> T {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD);
    }
    let allocated = allocate();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if KEEPING.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEPT_MMAP_THRESHOLD);
        }
    }
    allocated
}
