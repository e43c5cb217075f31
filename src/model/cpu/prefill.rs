//! A prompt through the model on the CPU, with f32 or q8_0 weights: one matrix product per
//! projection, written into buffers that every layer reuses, and causal attention in blocks of
//! queries (`prompt_attention.rs`).
//!
//! Through the tensor library, each layer of a 512-token prompt allocated and zeroed a dozen
//! activation buffers, made separate passes for biases, residual sums and the attention mask,
//! and ran the small per-head products on a thread pool of their own beside the matmul's. Here
//! the biases and the residual stream go into the products themselves (`dst = dst + x @ W`),
//! attention skips the masked half of the scores, and all threads come from one pool (rayon,
//! which the matmul crate uses too).

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::weights::{CpuBlock, CpuLayerNorm, CpuLinear, CpuMlp, CpuWeights, Matrix};
use super::{activate_on_this_thread, layer_norm_row};
use crate::kernels::add_matmul;
use crate::kernels::q8::add_rows_times;
use crate::model::kv_cache::KvCache;
use crate::model::q8::add_quantized_rows;
use crate::runtime::allocator::return_free_memory;

/// Rows of activations per task in the row-wise passes (layer norm, activation).
const ROWS_PER_TASK: usize = 16;

impl CpuWeights {
    /// Runs the prompt `ids` through the model after the `cache.len()` tokens in the cache,
    /// appends their keys and values, and returns the logits of the last one, shape (vocab,).
    /// Needs [`CpuWeights::can_prefill`].
    pub(crate) fn prefill(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let e = self.n_embd;
        let mut last = Vec::with_capacity(e);
        self.prefill_stream(ids, cache, &mut |_, x| {
            last.clear();
            last.extend_from_slice(&x[x.len() - e..]);
            Ok(())
        })?;
        // The allocator keeps freed buffers for the next layer's reuse; once the prompt is
        // through they would stay resident under the cache that decoding then fills. Hand
        // their pages back. (Scoring, window after window, keeps them: trimming there cost
        // `perplexity` a twentieth.)
        return_free_memory();
        self.logits_of_row(&last)
    }

    /// The prompt pass up to the final layer norm, in pieces of at most [`PROMPT_ROWS`] rows:
    /// appends the keys and values of `ids` to the cache and hands each piece's residual
    /// stream, (rows x n_embd), to `each` with the index of its first row in `ids`.
    pub(super) fn prefill_stream(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        each: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let e = self.n_embd;
        let inner = self.blocks.iter().map(|b| b.mlp.c_fc.out_dim).max();
        let mut buffers = Buffers::new(ids.len().min(PROMPT_ROWS), e, inner.unwrap_or(0));
        for (piece, ids) in ids.chunks(PROMPT_ROWS).enumerate() {
            let start = cache.len();
            let mut x = self.embed_rows(ids, start)?; // (t x e)
            for (layer, block) in self.blocks.iter().enumerate() {
                block.prefill(&mut x, &mut buffers, cache, layer, start)?;
            }
            cache.record(ids);
            each(piece * PROMPT_ROWS, &x)?;
        }
        Ok(())
    }
}

/// Rows of a prompt that go through the layers together. A piece's activations are what a
/// prompt adds to the memory beside its keys and values: 124M Q4_0 peaked at 145 MB with 512
/// rows, 132 with 256, 128 with 128. Fewer rows per piece make the products smaller and read
/// the weights more often: 512-token prompts ran as fast with 256 rows as with 512, and a
/// sixth slower with 128 (Zen 4, 2 threads, medians of 4).
pub(crate) const PROMPT_ROWS: usize = 256;

/// Activations of one layer, reused by the next. Each buffer serves two values that are never
/// needed at the same time, which keeps the memory of a long prompt down.
struct Buffers {
    /// A layer norm's output, then the attention output with the heads side by side,
    /// (tokens x n_embd).
    narrow: Vec<f32>,
    /// Queries, keys and values side by side (tokens x 3 n_embd), then the MLP's inner
    /// activations (tokens x inner).
    wide: Vec<f32>,
}

impl Buffers {
    fn new(tokens: usize, width: usize, inner: usize) -> Self {
        Self {
            narrow: vec![0.0; tokens * width],
            wide: vec![0.0; tokens * inner.max(3 * width)],
        }
    }
}

