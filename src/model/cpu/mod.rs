//! The CPU backend: the decode step (`decode.rs`) and the prompt pass (`prefill.rs`) as loops
//! and matrix products on host slices, the attention of one token over the KV cache
//! (`attention.rs`) and that of a prompt's queries (`prompt_attention.rs`). They read the weights through [`CpuWeights`], laid out once at load
//! (`weights.rs`, which also says why that costs no memory); [`super::Gpt2::forward`] decides
//! when they apply. The tensor path in `layers.rs` stays the reference: the two are compared
//! in the tests of `prefill.rs` and in `tests/`.

mod attention;
mod decode;
mod every_row;
mod prefill;
mod prompt_attention;
mod weights;

use candle_core::{Device, Result, Tensor};

pub(crate) use every_row::HEAD_ROWS;
pub(crate) use weights::CpuWeights;
use weights::{CpuHead, CpuLayerNorm, TokenRows};

use crate::kernels::activations::{
    gelu_erf_on_this_thread, gelu_tanh_on_this_thread, relu_on_this_thread,
};
use crate::kernels::{block_rows, matvec_rows, q8};
use crate::model::config::Activation;
use crate::model::q8::quantized_matvec;

impl CpuWeights {
    /// Token plus position embeddings of `ids` placed from `start`, (tokens x n_embd).
    fn embed_rows(&self, ids: &[u32], start: usize) -> Result<Vec<f32>> {
        let e = self.n_embd;
        let places = self.wpe.get();
        let mut x = vec![0f32; ids.len() * e];
        for (i, (&id, x)) in ids.iter().zip(x.chunks_exact_mut(e)).enumerate() {
            match &self.wte {
                TokenRows::Dense(rows) => {
                    x.copy_from_slice(&rows.get()[id as usize * e..(id as usize + 1) * e])
                }
                TokenRows::Blocks(blocks) => {
                    block_rows::dequantize_row(blocks.dtype, blocks.get(), id as usize, x)?
                }
            }
            let place = &places[(start + i) * e..(start + i + 1) * e];
            x.iter_mut().zip(place).for_each(|(a, b)| *a += b);
        }
        Ok(x)
    }

    /// The logits, shape (vocab,), of the residual stream `x` of one token.
    fn logits_of_row(&self, x: &[f32]) -> Result<Tensor> {
        let x = self.ln_f.forward_row(x);
        let logits = match &self.head {
            CpuHead::Rows(w) => {
                let mut y = vec![0f32; self.vocab];
                matvec_rows(&x, w.get(), &mut y);
                y
            }
            CpuHead::Q8(w) => q8::rows_times(&x, w.get())?,
            CpuHead::Other(q) => quantized_matvec(q, &x)?,
        };
        Tensor::from_vec(logits, self.vocab, &Device::Cpu)
    }
}

impl CpuLayerNorm {
    /// One row normalised.
    fn forward_row(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        layer_norm_row(
            x,
            self.weight.get(),
            self.bias.get(),
            self.eps as f32,
            &mut out,
        );
        out
    }
}

/// `out = (x - mean) / sqrt(var + eps) * w + b` for one row.
fn layer_norm_row(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (o, (v, (w, b))) in out.iter_mut().zip(x.iter().zip(w.iter().zip(b))) {
        *o = (v - mean) * inv * w + b;
    }
}

/// The MLP's activation of every value, in place, on this thread.
fn activate_on_this_thread(activation: Activation, xs: &mut [f32]) {
    match activation {
        Activation::GeluTanh => gelu_tanh_on_this_thread(xs),
        Activation::GeluErf => gelu_erf_on_this_thread(xs),
        Activation::Relu => relu_on_this_thread(xs),
    }
}
