//! One decoding step on the CPU, as plain loops over the weights and the KV cache.
//!
//! A decode step is a handful of matrix-vector products and some two hundred small operations
//! on vectors of a few thousand values. Through the tensor library each of those small
//! operations allocates, dispatches and, for some, wakes a thread pool; on two cores that was a
//! sixth of the time per token in f32 and a third with 8-bit weights. Here they are loops on
//! slices, and only the matrix-vector products and the attention over long caches use threads.
//! The batched path in `gpt2.rs` stays the reference: the two are compared in the tests.

use candle_core::{DType, Device, Result, Tensor};

use super::attention::attend_to_cache;
use crate::kernels::activations::activate_on_this_thread;
use crate::kernels::{self, with_f32_slice};
use crate::model::gpt2::{
    quantized_matvec, Attention, Block, Gpt2, LayerNorm, Linear, Mlp, Weight,
};
use crate::model::kv_cache::KvCache;

impl Gpt2 {
    /// Whether `decode_step` applies: weights on the CPU, stored in f32 (dense or q8_0).
    pub(in crate::model) fn can_decode_on_cpu(&self) -> bool {
        matches!(self.device(), Device::Cpu) && self.dtype() == DType::F32
    }

    /// Runs one token through the model after the `cache.len()` tokens in the cache, appends
    /// its keys and values, and returns the logits, shape (vocab,).
    pub(in crate::model) fn decode_step(&self, id: u32, cache: &mut KvCache) -> Result<Tensor> {
        let position = cache.len();
        let mut x = self.embed_rows(&[id], position)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            block.decode_step(&mut x, cache, layer, position)?;
        }
        cache.record(&[id]);
        self.logits_of_row(&x)
    }

    /// Token plus position embeddings of `ids` placed from `start`, (tokens x n_embd).
    pub(super) fn embed_rows(&self, ids: &[u32], start: usize) -> Result<Vec<f32>> {
        let e = self.config.n_embd;
        with_f32_slice(&self.wte, |tokens| {
            with_f32_slice(&self.wpe, |places| {
                let mut x = Vec::with_capacity(ids.len() * e);
                for (i, &id) in ids.iter().enumerate() {
                    let token = &tokens[id as usize * e..(id as usize + 1) * e];
                    let place = &places[(start + i) * e..(start + i + 1) * e];
                    x.extend(token.iter().zip(place).map(|(a, b)| a + b));
                }
                x
            })
        })
        .flatten()
        .ok_or_else(|| candle_core::Error::Msg("expected f32 embeddings on the CPU".into()))
    }

    /// The logits, shape (vocab,), of the residual stream `x` of one token.
    pub(super) fn logits_of_row(&self, x: &[f32]) -> Result<Tensor> {
        let x = self.ln_f.forward_row(x)?;
        let x = Tensor::from_vec(x, (1, 1, self.config.n_embd), self.device())?;
        self.head(&x)?.flatten_all()
    }
}

impl Block {
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
            .decode_step(&self.ln_1.forward_row(x)?, cache, layer, position)?;
        add_in_place(x, &attended);
        let mlp = self.mlp.forward_row(&self.ln_2.forward_row(x)?)?;
        add_in_place(x, &mlp);
        Ok(())
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

impl LayerNorm {
    pub(super) fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; x.len()];
        with_f32_slice(&self.weight, |w| {
            with_f32_slice(&self.bias, |b| {
                layer_norm_row(x, w, b, self.eps as f32, &mut out)
            })
        })
        .flatten()
        .ok_or_else(|| {
            candle_core::Error::Msg("expected f32 layer norm weights on the CPU".into())
        })?;
        Ok(out)
    }
}

/// `out = (x - mean) / sqrt(var + eps) * w + b` for one row.
pub(super) fn layer_norm_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (o, (v, (w, b))) in out.iter_mut().zip(x.iter().zip(w.iter().zip(b))) {
        *o = (v - mean) * inv * w + b;
    }
}

impl Linear {
    /// `x @ W + b` for one row.
    fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = match &self.weight {
            Weight::Dense(w) => {
                let mut y = vec![0f32; self.out_dim];
                with_f32_slice(w, |ws| kernels::matvec_in_out(x, ws, &mut y)).ok_or_else(|| {
                    candle_core::Error::Msg("expected contiguous f32 weights on the CPU".into())
                })?;
                y
            }
            Weight::Quantized(q) => quantized_matvec(q, x)?,
        };
        with_f32_slice(&self.bias, |b| add_in_place(&mut y, b))
            .ok_or_else(|| candle_core::Error::Msg("expected an f32 bias on the CPU".into()))?;
        Ok(y)
    }
}

impl Mlp {
    fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut h = self.c_fc.forward_row(x)?;
        activate_on_this_thread(self.activation, &mut h);
        self.c_proj.forward_row(&h)
    }
}

impl Attention {
    /// How the CPU paths store keys and values: in f32, or in f16 beside 8-bit weights. The
    /// cache is the 8-bit model's largest buffer after its weights (GPT-2 small: 2.4 MB per
    /// 32 tokens in f32); f16 halves it, as llama.cpp does, and its rounding (1 part in 2,000)
    /// is small next to that of the weights.
    pub(super) fn cached_dtype(&self) -> DType {
        match self.c_attn.weight {
            Weight::Quantized(_) => DType::F16,
            Weight::Dense(_) => DType::F32,
        }
    }

    /// Keys or values of `tokens` tokens, given head after head, as a (1, heads, tokens,
    /// head_dim) tensor of [`Self::cached_dtype`] for the cache.
    pub(super) fn cached<'a>(
        &self,
        values: impl Iterator<Item = &'a f32>,
        tokens: usize,
    ) -> Result<Tensor> {
        let shape = (1, self.n_head, tokens, self.head_dim);
        match self.cached_dtype() {
            DType::F16 => Tensor::from_vec(
                values.map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>(),
                shape,
                &Device::Cpu,
            ),
            _ => Tensor::from_vec(values.copied().collect::<Vec<f32>>(), shape, &Device::Cpu),
        }
    }

    /// Self-attention of one new token over the cache, after storing its key and value.
    fn decode_step(
        &self,
        x: &[f32],
        cache: &mut KvCache,
        layer: usize,
        position: usize,
    ) -> Result<Vec<f32>> {
        let qkv = self.c_attn.forward_row(x)?;
        let e = self.n_head * self.head_dim;
        let (q, kv) = qkv.split_at(e);
        let (k, v) = kv.split_at(e);
        let (k, v) = (self.cached(k.iter(), 1)?, self.cached(v.iter(), 1)?);
        cache.append(layer, position, &k, &v)?;
        let out = attend_to_cache(cache, layer, q, self.n_head, position + 1)?;
        self.c_proj.forward_row(&out)
    }
}