impl CpuBlock {
    /// The block applied to the residual stream `x` (tokens x n_embd), in place.
    fn prefill(
        &self,
        x: &mut [f32],
        buffers: &mut Buffers,
        cache: &mut KvCache,
        layer: usize,
        start: usize,
    ) -> Result<()> {
        // The buffers are made for the longest piece; this one may be shorter.
        let tokens = x.len() / self.attn.c_proj.out_dim;
        let narrow = &mut buffers.narrow[..x.len()]; // (t x e)
        let qkv = &mut buffers.wide[..tokens * self.attn.c_attn.out_dim]; // (t x 3e)
        self.ln_1.forward_rows(x, narrow);
        self.attn.c_attn.forward_rows(narrow, qkv)?;
        self.attn.prefill(qkv, cache, layer, start, narrow)?;
        self.attn.c_proj.add_forward_rows(narrow, x)?;
        self.ln_2.forward_rows(x, narrow);
        let hidden = &mut buffers.wide[..tokens * self.mlp.c_fc.out_dim]; // (t x i)
        self.mlp.prefill(narrow, hidden, x)
    }
}

impl CpuLayerNorm {
    /// Every row of `x` normalised into `out`.
    pub(super) fn forward_rows(&self, x: &[f32], out: &mut [f32]) {
        let (w, b) = (self.weight.get(), self.bias.get());
        let width = w.len();
        x.par_chunks(width * ROWS_PER_TASK)
            .zip(out.par_chunks_mut(width * ROWS_PER_TASK))
            .for_each(|(x, out)| {
                for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
                    layer_norm_row(x, w, b, self.eps as f32, out);
                }
            })
    }
}

impl CpuLinear {
    /// `y = x @ W + b` for every row of `x`, written over `y`.
    fn forward_rows(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let b = self.bias.get();
        y.chunks_exact_mut(b.len())
            .for_each(|row| row.copy_from_slice(b));
        self.accumulate_rows(x, y)
    }

    /// `y += x @ W + b` for every row of `x`: a residual branch added to the stream `y`.
    fn add_forward_rows(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let b = self.bias.get();
        y.chunks_exact_mut(b.len())
            .for_each(|row| row.iter_mut().zip(b).for_each(|(y, b)| *y += b));
        self.accumulate_rows(x, y)
    }

    /// `y += x @ W`, one product over all rows on all threads.
    fn accumulate_rows(&self, x: &[f32], y: &mut [f32]) -> Result<()> {
        let (w, k, n) = match &self.weight {
            Matrix::Dense { w, k, n } => (w.get(), *k, *n),
            Matrix::Q8(w) => return add_rows_times(x, w.get(), y),
            Matrix::Other(q) => return add_quantized_rows(q, x, y),
        };
        let m = x.len() / k;
        if x.len() != m * k || y.len() != m * n {
            candle_core::bail!(
                "prefill buffers of {} and {} values for ({k}, {n}) weights",
                x.len(),
                y.len()
            );
        }
        // SAFETY: the slices hold m x k, k x n and m x n values, row-major; `y` is borrowed
        // mutably, so nothing else reads it meanwhile.
        unsafe { add_matmul((m, n, k), y.as_mut_ptr(), n, x, w.as_ptr(), (n, 1)) };
        Ok(())
    }
}

