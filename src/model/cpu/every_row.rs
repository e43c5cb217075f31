//! The prompt pass with the output head on every row: what scoring a text and colouring the
//! user's own prompt need (each position's prediction of the next token).
//!
//! The logits of a 1024-token window are 1024 x 50257 values, 206 MB in f32; here the head runs
//! on `HEAD_ROWS` rows at a time and each row's logits are reduced at once (by the caller's
//! `per_row`, on all threads), so the memory stays that of one chunk at any prompt length.

use candle_core::Result;
use rayon::prelude::*;

use super::weights::{CpuHead, CpuWeights};
use crate::kernels::add_matmul;
use crate::kernels::q8::add_rows_times;
use crate::model::kv_cache::KvCache;
use crate::model::q8::add_quantized_rows;

/// Rows of logits held at once: 128 x 50257 f32 is 26 MB. Each product with 8-bit weights lays
/// the whole head out in panels again, which at 32 rows took a quarter of `perplexity`'s time
/// (perf); 128 rows made it 1.2x faster (124M q8_0, 532 -> 650 tokens/s, medians of 3), 256
/// only 3% more for another 26 MB.
pub(crate) const HEAD_ROWS: usize = 128;

impl CpuWeights {
    /// Runs `ids` after the cached tokens like [`CpuWeights::prefill`], and returns
    /// `per_row(r, logits of row r)` for every row `r` in `rows` (row r predicts the token
    /// after `ids[r]`). Needs [`CpuWeights::can_prefill`].
    pub(crate) fn prefill_every_row<T: Send>(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        rows: std::ops::Range<usize>,
        per_row: &(impl Fn(usize, &[f32]) -> T + Sync),
    ) -> Result<Vec<T>> {
        let e = self.n_embd;
        let v = self.vocab;
        let mut normed = vec![0f32; HEAD_ROWS.min(ids.len()) * e];
        let mut logits = vec![0f32; HEAD_ROWS.min(ids.len()) * v];
        let mut out = Vec::with_capacity(rows.len());
        // Each piece of the prompt's rows goes through the head as soon as the layers are done
        // with it, so only one piece's residual stream is held.
        self.prefill_stream(ids, cache, &mut |offset, x| {
            let piece = offset..offset + x.len() / e;
            let wanted = rows.start.max(piece.start)..rows.end.min(piece.end);
            for first in wanted.clone().step_by(HEAD_ROWS) {
                let n = HEAD_ROWS.min(wanted.end - first);
                let (normed, logits) = (&mut normed[..n * e], &mut logits[..n * v]);
                let at = (first - offset) * e;
                self.ln_f.forward_rows(&x[at..at + n * e], normed);
                self.head_rows(normed, logits)?;
                out.par_extend(
                    logits
                        .par_chunks_exact(v)
                        .enumerate()
                        .map(|(r, row)| per_row(first + r, row)),
                );
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// `logits = normed @ head^T` for rows of normed activations (rows x n_embd).
    fn head_rows(&self, normed: &[f32], logits: &mut [f32]) -> Result<()> {
        let (e, v) = (self.n_embd, self.vocab);
        logits.fill(0.0);
        match &self.head {
            CpuHead::Rows(w) => {
                let rows = normed.len() / e;
                // SAFETY: `normed` is rows x e, the head (v, e) row-major read as its transpose
                // (e, v) with strides (1, e), `logits` rows x v and borrowed mutably.
                unsafe {
                    add_matmul(
                        (rows, v, e),
                        logits.as_mut_ptr(),
                        v,
                        normed,
                        w.get().as_ptr(),
                        (1, e),
                    )
                };
                Ok(())
            }
            CpuHead::Q8(w) => add_rows_times(normed, w.get(), logits),
            CpuHead::Other(q) => add_quantized_rows(q, normed, logits),
        }
    }
}
