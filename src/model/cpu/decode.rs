//! One decoding step on the CPU, as plain loops over the weights and the KV cache.
//!
//! A decode step is a handful of matrix-vector products and some two hundred small operations
//! on vectors of a few thousand values. Through the tensor library each of those small
//! operations allocates, dispatches and, for some, wakes a thread pool; on two cores that was a
//! sixth of the time per token in f32 and a third with 8-bit weights. Here they are loops on
//! slices, and only the matrix-vector products and the attention over long caches use threads.

use candle_core::{DType, Device, Result, Tensor};

use super::activate_on_this_thread;
use super::attention::attend_to_cache;
use super::weights::{CpuAttention, CpuBlock, CpuLinear, CpuMlp, CpuWeights, Matrix};
use crate::kernels::{matvec_in_out, q8};
use crate::model::kv_cache::KvCache;
use crate::model::q8::quantized_matvec;

impl CpuWeights {
    /// Runs one token through the model after the `cache.len()` tokens in the cache, appends
    /// its keys and values, and returns the logits, shape (vocab,).
    pub(crate) fn decode_step(&self, id: u32, cache: &mut KvCache) -> Result<Tensor> {
        let position = cache.len();
        let mut x = self.embed_rows(&[id], position)?; // (e)
        for (layer, block) in self.blocks.iter().enumerate() {
            block.decode_step(&mut x, cache, layer, position)?;
        }
        cache.record(&[id]);
        self.logits_of_row(&x)
    }
}

impl CpuBlock {
    /// The block applied to the residual stream `x` of one token, in place.
    fn decode_step(
        &self,
        x: &mut [f32],
        cache: &mut KvCache,
        layer: usize,
        position: usize,
    ) -> Result<()> {
        let attended = self
            .attn
            .decode_step(&self.ln_1.forward_row(x), cache, layer, position)?;
        add_in_place(x, &attended);
        let mlp = self.mlp.forward_row(&self.ln_2.forward_row(x))?;
        add_in_place(x, &mlp);
        Ok(())
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

impl CpuLinear {
    /// `x @ W + b` for one row: (in) -> (out).
    fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = match &self.weight {
            Matrix::Dense { w, .. } => {
                let mut y = vec![0f32; self.out_dim];
                matvec_in_out(x, w.get(), &mut y);
                y
            }
            Matrix::Q8(w) => q8::rows_times(x, w.get())?,
            Matrix::Other(q) => quantized_matvec(q, x)?,
        };
        add_in_place(&mut y, self.bias.get());
        Ok(y)
    }
}

impl CpuMlp {
    /// (e) -> (e)
    fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut h = self.c_fc.forward_row(x)?; // (i)
        activate_on_this_thread(self.activation, &mut h);
        self.c_proj.forward_row(&h)
    }
}

impl CpuAttention {
    /// Keys or values of `tokens` tokens, given head after head, as a (1, heads, tokens,
    /// head_dim) tensor of [`CpuAttention::cached_dtype`] for the cache.
    pub(super) fn cached<'a>(
        &self,
        values: impl Iterator<Item = &'a f32>,
        tokens: usize,
    ) -> Result<Tensor> {
        let shape = (1, self.n_head, tokens, self.head_dim);
        match self.cached_dtype {
            DType::F16 => Tensor::from_vec(
                values.map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>(),
                shape,
                &Device::Cpu,
            ),
            _ => Tensor::from_vec(values.copied().collect::<Vec<f32>>(), shape, &Device::Cpu),
        }
    }

    /// Self-attention of one new token over the cache, after storing its key and value:
    /// (e) -> (e).
    fn decode_step(
        &self,
        x: &[f32],
        cache: &mut KvCache,
        layer: usize,
        position: usize,
    ) -> Result<Vec<f32>> {
        let qkv = self.c_attn.forward_row(x)?; // (3e)
        let e = self.n_head * self.head_dim;
        let (q, kv) = qkv.split_at(e);
        let (k, v) = kv.split_at(e);
        let (k, v) = (self.cached(k.iter(), 1)?, self.cached(v.iter(), 1)?);
        cache.append(layer, position, &k, &v)?;
        let out = attend_to_cache(cache, layer, q, self.n_head, position + 1)?; // (e)
        self.c_proj.forward_row(&out)
    }
}