impl CpuMlp {
    /// `x += c_proj(activation(c_fc(normed)))`, with `hidden` as the inner buffer.
    fn prefill(&self, normed: &[f32], hidden: &mut [f32], x: &mut [f32]) -> Result<()> {
        self.c_fc.forward_rows(normed, hidden)?;
        let width = self.c_fc.out_dim;
        hidden
            .par_chunks_mut(width * ROWS_PER_TASK)
            .for_each(|rows| activate_on_this_thread(self.activation, rows));
        self.c_proj.add_forward_rows(hidden, x)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::prompt_attention::QUERY_BLOCK;
    use super::PROMPT_ROWS;
    use crate::model::{Gpt2, Gpt2Config, KvCache, Mode};

    fn config() -> Gpt2Config {
        Gpt2Config {
            vocab_size: 97,
            n_positions: 5 * QUERY_BLOCK,
            n_embd: 32,
            n_layer: 2,
            n_head: 4,
            ..Gpt2Config::gpt2_small()
        }
    }

    /// A model whose every weight, biases and layer norms included, is noticeably random: with
    /// GPT-2's small initialisation the attention is nearly uniform and a wrong mask or a
    /// missing bias would hide below the tolerance. Seeded, so that every run on every machine
    /// checks the same weights: the q8_0 checks below compare two paths whose inputs can round
    /// to neighbouring 8-bit steps, and over fresh draws the largest such difference had a tail
    /// past their tolerance (above 1.5e-2 in about one draw in seven).
    fn random_model(config: &Gpt2Config) -> Gpt2 {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        drop(Gpt2::load(vb, config).unwrap());
        let mut initial: Vec<(String, Tensor)> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        initial.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let tensors = initial
            .into_iter()
            .map(|(name, t)| {
                // Layer norms start at one, biases at zero; random initial weights (std 0.02,
                // drawn unseeded) are replaced by zero before the noise (std 0.3) is added.
                let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let constant = values.iter().all(|&v| v == values[0]);
                let base = if constant { values[0] } else { 0.0 };
                let noisy: Vec<f32> = values
                    .iter()
                    .map(|_| base + rng.random_range(-0.52f32..0.52))
                    .collect();
                let noisy = Tensor::from_vec(noisy, t.shape(), &Device::Cpu).unwrap();
                (name, noisy)
            })
            .collect();
        Gpt2::load(
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            config,
        )
        .unwrap()
    }

    fn max_relative_diff(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// Prompts over several query blocks, given whole or in pieces that start mid-block, give
    /// the logits of the batched reference path; the decode steps after them read every cached
    /// key and value, so those are checked too.
    #[test]
    fn prefill_in_blocks_matches_the_batched_path() {
        let config = config();
        let model = random_model(&config);
        assert!(model.prefills_on_cpu());
        let ids: Vec<u32> = (0..4 * QUERY_BLOCK as u32 + 37)
            .map(|i| i * 31 % 97)
            .collect();
        let decoded = [5u32, 60, 17];
        let all: Vec<u32> = ids.iter().chain(&decoded).copied().collect();
        let reference = model
            .forward_all(
                &Tensor::new(all.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
                Mode::Inference,
            )
            .unwrap()
            .squeeze(0)
            .unwrap();
        for pieces in [
            vec![ids.len()],
            vec![1, QUERY_BLOCK + 9, ids.len() - QUERY_BLOCK - 10],
        ] {
            let mut cache = KvCache::new(config.n_layer, config.n_positions);
            let mut done = 0;
            for len in &pieces {
                let logits = model.forward(&ids[done..done + len], &mut cache).unwrap();
                done += len;
                let expected = reference.i(done - 1).unwrap();
                let diff = max_relative_diff(&expected, &logits);
                assert!(
                    diff < 1e-4,
                    "pieces {pieces:?}: logits at {done} off by {diff}"
                );
            }
            for (i, &id) in decoded.iter().enumerate() {
                let logits = model.forward(&[id], &mut cache).unwrap();
                let expected = reference.i(ids.len() + i).unwrap();
                let diff = max_relative_diff(&expected, &logits);
                assert!(
                    diff < 1e-4,
                    "pieces {pieces:?}: decode step {i} off by {diff}"
                );
            }
        }
    }

    /// With 8-bit weights a long prompt goes through the 8-bit prompt kernel and caches keys
    /// and values in f16: it gives the logits of the same tokens decoded one at a time, while
    /// the cache takes half the memory of the model with those weights stored dense.
    #[test]
    fn prefill_with_q8_0_weights_matches_their_f32_values() {
        let mut config = config();
        config.n_embd = 64;
        let dense = random_model(&config);
        let mut quantized = dense.clone();
        assert_eq!(quantized.quantize_q8_0().unwrap(), 0);
        // Both heads dense, so only the projections differ in kind.
        let quantized = quantized.with_dense_head();
        let reference = quantized.clone().with_dequantized_projections();
        assert!(quantized.prefills_on_cpu() && reference.prefills_on_cpu());
        let ids: Vec<u32> = (0..2 * QUERY_BLOCK as u32 + 37)
            .map(|i| i * 31 % 97)
            .collect();
        let prefill = |model: &Gpt2| {
            let mut cache = KvCache::new(config.n_layer, config.n_positions);
            let logits = model.forward(&ids, &mut cache).unwrap();
            (logits, cache.allocated_bytes())
        };
        let ((_, f32_bytes), (got, f16_bytes)) = (prefill(&reference), prefill(&quantized));
        assert_eq!(f16_bytes * 2, f32_bytes);
        // The prompt kernel rounds the inputs to 8 bits per block, as a decode step does: the
        // same tokens fed one at a time (the decode path) give the same logits but for the
        // cache, which the prompt pass reads in f32 and decoding in f16. Inputs that differ by
        // that rounding (or by the threads' order of summing) can land on neighbouring 8-bit
        // steps: up to 7 parts in 1,000 seen here. A misplaced mask or a wrong block scale is
        // off by several parts in 100.
        let mut cache = KvCache::new(config.n_layer, config.n_positions);
        let mut want = None;
        for &id in &ids {
            want = Some(quantized.forward(&[id], &mut cache).unwrap());
        }
        let diff = max_relative_diff(&want.unwrap(), &got);
        assert!(diff < 1.5e-2, "q8_0 prefill off by {diff}");
    }

    /// Every row's logits from the prompt pass (after a cached prefix that ends mid-block, from a later row on,
    /// over several head chunks) are the tensor path's on the whole sequence: for f32 weights
    /// to 1e-4; for q8_0 projections (the head dense, as in the test above) against the same
    /// tokens decoded one at a time (8-bit inputs both).
    #[test]
    fn every_row_matches_the_tensor_path() {
        // A prefix long enough for q8_0's prompt kernel.
        const PREFIX: usize = QUERY_BLOCK + 5;
        let mut config = config();
        config.n_embd = 64;
        config.n_positions = 6 * QUERY_BLOCK;
        let dense = random_model(&config);
        let mut quantized = dense.clone();
        assert_eq!(quantized.quantize_q8_0().unwrap(), 0);
        let quantized = quantized.with_dense_head();
        // The rows after the prefix make two pieces of the prompt pass.
        let ids: Vec<u32> = (0..(PREFIX + PROMPT_ROWS + 30) as u32)
            .map(|i| i * 31 % 97)
            .collect();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap();
        let all_rows = |model: &Gpt2| {
            let input = input.unsqueeze(0).unwrap();
            let logits = model.forward_all(&input, Mode::Inference).unwrap();
            logits.squeeze(0).unwrap()
        };
        // The same tokens decoded one at a time: the logits after each.
        let decoded = |model: &Gpt2| {
            let mut cache = KvCache::new(config.n_layer, config.n_positions);
            let rows: Vec<Tensor> = ids
                .iter()
                .map(|&id| model.forward(&[id], &mut cache).unwrap())
                .collect();
            Tensor::stack(&rows, 0).unwrap()
        };
        for (model, reference, tolerance) in [
            (&dense, all_rows(&dense), 1e-4),
            // The prompt pass attends over this prompt's keys in f32, decoding over f16 ones:
            // inputs that differ by that rounding can round to neighbouring 8-bit steps, which
            // moved these logits by up to 1.2 parts in 100 (0.2 in the last row alone).
            (&quantized, decoded(&quantized), 1.5e-2),
        ] {
            assert!(model.prefills_on_cpu());
            let mut cache = KvCache::new(config.n_layer, config.n_positions);
            model.forward(&ids[..PREFIX], &mut cache).unwrap();
            let rows = model
                .forward_rows(
                    &ids[PREFIX..],
                    &mut cache,
                    3..ids.len() - PREFIX,
                    |r, row| (r, row.to_vec()),
                )
                .unwrap();
            assert_eq!(rows.len(), ids.len() - PREFIX - 3);
            assert_eq!(cache.len(), ids.len());
            for (r, row) in rows {
                let got = Tensor::new(row.as_slice(), &Device::Cpu).unwrap();
                let diff = max_relative_diff(&reference.i(PREFIX + r).unwrap(), &got);
                assert!(
                    diff < tolerance,
                    "row {r} off by {diff} (tolerance {tolerance})"
                );
            }
        }
    }
}
